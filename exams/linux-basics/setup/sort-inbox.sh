#!/bin/sh
# A mix of files in /root/inbox: three .log files and three others (one of them only looks like a log).
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/inbox
cd /root/inbox
echo "app started" > app.log
echo "db connected" > db.log
echo "GET / 200" > web.log
echo "buy milk" > notes.txt
echo "- [ ] sort the inbox" > todo.md
echo "catalog of logs, not a log" > catalog.log.txt
