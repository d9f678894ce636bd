#!/bin/sh
# The file holds 22, the number of lines whose level is ERROR (not 30: some INFO lines mention ERRORS).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
f=/root/answers/error-count
[ -f "$f" ] || exit 1
[ "$(tr -d ' \t\r\n' < "$f")" = "22" ]
