#!/bin/sh
# A batch job that runs for ever.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /opt/app
cat > /opt/app/batch.sh <<'PROGRAM'
#!/bin/sh
# A long batch job: it works (sleeps) for ever.
while :; do
    sleep 5
done
PROGRAM
chmod 755 /opt/app/batch.sh
