#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
setsid -f nice -n 10 /opt/app/batch.sh </dev/null >/dev/null 2>&1
sleep 1
