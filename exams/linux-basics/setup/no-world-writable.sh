#!/bin/sh
# A web site where some things are writable by everyone.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /srv/www/site/data /srv/www/site/assets
echo "<h1>hello</h1>" > /srv/www/site/index.html
echo "body { }" > /srv/www/site/assets/style.css
printf '#!/bin/sh\necho upload\n' > /srv/www/site/upload.sh
echo "{}" > /srv/www/site/data/db.json
chmod 0777 /srv/www/site
chmod 0666 /srv/www/site/index.html
chmod 0644 /srv/www/site/assets/style.css
chmod 0755 /srv/www/site/assets
chmod 0777 /srv/www/site/upload.sh
chmod 1777 /srv/www/site/data
chmod 0662 /srv/www/site/data/db.json
