#!/bin/sh
# The timer starts rotate-reports.service, which runs the script.
[ "$(systemctl show -P Triggers rotate-reports.timer 2>/dev/null)" = rotate-reports.service ] || exit 1
systemctl show -P ExecStart rotate-reports.service | grep -q 'path=/usr/local/sbin/rotate-reports '
