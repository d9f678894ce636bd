#!/bin/sh
# The heartbeat is running and has written at least one line.
pgrep -f '^([^ ]*/)?(ba|da)?sh( -[^ ]+)* ([^ ]*/)?heartbeat[.]sh( |$)' >/dev/null || exit 1
grep -q ' alive$' /var/log/app/heartbeat.log 2>/dev/null
