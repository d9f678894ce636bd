#!/bin/sh
# Negative numbers count; empty and blank lines are skipped.
[ -f /root/bin/sum ] || exit 1
out=$(printf '10\n\n-4\n   \n100\n-250\n' | (cd /tmp && timeout 5 examroom-run /root/bin/sum)) || exit 1
[ "$out" = -144 ] || exit 1
out=$(printf -- '-1\n-2\n' | (cd /tmp && timeout 5 examroom-run /root/bin/sum)) || exit 1
[ "$out" = -3 ]
