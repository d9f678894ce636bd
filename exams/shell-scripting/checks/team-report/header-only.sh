#!/bin/sh
# Only the header line: no output, exit status 0.
[ -f /root/bin/team-report ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
printf 'name,team,points\n' > "$d/empty.csv"
out=$(cd "$d" && timeout 5 examroom-run /root/bin/team-report "$d/empty.csv" </dev/null) || exit 1
[ -z "$out" ]
