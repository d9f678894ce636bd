#!/bin/sh
# The user ops and a key pair for them (the machine made its ed25519 host key at its first boot).
set -e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
id ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops
mkdir -p /root/keys
chmod 700 /root/keys
[ -f /root/keys/ops_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C ops -f /root/keys/ops_ed25519
