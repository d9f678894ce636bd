#!/bin/sh
# Every mode is what it was, minus the write permission for others.
while read -r path mode; do
    [ -e "/srv/www/site/$path" ] || exit 1
    [ "$(stat -c %a "/srv/www/site/$path")" = "$mode" ] || exit 1
done <<'MODES'
. 775
index.html 664
assets 755
assets/style.css 644
upload.sh 775
data 1775
data/db.json 660
MODES
