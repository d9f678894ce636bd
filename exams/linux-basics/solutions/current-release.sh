#!/bin/sh
set -e
mkdir -p /srv/www
ln -sfn /srv/releases/v2.0 /srv/www/current
