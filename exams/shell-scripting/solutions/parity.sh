#!/bin/sh
set -e
mkdir -p /root/bin
cat > /root/bin/parity <<'SCRIPT'
#!/bin/sh
usage() {
    echo "usage: parity N (a whole number)" >&2
    exit 2
}
[ "$#" -eq 1 ] || usage
n=${1#-}
case $n in
    "" | *[!0-9]*) usage ;;
    *[02468]) echo even ;;
    *) echo odd ;;
esac
SCRIPT
chmod 755 /root/bin/parity
