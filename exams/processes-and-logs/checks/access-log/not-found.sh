#!/bin/sh
# 73 requests were answered with 404.
f=/root/answers/not-found
[ -f "$f" ] || exit 1
[ "$(tr -d ' \t\r\n' < "$f")" = "73" ]
