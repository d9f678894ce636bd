#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/answers
awk '$2 == "ERROR"' /var/log/app/app.log | wc -l > /root/answers/error-count
