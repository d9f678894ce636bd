#!/bin/sh
set -e
find /srv/archive -type f -size +102400c > /root/big-files.txt
