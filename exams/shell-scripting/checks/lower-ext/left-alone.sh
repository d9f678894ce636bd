#!/bin/sh
# No extension, already lowercase, hidden files and sub-directories (and their contents) keep their names.
[ -f /root/bin/lower-ext ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
mkdir "$d/SUB.DIR"
echo inner > "$d/SUB.DIR/inner.TXT"
echo readme > "$d/README"
echo notes > "$d/notes.txt"
echo rc > "$d/.BASHRC"
echo x > "$d/Data.CSV"
out=$(cd /tmp && timeout 5 examroom-run /root/bin/lower-ext "$d" </dev/null) || exit 1
[ -z "$out" ] || exit 1
# The one file that had to change did: the script ran.
[ -f "$d/Data.csv" ] || exit 1
want='.BASHRC
Data.csv
README
SUB.DIR
SUB.DIR/inner.TXT
notes.txt'
got=$(cd "$d" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort)
[ "$got" = "$want" ]
