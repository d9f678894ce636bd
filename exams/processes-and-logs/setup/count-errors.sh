#!/bin/sh
# The application log /var/log/app/app.log: 400 lines, the same every time.
# Format: TIMESTAMP LEVEL COMPONENT: MESSAGE. A few INFO lines mention "ERRORS" in their message.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /var/log/app
awk 'BEGIN {
    split("auth db api cache mailer", comp, " ")
    split("login ok|query done|request served|entry expired|mail queued", info, "|")
    split("slow response|retrying|disk 80% full|token expires soon|queue is long", warn, "|")
    split("connection refused|timeout|permission denied|out of memory|bad request", err, "|")
    for (i = 0; i < 400; i++) {
        ts = sprintf("2024-03-01T%02d:%02d:%02dZ", 8 + int(i / 60), i % 60, (i * 13) % 60)
        c = comp[(i * 3 + int(i / 7)) % 5 + 1]
        r = (i * 7 + 3) % 10
        m = (i * 11) % 5 + 1
        if (i % 50 == 25) { print ts, "INFO", "health: no ERRORS since restart"; continue }
        if (r <= 5)      print ts, "INFO", c ": " info[m]
        else if (r <= 7) print ts, "WARN", c ": " warn[m]
        else if (r == 8 && i % 3 != 0) print ts, "ERROR", c ": " err[m]
        else             print ts, "DEBUG", c ": tick " i
    }
}' </dev/null > /var/log/app/app.log
