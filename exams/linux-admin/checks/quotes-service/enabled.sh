#!/bin/sh
# systemctl asks the machine's service manager (over D-Bus).
[ "$(systemctl is-enabled quotes.service 2>/dev/null)" = enabled ]
