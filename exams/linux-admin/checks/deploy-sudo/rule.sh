#!/bin/sh
# sudo's own parser (cvtsudoers, from the pristine base) reads the policy with its includes; the rules that apply to
# deploy must let them run the command as root without a password.
pol=$(cvtsudoers -f json -m user=deploy /etc/sudoers 2>/dev/null) || exit 1
printf '%s' "$pol" | python3 -c '
import json, sys
want = {"/usr/bin/systemctl restart quotes", "/usr/bin/systemctl restart quotes.service"}
ok = False
for spec in json.load(sys.stdin).get("User_Specs", []):
    for c in spec.get("Cmnd_Specs", []):
        runas = [u.get("username") for u in c.get("runasusers", [{"username": "root"}])]
        nopasswd = any(o.get("authenticate") is False for o in c.get("Options", []))
        cmds = {x.get("command") for x in c.get("Commands", [])}
        if nopasswd and cmds & want and ("root" in runas or "ALL" in runas):
            ok = True
sys.exit(0 if ok else 1)
'
