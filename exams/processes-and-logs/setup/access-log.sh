#!/bin/sh
# The web server's /var/log/app/access.log: 300 requests, the same every time.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /var/log/app
awk 'BEGIN {
    split("10.0.0.5 10.0.0.17 192.168.1.20 172.16.4.2 10.0.0.50 203.0.113.9 198.51.100.7 10.0.0.8", ip, " ")
    split("/ /index.html /login /api/items /api/items/42 /static/app.js /favicon.ico /admin", path, " ")
    for (i = 0; i < 300; i++) {
        a = ((i * i) % 11 + i % 4) % 8 + 1
        if (i % 9 == 0) a = 6
        p = (i * 5) % 8 + 1
        s = 200
        if (path[p] == "/favicon.ico" || path[p] == "/admin") s = 404
        if (i % 37 == 0) s = 500
        if (i % 13 == 0 && s == 200) s = 304
        printf "%s - - [01/Mar/2024:%02d:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d\n", ip[a], 9 + int(i / 60), i % 60, (i * 7) % 60, path[p], s, (s == 200) ? 512 + (i * 97) % 4000 : 0
    }
}' </dev/null > /var/log/app/access.log
