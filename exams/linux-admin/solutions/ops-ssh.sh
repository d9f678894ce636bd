#!/bin/sh
set -e
install -d -m 700 -o ops -g ops /home/ops/.ssh
install -m 600 -o ops -g ops /root/keys/ops_ed25519.pub /home/ops/.ssh/authorized_keys
echo 'PasswordAuthentication no' > /etc/ssh/sshd_config.d/no-passwords.conf
systemctl enable --now ssh
