#!/bin/sh
set -e
mkdir -p /root/answers
awk '$2 == "ERROR"' /var/log/app/app.log | wc -l > /root/answers/error-count
