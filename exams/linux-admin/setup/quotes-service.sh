#!/bin/sh
# The quotes service: its program, its files, and a unit with two faults (a wrong ExecStart path, no [Install]).
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /opt/quotes/bin /opt/quotes/www
cat > /opt/quotes/www/index.html <<'HTML'
<p>Talk is cheap. Show me the code.</p>
HTML
cat > /opt/quotes/bin/quotes-server <<'SH'
#!/bin/sh
# Serves /opt/quotes/www on 127.0.0.1:8080.
exec /usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /opt/quotes/www
SH
chmod 755 /opt/quotes/bin/quotes-server
cat > /etc/systemd/system/quotes.service <<'UNIT'
[Unit]
Description=Quote of the day over HTTP
After=network.target

[Service]
ExecStart=/opt/quotes/quotes-server
Restart=on-failure
UNIT
systemctl daemon-reload
