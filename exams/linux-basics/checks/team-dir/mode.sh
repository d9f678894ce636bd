#!/bin/sh
# /srv/project has mode 2770 (setgid, rwx for owner and group, nothing for others).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -d /srv/project ] && [ ! -L /srv/project ] || exit 1
[ "$(stat -c %a /srv/project)" = 2770 ]
