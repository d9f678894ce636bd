#!/bin/sh
# One greeting per argument, in order, an argument with a space kept whole.
[ -f /root/bin/greet ] || exit 1
out=$(cd /tmp && timeout 5 examroom-run /root/bin/greet Ada "Grace Hopper" Linus </dev/null) || exit 1
want='Hello, Ada!
Hello, Grace Hopper!
Hello, Linus!'
[ "$out" = "$want" ] || exit 1
out=$(cd /tmp && timeout 5 examroom-run /root/bin/greet "Zoë" </dev/null) || exit 1
[ "$out" = "Hello, Zoë!" ]
