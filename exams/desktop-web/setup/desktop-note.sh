#!/bin/sh
# The desktop's folder, where the candidate saves their work.
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /root/Desktop
