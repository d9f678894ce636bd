#!/usr/bin/env bash
# Puts the Docker sample exams' image into a Docker Engine, from target/images/docker-debian.tar (made by
# `make images`; nothing is pulled): `docker import` as examroom/debian:1, with the environment and working directory
# the exams expect. Idempotent: an image already there with this tarball's checksum is kept.
# Usage: scripts/docker-images.sh [DOCKER_SOCKET]   (default: $DOCKER_HOST, else /var/run/docker.sock)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tarball="$root/target/images/docker-debian.tar"
sock="${1:-}"
if [ -n "$sock" ]; then export DOCKER_HOST="unix://$sock"; fi
[ -f "$tarball" ] || { echo "missing $tarball: run make images" >&2; exit 1; }
sum="$(cut -c1-16 "$tarball.sum")"
have="$(docker image inspect -f '{{ index .Config.Labels "examroom.rootfs" }}' examroom/debian:1 2>/dev/null || true)"
if [ "$have" = "$sum" ]; then
  echo "docker images: examroom/debian:1 is up to date"
  exit 0
fi
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /root' \
  --change "LABEL examroom.rootfs=$sum" \
  "$tarball" examroom/debian:1 >/dev/null
echo "docker images: examroom/debian:1 imported"
