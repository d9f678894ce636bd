#!/bin/sh
# The user ops, a key pair for them, and the server's host keys (which Debian makes when it installs the server).
set -e
id ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops
mkdir -p /root/keys
chmod 700 /root/keys
[ -f /root/keys/ops_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C ops -f /root/keys/ops_ed25519
ssh-keygen -A >/dev/null
