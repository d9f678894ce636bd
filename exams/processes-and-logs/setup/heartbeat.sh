#!/bin/sh
# The heartbeat program the candidate starts: it appends a line to /var/log/app/heartbeat.log every second.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /opt/app /var/log/app
cat > /opt/app/heartbeat.sh <<'PROGRAM'
#!/bin/sh
# Appends a heartbeat line to /var/log/app/heartbeat.log every second, for ever.
mkdir -p /var/log/app
while :; do
    echo "$(date '+%Y-%m-%dT%H:%M:%S') alive" >> /var/log/app/heartbeat.log
    sleep 1
done
PROGRAM
chmod 755 /opt/app/heartbeat.sh
