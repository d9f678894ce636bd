#!/bin/sh
mkdir -p /srv/www
printf '<!doctype html>\n<title>examroom</title>\n<h1>examroom</h1>\n' > /srv/www/index.html
