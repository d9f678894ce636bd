#!/bin/sh
set -e
cat > /etc/systemd/system/rotate-reports.service <<'UNIT'
[Unit]
Description=Rotate the reports

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rotate-reports
UNIT
cat > /etc/systemd/system/rotate-reports.timer <<'UNIT'
[Unit]
Description=Rotate the reports every five minutes

[Timer]
OnCalendar=*:0/5

[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now rotate-reports.timer
