#!/bin/sh
set -e
sed -i 's|^ExecStart=.*|ExecStart=/opt/quotes/bin/quotes-server|' /etc/systemd/system/quotes.service
printf '\n[Install]\nWantedBy=multi-user.target\n' >> /etc/systemd/system/quotes.service
systemctl daemon-reload
systemctl enable --now quotes.service
