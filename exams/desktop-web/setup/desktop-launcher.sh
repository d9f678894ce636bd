#!/bin/sh
# Nothing is there yet: the candidate writes the launcher.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/Desktop
rm -f /root/Desktop/open-site.sh
