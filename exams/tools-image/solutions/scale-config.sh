#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
jq '.replicas = 3 | .image = "nginx:1.25"' /root/data/app.json > /root/app-v2.json
