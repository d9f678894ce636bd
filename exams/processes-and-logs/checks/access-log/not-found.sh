#!/bin/sh
# 73 requests were answered with 404.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
f=/root/answers/not-found
[ -f "$f" ] || exit 1
[ "$(tr -d ' \t\r\n' < "$f")" = "73" ]
