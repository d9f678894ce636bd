#!/bin/sh
# Executable by its owner, and its whole output is the address. (Checks run as a reserved uid, for which `[ -x ]`
# answers for itself, not for the candidate: the mode bits are looked at.)
[ -n "$(find /root/Desktop/open-site.sh -maxdepth 0 -type f -perm -u+x 2>/dev/null)" ] || exit 1
out=$(cd /tmp && timeout 5 examroom-run /root/Desktop/open-site.sh </dev/null) || exit 1
[ "$out" = "http://127.0.0.1:8000/" ]
