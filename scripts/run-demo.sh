#!/usr/bin/env bash
# `make run`: serves the sample exams on http://127.0.0.1:8080 and prints how to use them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/examroom}
DATA=${EXAMROOM_DATA_DIR:-/var/lib/examroom}
LISTEN=${EXAMROOM_LISTEN:-127.0.0.1:8080}
# What candidates serve on their exam's ports opens in their browser from http://p<port>-<session>.localhost:8081, an
# origin of its own (never examroom's), which the browser resolves to this machine by itself.
PORTS=${EXAMROOM_PORTS_LISTEN:-127.0.0.1:8081}
BASE="http://$LISTEN"
mkdir -p "$DATA"
CAND=$("$BIN" token --data-dir "$DATA" --user demo-candidate --ttl 8h)
PROC=$("$BIN" token --data-dir "$DATA" --user demo-proctor --role proctor --ttl 8h)
cat <<EOT
examroom is starting on $BASE with the exams in ./exams (data in $DATA); candidates' ports on $PORTS.

Sign-in URLs (open one in a browser; the candidate lands on the exam catalog):
  candidate: $BASE/signin#token=$CAND
  proctor:   $BASE/signin#token=$PROC

Try it with curl:
  export T=$CAND
  curl -s -H "Authorization: Bearer \$T" $BASE/api/v1/exams
  curl -s -H "Authorization: Bearer \$T" -X POST -d '{"exam_id":"quick-check"}' $BASE/api/v1/sessions
  curl -sN -H "Authorization: Bearer \$T" $BASE/api/v1/sessions/<id>/status      # live status (SSE)
  curl -s -H "Authorization: Bearer \$T" -X POST $BASE/api/v1/sessions/<id>/start
  curl -s -H "Authorization: Bearer \$T" -X POST $BASE/api/v1/sessions/<id>/submit
More: $BASE/api/v1/openapi.json. Ctrl-C stops the server; environments keep running until their sessions end.
EOT
exec "$BIN" serve --listen "$LISTEN" --data-dir "$DATA" --exams exams --ports-listen "$PORTS"
