#!/bin/sh
# The rotation script to schedule.
set -e
mkdir -p /opt/app
cat > /opt/app/rotate.sh <<'PROGRAM'
#!/bin/sh
# Rotates the application log.
[ -f /var/log/app/app.log ] && mv /var/log/app/app.log /var/log/app/app.log.1
: > /var/log/app/app.log
PROGRAM
chmod 755 /opt/app/rotate.sh
