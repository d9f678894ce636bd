#!/bin/sh
# Enabled, active after the reboot, and on the calendar every five minutes (systemd's normal form of *:0/5).
[ "$(systemctl is-enabled rotate-reports.timer 2>/dev/null)" = enabled ] || exit 1
[ "$(systemctl is-active rotate-reports.timer 2>/dev/null)" = active ] || exit 1
systemctl show -P TimersCalendar rotate-reports.timer | grep -q 'OnCalendar=\*-\*-\* \*:00/5:00'
