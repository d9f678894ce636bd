#!/bin/sh
# Three releases of a web site.
set -e
for v in 1.0 1.1 2.0; do
    mkdir -p "/srv/releases/v$v"
    echo "<h1>version $v</h1>" > "/srv/releases/v$v/index.html"
done
