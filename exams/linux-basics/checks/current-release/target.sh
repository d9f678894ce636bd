#!/bin/sh
# /srv/www/current resolves to /srv/releases/v2.0, which still holds release 2.0.
[ -L /srv/www/current ] || exit 1
[ "$(readlink -f /srv/www/current)" = /srv/releases/v2.0 ] || exit 1
grep -q "version 2.0" /srv/www/current/index.html
