#!/bin/sh
# No input at all: 0.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -x /root/bin/sum ] || exit 1
out=$(cd /tmp && timeout 5 /root/bin/sum </dev/null) || exit 1
[ "$out" = 0 ]
