#!/usr/bin/env bash
# Builds the rootfs of the Docker sample exams' image (`make images`) into target/images/, offline from any container
# registry:
#   docker-debian.tar  a tarball of a minimal Debian bookworm made by debootstrap from deb.debian.org, with bash,
#                      procps, iproute2, ping, netcat, less, vim-tiny and PostgreSQL 15 (server and psql). The exam
#                      `exams/docker-postgres` runs its candidate's container and its `db` service on it.
# `scripts/docker-images.sh` imports it into a Docker Engine as examroom/debian:1 (`docker import`, no registry).
# Cached: built again only when this script changed (its checksum is kept next to the tarball) or the tarball is gone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/images"
sum="$(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$out/docker-debian.tar" ] && [ "$(cat "$out/docker-debian.tar.sum" 2>/dev/null)" = "$sum" ]; then
  echo "images: target/images/docker-debian.tar is up to date"
  exit 0
fi
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || { echo "debootstrap is missing: run scripts/install-deps.sh" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d /tmp/examroom-docker-images.XXXXXX)"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
pkgs=bash,procps,iproute2,iputils-ping,netcat-openbsd,less,vim-tiny,postgresql-15,postgresql-client-15
echo "images: debootstrap bookworm (minbase, $pkgs) into $work/rootfs"
/usr/sbin/debootstrap --variant=minbase --include="$pkgs" \
  bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/log/*.log
# PostgreSQL's cluster, made by the package in the chroot, must exist for the `db` service.
[ -f "$work/rootfs/etc/postgresql/15/main/postgresql.conf" ] || { echo "images: no PostgreSQL cluster in the rootfs" >&2; exit 1; }
tar -C "$work/rootfs" --numeric-owner -cf "$out/docker-debian.tar.part" .
mv "$out/docker-debian.tar.part" "$out/docker-debian.tar"
echo "$sum" >"$out/docker-debian.tar.sum"
echo "images: target/images/docker-debian.tar ($(du -h "$out/docker-debian.tar" | cut -f1)) in $((SECONDS - started)) s"
