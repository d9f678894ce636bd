#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /etc/cron.d
printf '# Rotate the application log every night.\n30 2 * * * root /opt/app/rotate.sh\n' > /etc/cron.d/rotate
chmod 644 /etc/cron.d/rotate
