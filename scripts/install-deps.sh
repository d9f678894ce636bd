#!/usr/bin/env bash
# Installs what examroom's build and tests need on a fresh Debian 12 machine (as root), and nothing that is there
# already. Idempotent. Everything comes from Debian's packages or crates.io; nothing else is downloaded.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
# The tools the sandbox tests use inside environments (the host base shares /usr), and the build's C toolchain.
have cc || need+=(gcc)
have make || need+=(make)
have ps || need+=(procps)
have ipcmk || need+=(util-linux)
have python3 || [ -x /usr/bin/python3 ] || need+=(python3)
[ -x /usr/bin/python3 ] || need+=(python3)
have tmux || need+=(tmux)
have curl || need+=(curl)
# The web UI is built with node and npm (Vite 7 needs Node.js 20 or newer). `--browser` adds Chromium for the
# browser tests (`make test-web`), and only then.
have node || need+=(nodejs)
have npm || need+=(npm)
if [ "${1:-}" = "--browser" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! have cargo; then
  echo "cargo is missing: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if have node && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
  echo "note: Node.js $(node --version) is too old to build the web UI (Vite 7 needs 20 or newer)" >&2
fi
# The runtime needs user namespaces and the cgroup hierarchies; say so plainly when the host lacks them.
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" = 0 ]; then
  echo "note: user namespaces are disabled (user.max_user_namespaces=0); environments fall back to an unprivileged uid" >&2
fi
[ -d /sys/fs/cgroup ] || { echo "no cgroup filesystem at /sys/fs/cgroup" >&2; exit 1; }
