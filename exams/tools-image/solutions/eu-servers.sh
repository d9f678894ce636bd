#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
jq -r '.[] | select(.region == "eu-west-1") | .name' /root/data/servers.json | sort > /root/eu-servers.txt
