#!/bin/sh
# Logs in as ops with the key, over the machine's own sshd (started at boot), and asks for nothing else: the login
# must be by public key.
[ -f /root/keys/ops_ed25519 ] || exit 1
key=$(mktemp)
cat /root/keys/ops_ed25519 > "$key" && chmod 600 "$key" || exit 1
i=0
while [ $i -lt 8 ]; do
    out=$(timeout 8 ssh -v -i "$key" -o BatchMode=yes -o IdentitiesOnly=yes -o PreferredAuthentications=publickey \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 ops@127.0.0.1 \
        'id -un' 2>"$key.log") && break
    i=$((i + 1))
    sleep 0.25
done
[ "$out" = ops ] && grep -q 'Authenticated to 127.0.0.1 .* using "publickey"' "$key.log"
