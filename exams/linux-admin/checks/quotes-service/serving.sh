#!/bin/sh
# The machine was booted again before grading: an enabled service has been started by systemd. It may still be
# coming up, so the page is asked for a few times.
[ "$(systemctl is-active quotes.service 2>/dev/null)" = active ] || exit 1
want='<p>Talk is cheap. Show me the code.</p>'
i=0
while [ $i -lt 12 ]; do
    got=$(curl -sf --max-time 2 http://127.0.0.1:8080/index.html) && break
    i=$((i + 1))
    sleep 0.25
done
[ "$got" = "$want" ]
