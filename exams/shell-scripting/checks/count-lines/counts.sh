#!/bin/sh
# Line counts of two files, one with a space in its name; exit status 0.
[ -f /root/bin/count-lines ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
printf 'one\ntwo\nthree\n' > "$d/three.txt"
printf 'a\nb\nc\nd\ne\nf\ng\n' > "$d/my notes.txt"
: > "$d/empty"
out=$(cd "$d" && timeout 5 examroom-run /root/bin/count-lines three.txt "$d/my notes.txt" empty </dev/null) || exit 1
want="3 three.txt
7 $d/my notes.txt
0 empty"
[ "$out" = "$want" ]
