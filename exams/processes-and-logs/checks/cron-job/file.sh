#!/bin/sh
# cron only reads a file in /etc/cron.d that is owned by root, not writable by group or others, and whose last
# line ends with a newline.
f=/etc/cron.d/rotate
[ -f "$f" ] && [ ! -L "$f" ] && [ -s "$f" ] || exit 1
[ "$(stat -c %u "$f")" = 0 ] || exit 1
[ -z "$(find "$f" -perm /022)" ] || exit 1
[ -z "$(tail -c 1 "$f")" ]
