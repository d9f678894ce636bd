#!/bin/sh
# A server that outlives this shell, then wait until it answers.
mkdir -p /srv/www
cd /srv/www && setsid python3 -m http.server 8000 >/dev/null 2>&1 < /dev/null &
for i in $(seq 100); do
  grep -q ':1F40 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null && exit 0
  sleep 0.1
done
exit 1
