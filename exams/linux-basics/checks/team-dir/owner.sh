#!/bin/sh
# /srv/project is a directory (not a symlink) owned by alice and the group devs.
[ -d /srv/project ] && [ ! -L /srv/project ] || exit 1
[ "$(stat -c %U:%G /srv/project)" = alice:devs ]
