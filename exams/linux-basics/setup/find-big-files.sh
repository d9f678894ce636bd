#!/bin/sh
# A tree of files of many sizes under /srv/archive: some big ones hidden, one with a space in its name, and a
# symlink to a big file (which is not a regular file).
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /srv/archive/2023/q1 /srv/archive/2023/q2 /srv/archive/2024 /srv/archive/tmp
big() { head -c "$2" /dev/zero | tr '\0' 'x' > "$1"; }
big /srv/archive/2023/q1/sales.csv 150000
big /srv/archive/2023/q1/notes.txt 2000
big /srv/archive/2023/q2/sales.csv 90000
big "/srv/archive/2023/q2/old backup.tar" 300000
big /srv/archive/2024/report.pdf 102401
big /srv/archive/2024/summary.txt 102400
big /srv/archive/2024/.cache.bin 120000
big /srv/archive/tmp/scratch 50
big /srv/archive/README 500
ln -s /srv/archive/2023/q1/sales.csv /srv/archive/tmp/latest-sales.csv
