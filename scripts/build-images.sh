#!/usr/bin/env bash
# Builds the sample images (`make images`) into target/images/, offline from any container registry:
#   tools.tar  an OCI archive (`examroom image import` takes it) of a minimal Debian bookworm made by debootstrap from
#              deb.debian.org, with jq, python3 (and python3-yaml) and kubectl (Debian's kubernetes-client), packed
#              into 5 layers by `examroom image pack`. The sample exam `exams/tools-image` runs on it.
# Cached: built again only when this script changed (its checksum is kept next to the archive) or the archive is gone.
# Usage: scripts/build-images.sh EXAMROOM_BINARY
set -euo pipefail
bin="${1:?usage: $0 EXAMROOM_BINARY}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/images"
sum="$(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$out/tools.tar" ] && [ "$(cat "$out/tools.tar.sum" 2>/dev/null)" = "$sum" ]; then
  echo "images: target/images/tools.tar is up to date"
  exit 0
fi
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || { echo "debootstrap is missing: run scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d /tmp/examroom-images.XXXXXX)"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
echo "images: debootstrap bookworm (minbase, jq, python3, python3-yaml, kubernetes-client) into $work/rootfs"
/usr/sbin/debootstrap --variant=minbase --include=jq,python3,python3-yaml,kubernetes-client \
  bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/log/*.log
"$bin" image pack "$work/rootfs" --layers 5 --name examroom/tools:1 \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env EXAM_REGION=eu-west-1 \
  --workdir /root -o "$out/tools.tar.part"
mv "$out/tools.tar.part" "$out/tools.tar"
echo "$sum" >"$out/tools.tar.sum"
echo "images: target/images/tools.tar ($(du -h "$out/tools.tar" | cut -f1)) in $((SECONDS - started)) s"
