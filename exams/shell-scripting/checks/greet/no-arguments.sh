#!/bin/sh
# Without arguments: exactly "Hello, world!".
[ -f /root/bin/greet ] || exit 1
out=$(cd /tmp && timeout 5 examroom-run /root/bin/greet </dev/null) || exit 1
[ "$out" = "Hello, world!" ]
