#!/bin/sh
# /root/eu-servers.txt lists exactly batch-7, web-1, web-3, in that order (trailing spaces and empty lines ignored).
f=/root/eu-servers.txt
[ -f "$f" ] || exit 1
got=$(sed -e 's/[[:space:]]*$//' -e '/^$/d' "$f")
[ "$got" = "batch-7
web-1
web-3" ]
