#!/bin/sh
set -e
mkdir -p /etc/systemd/network
cat > /etc/systemd/network/10-lab0.netdev <<'NETDEV'
[NetDev]
Name=lab0
Kind=veth

[Peer]
Name=lab1
NETDEV
cat > /etc/systemd/network/20-lab0.network <<'NET'
[Match]
Name=lab0

[Network]
Address=10.20.30.1/24
NET
cat > /etc/systemd/network/20-lab1.network <<'NET'
[Match]
Name=lab1

[Network]
Address=10.20.30.2/24
NET
systemctl enable --now systemd-networkd
i=0
until ping -c 1 -W 1 10.20.30.2 >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 20 ] || exit 1
    sleep 0.25
done
