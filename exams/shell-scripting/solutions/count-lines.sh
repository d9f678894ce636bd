#!/bin/sh
set -e
mkdir -p /root/bin
cat > /root/bin/count-lines <<'SCRIPT'
#!/bin/sh
status=0
for f in "$@"; do
    if [ -f "$f" ]; then
        n=$(wc -l < "$f")
        printf '%s %s\n' "$n" "$f"
    else
        printf 'count-lines: %s: no such file\n' "$f" >&2
        status=1
    fi
done
exit "$status"
SCRIPT
chmod 755 /root/bin/count-lines
