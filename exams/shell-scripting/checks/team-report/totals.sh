#!/bin/sh
# Totals per team, sorted by team name.
[ -f /root/bin/team-report ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
cat > "$d/scores.csv" <<'CSV'
name,team,points
ana,red,10
bo,blue,7
cy,red,5
dee,green,0
eli,blue,13
fay,amber,4
gus,red,1
CSV
out=$(cd "$d" && timeout 5 examroom-run /root/bin/team-report scores.csv </dev/null) || exit 1
want='amber 4
blue 20
green 0
red 16'
[ "$out" = "$want" ]
