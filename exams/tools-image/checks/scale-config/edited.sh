#!/bin/sh
# /root/app-v2.json is app.json as the setup wrote it, with replicas 3 and image nginx:1.25 (checked with the image's
# jq, against the original values written here, not against the candidate's copy of app.json).
f=/root/app-v2.json
[ -f "$f" ] || exit 1
jq -e '. == {"name": "web", "image": "nginx:1.25", "replicas": 3, "ports": [80, 443],
             "labels": {"tier": "frontend", "team": "blue"}}' "$f" >/dev/null
