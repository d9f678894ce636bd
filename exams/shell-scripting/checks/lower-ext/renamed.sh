#!/bin/sh
# Uppercase extensions become lowercase, names with spaces included, contents kept.
[ -f /root/bin/lower-ext ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
echo photo > "$d/IMG_0001.JPG"
echo map > "$d/Holiday Map.Png"
echo archive > "$d/backup.tar.GZ"
(cd /tmp && timeout 5 examroom-run /root/bin/lower-ext "$d" </dev/null) || exit 1
[ "$(cat "$d/IMG_0001.jpg" 2>/dev/null)" = photo ] || exit 1
[ "$(cat "$d/Holiday Map.png" 2>/dev/null)" = map ] || exit 1
[ "$(cat "$d/backup.tar.gz" 2>/dev/null)" = archive ] || exit 1
[ ! -e "$d/IMG_0001.JPG" ] && [ ! -e "$d/Holiday Map.Png" ] && [ ! -e "$d/backup.tar.GZ" ]
