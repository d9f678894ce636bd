#!/bin/sh
# The server answers, and the ways in it offers after "none" are public keys only (no password, no
# keyboard-interactive, and "none" itself is not let in).
i=0
while [ $i -lt 8 ]; do
    timeout 8 ssh -v -o BatchMode=yes -o PreferredAuthentications=none -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 ops@127.0.0.1 true >/dev/null 2>/tmp/none.log && exit 1
    grep -q 'Authentications that can continue:' /tmp/none.log && break
    i=$((i + 1))
    sleep 0.25
done
line=$(grep -m1 'Authentications that can continue:' /tmp/none.log) || exit 1
case "$line" in
    *password* | *keyboard-interactive*) exit 1 ;;
esac
case "$line" in
    *publickey*) exit 0 ;;
esac
exit 1
