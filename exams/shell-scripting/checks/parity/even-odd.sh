#!/bin/sh
# even or odd, exit status 0, for positive and negative numbers and zero.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -x /root/bin/parity ] || exit 1
while read -r n want; do
    out=$(cd /tmp && timeout 5 /root/bin/parity "$n" </dev/null) || exit 1
    [ "$out" = "$want" ] || exit 1
done <<'CASES'
4 even
7 odd
0 even
-3 odd
-10 even
123456789 odd
CASES
