#!/bin/sh
# Negative numbers count; empty and blank lines are skipped.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -x /root/bin/sum ] || exit 1
out=$(printf '10\n\n-4\n   \n100\n-250\n' | (cd /tmp && timeout 5 /root/bin/sum)) || exit 1
[ "$out" = -144 ] || exit 1
out=$(printf -- '-1\n-2\n' | (cd /tmp && timeout 5 /root/bin/sum)) || exit 1
[ "$out" = -3 ]
