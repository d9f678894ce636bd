#!/bin/sh
# even or odd, exit status 0, for positive and negative numbers and zero.
[ -f /root/bin/parity ] || exit 1
while read -r n want; do
    out=$(cd /tmp && timeout 5 examroom-run /root/bin/parity "$n" </dev/null) || exit 1
    [ "$out" = "$want" ] || exit 1
done <<'CASES'
4 even
7 odd
0 even
-3 odd
-10 even
123456789 odd
CASES
