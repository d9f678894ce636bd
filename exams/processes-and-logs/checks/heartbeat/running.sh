#!/bin/sh
# A shell runs heartbeat.sh, however it was started: /opt/app/heartbeat.sh, ./heartbeat.sh, sh heartbeat.sh...
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
pgrep -f '^([^ ]*/)?(ba|da)?sh( -[^ ]+)* ([^ ]*/)?heartbeat[.]sh( |$)' >/dev/null
