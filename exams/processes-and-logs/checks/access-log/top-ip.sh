#!/bin/sh
# The busiest client is 203.0.113.9 (68 requests; 10.0.0.50 made 49).
f=/root/answers/top-ip
[ -f "$f" ] || exit 1
[ "$(tr -d ' \t\r\n' < "$f")" = "203.0.113.9" ]
