#!/bin/sh
# Three releases of a web site.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for v in 1.0 1.1 2.0; do
    mkdir -p "/srv/releases/v$v"
    echo "<h1>version $v</h1>" > "/srv/releases/v$v/index.html"
done
