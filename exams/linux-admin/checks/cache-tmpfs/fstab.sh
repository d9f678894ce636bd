#!/bin/sh
# One line of /etc/fstab mounts a tmpfs at /srv/cache.
awk '!/^[ \t]*#/ && $2 == "/srv/cache" && $3 == "tmpfs" { n++ } END { exit n == 1 ? 0 : 1 }' /etc/fstab
