#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# A new session: no terminal to lose. Nothing inherited from this script's standard streams.
setsid -f /opt/app/heartbeat.sh </dev/null >/dev/null 2>&1
sleep 2
