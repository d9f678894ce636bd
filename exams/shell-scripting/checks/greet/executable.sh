#!/bin/sh
# /root/bin/greet is a regular file, executable by its owner, whose first line is a #! line. (The candidate's files
# are on noexec mounts in a check, so `test -x` is false there: read the mode instead.)
f=/root/bin/greet
[ -f "$f" ] && [ ! -L "$f" ] || exit 1
case "$(stat -c %A "$f")" in
    ???x*) ;;
    *) exit 1 ;;
esac
[ "$(head -c 2 "$f")" = "#!" ]
