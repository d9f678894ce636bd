#!/bin/sh
# /root/deploy.yaml is an apps/v1 Deployment named web: 2 replicas, one container of nginx:1.25, selector and pod
# labels app=web (read with the image's python3 and python3-yaml; the file holds one document).
[ -f /root/deploy.yaml ] || exit 1
exec python3 - <<'PY'
import sys

import yaml

try:
    with open("/root/deploy.yaml") as f:
        doc = yaml.safe_load(f)
    spec = doc["spec"]
    containers = spec["template"]["spec"]["containers"]
    ok = (
        doc["apiVersion"] == "apps/v1"
        and doc["kind"] == "Deployment"
        and doc["metadata"]["name"] == "web"
        and spec["replicas"] == 2
        and len(containers) == 1
        and containers[0]["image"] == "nginx:1.25"
        and spec["selector"]["matchLabels"].get("app") == "web"
        and spec["template"]["metadata"]["labels"].get("app") == "web"
    )
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
