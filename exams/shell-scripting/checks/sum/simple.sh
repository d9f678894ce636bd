#!/bin/sh
# 1 + 2 + 3 = 6
[ -f /root/bin/sum ] || exit 1
out=$(printf '1\n2\n3\n' | (cd /tmp && timeout 5 examroom-run /root/bin/sum)) || exit 1
[ "$out" = 6 ]
