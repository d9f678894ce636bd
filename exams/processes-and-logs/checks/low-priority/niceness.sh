#!/bin/sh
# A shell running batch.sh (however it was started: /opt/app/batch.sh, ./batch.sh, sh batch.sh...) has niceness 10.
for pid in $(pgrep -f '^([^ ]*/)?(ba|da)?sh( -[^ ]+)* ([^ ]*/)?batch[.]sh( |$)'); do
    [ "$(ps -o ni= -p "$pid" | tr -d ' ')" = 10 ] && exit 0
done
exit 1
