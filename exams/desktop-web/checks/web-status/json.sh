#!/bin/sh
# Valid JSON, an object, ok is true (the boolean), service is "web".
python3 -c '
import json, sys
d = json.load(open("/srv/www/status.json"))
sys.exit(0 if isinstance(d, dict) and d.get("ok") is True and d.get("service") == "web" else 1)
' 2>/dev/null
