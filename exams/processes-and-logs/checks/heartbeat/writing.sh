#!/bin/sh
# The heartbeat is running and has written at least one line.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
pgrep -f '^([^ ]*/)?(ba|da)?sh( -[^ ]+)* ([^ ]*/)?heartbeat[.]sh( |$)' >/dev/null || exit 1
grep -q ' alive$' /var/log/app/heartbeat.log 2>/dev/null
