#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /usr/local/sbin /var/log/reports
cat > /usr/local/sbin/rotate-reports <<'SH'
#!/bin/sh
# Keeps the last ten reports.
cd /var/log/reports && ls -1t | tail -n +11 | xargs -r rm -f
date -u +%FT%TZ > /var/log/reports/last-rotation
SH
chmod 755 /usr/local/sbin/rotate-reports
