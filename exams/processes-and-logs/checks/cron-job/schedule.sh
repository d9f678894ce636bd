#!/bin/sh
# Every line that is not a comment, blank or a variable is "30 2 * * * root /opt/app/rotate.sh"; there is one.
f=/etc/cron.d/rotate
[ -f "$f" ] || exit 1
awk '
    /^[ \t]*(#|$)/ { next }
    /^[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*=/ { next }
    {
        if (NF == 7 && $1 == "30" && ($2 == "2" || $2 == "02") && $3 == "*" && $4 == "*" && $5 == "*" &&
            $6 == "root" && $7 == "/opt/app/rotate.sh") ok = 1
        else bad = 1
    }
    END { exit !(ok && !bad) }
' "$f"
