#!/bin/sh
# A key pair that everyone can read.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/keys
echo "SECRET-7f3a9c1e" > /root/keys/api.key
echo "PUBLIC-7f3a9c1e" > /root/keys/api.pub
chmod 0755 /root/keys
chmod 0644 /root/keys/api.key /root/keys/api.pub
