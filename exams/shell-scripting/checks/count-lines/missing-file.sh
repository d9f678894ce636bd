#!/bin/sh
# A missing file: reported on standard error only, the other files still counted, exit status 1.
[ -f /root/bin/count-lines ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
printf 'x\ny\n' > "$d/a"
printf 'z\n' > "$d/c"
out=$(cd "$d" && timeout 5 examroom-run /root/bin/count-lines a nothing-here c </dev/null 2>"$d/err")
status=$?
[ "$status" -eq 1 ] || exit 1
want="2 a
1 c"
[ "$out" = "$want" ] || exit 1
grep -q "count-lines: nothing-here: no such file" "$d/err"
