#!/bin/sh
# /root/big-files.txt lists exactly the regular files larger than 102400 bytes under /srv/archive (any order).
f=/root/big-files.txt
[ -f "$f" ] || exit 1
expected='/srv/archive/2023/q1/sales.csv
/srv/archive/2023/q2/old backup.tar
/srv/archive/2024/.cache.bin
/srv/archive/2024/report.pdf'
# Ignore trailing spaces and empty lines; the order does not matter.
got=$(sed -e 's/[[:space:]]*$//' -e '/^$/d' "$f" | LC_ALL=C sort)
want=$(printf '%s\n' "$expected" | LC_ALL=C sort)
[ "$got" = "$want" ]
