#!/bin/sh
# /root/keys has mode 0700, and api.pub still has mode 0644.
[ -d /root/keys ] && [ ! -L /root/keys ] || exit 1
[ "$(stat -c %a /root/keys)" = 700 ] || exit 1
[ -f /root/keys/api.pub ] && [ "$(stat -c %a /root/keys/api.pub)" = 644 ]
