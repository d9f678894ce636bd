#!/bin/sh
set -e
mkdir -p /etc/cron.d
printf '# Rotate the application log every night.\n30 2 * * * root /opt/app/rotate.sh\n' > /etc/cron.d/rotate
chmod 644 /etc/cron.d/rotate
