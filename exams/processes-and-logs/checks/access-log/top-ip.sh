#!/bin/sh
# The busiest client is 203.0.113.9 (68 requests; 10.0.0.50 made 49).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
f=/root/answers/top-ip
[ -f "$f" ] || exit 1
[ "$(tr -d ' \t\r\n' < "$f")" = "203.0.113.9" ]
