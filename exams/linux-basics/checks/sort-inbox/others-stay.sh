#!/bin/sh
# /srv/logs is a directory (not a link) that holds .log files and nothing else; notes.txt, todo.md and
# catalog.log.txt are still in /root/inbox.
[ -d /srv/logs ] && [ ! -L /srv/logs ] || exit 1
[ -n "$(find /srv/logs -mindepth 1 -name '*.log' | head -n 1)" ] || exit 1
[ "$(cat /root/inbox/notes.txt 2>/dev/null)" = "buy milk" ] || exit 1
[ -f /root/inbox/todo.md ] || exit 1
[ -f /root/inbox/catalog.log.txt ] || exit 1
[ -z "$(find /srv/logs -mindepth 1 ! -name '*.log' | head -n 1)" ]
