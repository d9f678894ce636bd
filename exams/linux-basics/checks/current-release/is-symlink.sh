#!/bin/sh
# /srv/www/current is a symbolic link.
[ -L /srv/www/current ]
