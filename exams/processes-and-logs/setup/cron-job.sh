#!/bin/sh
# The rotation script to schedule.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /opt/app
cat > /opt/app/rotate.sh <<'PROGRAM'
#!/bin/sh
# Rotates the application log.
[ -f /var/log/app/app.log ] && mv /var/log/app/app.log /var/log/app/app.log.1
: > /var/log/app/app.log
PROGRAM
chmod 755 /opt/app/rotate.sh
