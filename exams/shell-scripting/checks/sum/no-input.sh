#!/bin/sh
# No input at all: 0.
[ -f /root/bin/sum ] || exit 1
out=$(cd /tmp && timeout 5 examroom-run /root/bin/sum </dev/null) || exit 1
[ "$out" = 0 ]
