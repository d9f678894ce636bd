#!/bin/sh
# app.log, db.log and web.log are in /srv/logs with their contents, and gone from /root/inbox.
[ "$(cat /srv/logs/app.log 2>/dev/null)" = "app started" ] || exit 1
[ "$(cat /srv/logs/db.log 2>/dev/null)" = "db connected" ] || exit 1
[ "$(cat /srv/logs/web.log 2>/dev/null)" = "GET / 200" ] || exit 1
for f in app.log db.log web.log; do
    [ ! -e "/root/inbox/$f" ] || exit 1
done
