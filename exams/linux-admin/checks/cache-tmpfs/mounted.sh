#!/bin/sh
# The machine's own mount table (its PID 1's), after the reboot: a tmpfs at /srv/cache of 64 MiB with mode 0750,
# owned by www-data. The kernel shows a tmpfs's uid= and gid= in the host's terms: www-data is 33 inside, and
# base + 33 on the host, where base (a multiple of 65536) is where the environment's ids start.
line=$(awk '$5 == "/srv/cache" { l = $0 } END { print l }' /proc/1/mountinfo)
[ -n "$line" ] || exit 1
fstype=$(printf '%s\n' "$line" | sed 's/.* - //' | awk '{ print $1 }')
opts=$(printf '%s\n' "$line" | sed 's/.* - //' | awk '{ print $3 }')
[ "$fstype" = tmpfs ] || exit 1
www=$(getent passwd www-data | cut -d: -f3)
[ -n "$www" ] || exit 1
has() { case ",$opts," in *",$1,"*) return 0 ;; esac; return 1; }
has size=65536k || exit 1
has mode=750 || exit 1
id_is() {
    v=$(printf '%s\n' ",$opts," | sed -n "s/.*,$1=\([0-9]*\),.*/\1/p")
    [ -n "$v" ] && [ $((v % 65536)) -eq "$www" ]
}
id_is uid && id_is gid
