#!/bin/sh
set -e
chmod -R o-w /srv/www/site
