#!/bin/sh
set -e
setsid -f nice -n 10 /opt/app/batch.sh </dev/null >/dev/null 2>&1
sleep 1
