#!/bin/sh
# /srv/www/current is a symbolic link.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -L /srv/www/current ]
