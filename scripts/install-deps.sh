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
# What candidates expect of a Linux machine on the host base (issue 11): sudo, cron, ping, strace.
have sudo || need+=(sudo)
[ -x /usr/sbin/cron ] || need+=(cron)
have ping || need+=(iputils-ping)
have strace || need+=(strace)
have curl || need+=(curl)
# What a `system` environment's administrator expects (issue 11): sshd, nft and iptables. Their services are never
# started on the host (policy-rc.d below), and when this script installed openssh-server, its units are disabled on
# the host again (an environment has its own /etc and enables what its exam asks for).
fresh_ssh=0
[ -x /usr/sbin/sshd ] || { need+=(openssh-server); fresh_ssh=1; }
# A machine boots the host's systemd, with its D-Bus (a minimal Debian image has neither).
[ -x /lib/systemd/systemd ] || need+=(systemd)
[ -x /usr/bin/dbus-daemon ] || need+=(dbus)
have nft || [ -x /usr/sbin/nft ] || need+=(nftables)
have iptables || [ -x /usr/sbin/iptables ] || need+=(iptables)
# The desktop (issue 13): a virtual X server with a VNC server in one process (TigerVNC's Xvnc), a window manager and
# a terminal emulator, run inside environments on the host base.
[ -x /usr/bin/Xvnc ] || need+=(tigervnc-standalone-server)
[ -x /usr/bin/openbox ] || need+=(openbox)
[ -x /usr/bin/xterm ] || need+=(xterm)
# The sample images (`make images`, issue 12): a Debian bookworm made by debootstrap from deb.debian.org.
[ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
# `examroom image pull` is tested against Debian's registry (docker-registry), started by the test on 127.0.0.1 (its
# own service is never started: policy-rc.d below).
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
# The PostgreSQL store (issue 17) is tested against Debian's PostgreSQL: the tests make a throwaway cluster with initdb
# and pg_ctl (as the `postgres` user the package creates) on a unix socket. The package's own cluster service is never
# started (policy-rc.d below).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# The TLS test (issue 17) makes a self-signed certificate with openssl.
have openssl || need+=(openssl)
# The Docker backend (issue 14) is tested against Debian's Docker Engine (docker.io: dockerd, containerd, runc and the
# docker CLI). Its service is never started on the host (policy-rc.d below): the tests start a dockerd of their own on
# a socket of their own. busybox-static makes the tests' tiny image (`docker import`, nothing is pulled).
have dockerd || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
# The web UI is built with node and npm (Vite 7 needs Node.js 20 or newer). `--browser` adds Chromium for the
# browser tests (`make test-web`), and only then. `--conformance` adds what scripts/api-conformance.sh runs:
# promtool (Debian's `prometheus` package, about 19 MB to download, 96 MB installed; no daemon is started) and a
# virtualenv with schemathesis and openapi-spec-validator from PyPI (Debian's python3; venv needs python3-venv).
# `--package` adds what the .deb needs (`make package`, its checks in `make test`): lintian from Debian, and
# cargo-deb from crates.io (`cargo install`, pinned below).
have node || need+=(nodejs)
have npm || need+=(npm)
browser=0 conformance=0 package=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --conformance) conformance=1 ;;
    --package) package=1 ;;
    *) echo "usage: $0 [--browser] [--conformance] [--package]" >&2; exit 2 ;;
  esac
done
if [ "$browser" = 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
if [ "$conformance" = 1 ]; then
  have promtool || need+=(prometheus)
  /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
fi
if [ "$package" = 1 ]; then
  have lintian || need+=(lintian)
  # dpkg-shlibdeps (cargo-deb's Depends: $auto), systemd-analyze (the unit's check), unshare and chroot (the
  # throwaway install).
  have dpkg-shlibdeps || need+=(dpkg-dev)
  have systemd-analyze || [ -x /usr/bin/systemd-analyze ] || need+=(systemd)
  have unshare || need+=(util-linux)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages with a daemon (prometheus) must not start it: a policy-rc.d that refuses every start, for the length of
  # this install, unless the machine has one already.
  policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  status=0
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || status=$?
  [ "$own_policy" = 1 ] && rm -f "$policy"
  [ "$status" = 0 ] || exit "$status"
  if [ "$fresh_ssh" = 1 ] && have systemctl; then
    systemctl disable ssh.service >/dev/null 2>&1 || true
  fi
fi
if [ "$conformance" = 1 ]; then
  # The virtualenv lives in target/ (ignored by git, removed by `make clean`); it is made again only when the pinned
  # versions change.
  root="$(cd "$(dirname "$0")/.." && pwd)"
  venv="$root/target/venv"
  pins="schemathesis==4.32.5 openapi-spec-validator==0.9.0"
  if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
    echo "installing into $venv: $pins"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q --disable-pip-version-check $pins
    echo "$pins" >"$venv/.pins"
  fi
fi
if ! have cargo; then
  echo "cargo is missing: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if [ "$package" = 1 ]; then
  # cargo-deb builds the .deb (`make package`); installed once into ~/.cargo/bin, again only for another version.
  cargo_deb=3.8.0
  if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$cargo_deb" ]; then
    echo "installing cargo-deb $cargo_deb (cargo install)"
    cargo install --quiet --locked cargo-deb --version "$cargo_deb"
  fi
fi
if have node && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
  echo "note: Node.js $(node --version) is too old to build the web UI (Vite 7 needs 20 or newer)" >&2
fi
# The runtime needs user namespaces and the cgroup hierarchies; say so plainly when the host lacks them.
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" = 0 ]; then
  echo "note: user namespaces are disabled (user.max_user_namespaces=0); environments fall back to an unprivileged uid" >&2
fi
[ -d /sys/fs/cgroup ] || { echo "no cgroup filesystem at /sys/fs/cgroup" >&2; exit 1; }
