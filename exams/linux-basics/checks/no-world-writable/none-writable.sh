#!/bin/sh
# The site is all there, and nothing under /srv/www/site is writable by others.
for f in index.html assets/style.css upload.sh data/db.json; do
    [ -f "/srv/www/site/$f" ] || exit 1
done
[ -z "$(find /srv/www/site -perm -o+w | head -n 1)" ]
