#!/bin/sh
# A socket of the environment listens on TCP port 8000 (0x1F40), on any address: state 0A is LISTEN. The server is
# frozen while checks run, so its socket is looked at rather than asked.
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$2 ~ /:1F40$/ && $4 == "0A" { found = 1 } END { exit found ? 0 : 1 }'
