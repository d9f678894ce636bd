#!/bin/sh
set -e
mkdir -p /srv/logs
mv /root/inbox/*.log /srv/logs/
