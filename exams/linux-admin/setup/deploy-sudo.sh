#!/bin/sh
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
