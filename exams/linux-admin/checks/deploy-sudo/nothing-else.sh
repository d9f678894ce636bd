#!/bin/sh
# The policy is valid (visudo -c) and every command that a rule for deploy names is the restart of quotes (and there
# is at least one such rule): no ALL, no other program, no group rule of a group deploy was added to.
visudo -c -q >/dev/null 2>&1 || exit 1
pol=$(cvtsudoers -f json -m user=deploy /etc/sudoers 2>/dev/null) || exit 1
printf '%s' "$pol" | python3 -c '
import json, sys
want = {"/usr/bin/systemctl restart quotes", "/usr/bin/systemctl restart quotes.service"}
seen = set()
for spec in json.load(sys.stdin).get("User_Specs", []):
    for c in spec.get("Cmnd_Specs", []):
        for x in c.get("Commands", []):
            seen.add(x.get("command", "ALL") if isinstance(x, dict) else "ALL")
sys.exit(0 if seen and seen <= want else 1)
'
