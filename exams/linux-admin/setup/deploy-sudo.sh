#!/bin/sh
set -e
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
