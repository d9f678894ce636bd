#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/answers
cut -d ' ' -f 1 /var/log/app/access.log | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }' > /root/answers/top-ip
awk '$9 == 404' /var/log/app/access.log | wc -l > /root/answers/not-found
