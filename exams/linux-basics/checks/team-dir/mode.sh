#!/bin/sh
# /srv/project has mode 2770 (setgid, rwx for owner and group, nothing for others).
[ -d /srv/project ] && [ ! -L /srv/project ] || exit 1
[ "$(stat -c %a /srv/project)" = 2770 ]
