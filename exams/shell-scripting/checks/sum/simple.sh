#!/bin/sh
# 1 + 2 + 3 = 6
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -x /root/bin/sum ] || exit 1
out=$(printf '1\n2\n3\n' | (cd /tmp && timeout 5 /root/bin/sum)) || exit 1
[ "$out" = 6 ]
