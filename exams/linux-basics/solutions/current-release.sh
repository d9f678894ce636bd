#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /srv/www
ln -sfn /srv/releases/v2.0 /srv/www/current
