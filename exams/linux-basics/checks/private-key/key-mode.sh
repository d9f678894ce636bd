#!/bin/sh
# /root/keys/api.key is a regular file with mode 0600 that still holds the key.
f=/root/keys/api.key
[ -f "$f" ] && [ ! -L "$f" ] || exit 1
[ "$(stat -c %a "$f")" = 600 ] || exit 1
grep -qx "SECRET-7f3a9c1e" "$f"
