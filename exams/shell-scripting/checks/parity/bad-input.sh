#!/bin/sh
# A missing or malformed number: exit status 2, nothing on standard output, a message on standard error.
[ -f /root/bin/parity ] || exit 1
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
try() {
    out=$(cd /tmp && timeout 5 examroom-run /root/bin/parity "$@" </dev/null 2>"$d/err")
    [ $? -eq 2 ] && [ -z "$out" ] && [ -s "$d/err" ]
}
try || exit 1
try abc || exit 1
try 1.5 || exit 1
try - || exit 1
try "" || exit 1
try 12x || exit 1
