#!/bin/sh
# The machine's own network namespace, after the reboot: each address on its interface, the link up (networkd may
# still be bringing it up, so a few looks).
has() {
    ip -o -4 addr show dev "$1" 2>/dev/null | awk '{ print $4 }' | grep -qx "$2" &&
        ip -o link show dev "$1" 2>/dev/null | grep -q 'state UP'
}
i=0
while [ $i -lt 12 ]; do
    has lab0 10.20.30.1/24 && has lab1 10.20.30.2/24 && exit 0
    i=$((i + 1))
    sleep 0.25
done
exit 1
