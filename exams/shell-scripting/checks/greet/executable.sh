#!/bin/sh
# /root/bin/greet is an executable regular file whose first line is a #! line.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
f=/root/bin/greet
[ -f "$f" ] && [ -x "$f" ] || exit 1
[ "$(head -c 2 "$f")" = "#!" ]
