#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
getent group devs >/dev/null || groupadd devs
if id alice >/dev/null 2>&1; then usermod -aG devs alice; else useradd -m -G devs alice; fi
mkdir -p /srv/project
chown alice:devs /srv/project
chmod 2770 /srv/project
