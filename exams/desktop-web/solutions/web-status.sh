#!/bin/sh
mkdir -p /srv/www
echo '{"ok": true, "service": "web"}' > /srv/www/status.json
