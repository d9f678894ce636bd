#!/bin/sh
# Without arguments: exactly "Hello, world!".
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -x /root/bin/greet ] || exit 1
out=$(cd /tmp && timeout 5 /root/bin/greet </dev/null) || exit 1
[ "$out" = "Hello, world!" ]
