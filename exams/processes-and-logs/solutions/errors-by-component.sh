#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/answers
awk '$2 == "ERROR" { sub(/:$/, "", $3); n[$3]++ } END { for (c in n) print c, n[c] }' /var/log/app/app.log |
    LC_ALL=C sort -k2,2nr -k1,1 > /root/answers/error-components
