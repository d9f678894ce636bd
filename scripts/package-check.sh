#!/usr/bin/env bash
# The .deb's quality gates (`make test`, `make test-package`), on a package built by scripts/package.sh:
#   - lintian: no errors (warnings are printed; overrides, each justified, in dist/debian/examroom.lintian-overrides);
#   - `systemd-analyze verify` on the unit as installed (its ExecStart must be the packaged binary, its man page
#     there), in a root made of the package and the host's units;
#   - the files, their modes and owners, the conffile and the control fields (Depends, Suggests);
#   - a real install into a throwaway Debian root (the sample image target/images/tools.tar, a bookworm made by
#     debootstrap; `make images`), chrooted, maintainer scripts and all: the data directory 0700, `examroom doctor`
#     run, the configuration read from /etc/examroom/config.toml; then an upgrade, a remove and a purge.
#
# There is no systemd in that root (nor as this machine's PID 1), so the scripts' calls to deb-systemd-invoke,
# deb-systemd-helper and systemctl go to stubs that record them, with /run/systemd/system present so that the
# scripts take their systemd branch. What is exercised: which of those calls each step makes (an upgrade
# try-restarts the unit and stops nothing; only a removal stops it), and that a process running in the root before
# the upgrade (a stand-in for an environment's shim) still runs after it. What is not: systemd itself restarting the
# unit with KillMode=process (the shims' own cgroups and a server restart finding its environments again are tested
# by the integration tests).
#
# Usage: scripts/package-check.sh DEB [IMAGE_TAR]   (as root; prints "package: N passed, N failed" last)
set -uo pipefail
deb="${1:?usage: $0 DEB [IMAGE_TAR]}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
image="${2:-$repo/target/images/tools.tar}"
deb="$(realpath "$deb")"

# Everything below runs in a mount namespace of its own: the root's /proc, /sys and /dev mounts end with it.
if [ -z "${EXAMROOM_PACKAGE_CHECK_NS:-}" ]; then
  exec env EXAMROOM_PACKAGE_CHECK_NS=1 unshare --mount --propagation private -- "$0" "$deb" "$image"
fi

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/    /'; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: passes when the command succeeds; its output is shown when it fails
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$out"; fi
}

work="$(mktemp -d /tmp/examroom-package-check.XXXXXX)"
root="$work/root"
cleanup() {
  for m in dev sys proc; do umount -R "$root/$m" 2>/dev/null; done
  [ -n "${environment:-}" ] && kill -9 "$environment" 2>/dev/null
  if findmnt -rn -o TARGET | grep -q "^$root"; then
    echo "package: $root still has mounts; left in place" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT

# --- lintian ---------------------------------------------------------------------------------------------------
lintian --fail-on error --display-level '>=warning' "$deb" >"$work/lintian.log" 2>&1
status=$?
lintian_out="$(grep -v 'running with root privileges' "$work/lintian.log")"
[ -n "$lintian_out" ] && printf '%s\n' "$lintian_out" | sed 's/^/    lintian: /'
if [ "$status" = 0 ] && ! grep -q '^E:' <<<"$lintian_out"; then ok "lintian: no errors"; else not_ok "lintian: no errors"; fi

# --- the files in the package ----------------------------------------------------------------------------------
pkg="$work/pkg"
mkdir -p "$pkg"
dpkg-deb -x "$deb" "$pkg"
dpkg-deb -e "$deb" "$pkg/DEBIAN"
listing="$(dpkg-deb -c "$deb")"
mode_of() { awk -v p="./$1" '$6 == p { print $1 " " $2 }' <<<"$listing"; }
expect_file() { # expect_file PATH MODE
  local got
  got="$(mode_of "$1")"
  if [ "$got" = "$2 0/0" ]; then ok "file $1 $2"; else not_ok "file $1 $2" "in the package: ${got:-missing}"; fi
}
expect_file usr/bin/examroom -rwxr-xr-x
expect_file usr/lib/examroom/examroom-shim -rwxr-xr-x
expect_file lib/systemd/system/examroom.service -rw-r--r--
expect_file etc/examroom/config.toml -rw-r--r--
expect_file usr/share/man/man1/examroom.1.gz -rw-r--r--
expect_file usr/share/man/man1/examroom-serve.1.gz -rw-r--r--
expect_file usr/share/man/man1/examroom-config-show.1.gz -rw-r--r--
expect_file usr/share/bash-completion/completions/examroom -rw-r--r--
expect_file usr/share/zsh/vendor-completions/_examroom -rw-r--r--
expect_file usr/share/fish/vendor_completions.d/examroom.fish -rw-r--r--
expect_file usr/share/doc/examroom/copyright -rw-r--r--
expect_file usr/share/doc/examroom/changelog.Debian.gz -rw-r--r--
expect_file usr/share/lintian/overrides/examroom -rw-r--r--

# Every sample exam's file, with the mode git has for it.
exam_modes() {
  local want="" have=""
  while read -r mode _ _ path; do
    want+="$([ "$mode" = 100755 ] && echo -rwxr-xr-x || echo -rw-r--r--) ${path#exams/}"$'\n'
  done < <(git -C "$repo" ls-files -s exams)
  have="$(awk '$6 ~ /^\.\/usr\/share\/examroom\/exams\/.*[^\/]$/ { sub("./usr/share/examroom/exams/", "", $6); print $1 " " $6 }' \
    <<<"$listing" | sort)"
  diff <(sort <<<"$want" | sed '/^$/d') <(printf '%s\n' "$have")
}
check "the sample exams, every file with its mode" exam_modes
check "every entry is root's, none writable by group or others" \
  bash -c 'awk '\''$2 != "0/0" || substr($1, 6, 1) == "w" || substr($1, 9, 1) == "w" { print; bad = 1 } END { exit bad }'\'' <<<"$1"' _ "$listing"
check "conffiles: /etc/examroom/config.toml alone" test "$(cat "$pkg/DEBIAN/conffiles")" = /etc/examroom/config.toml
check "maintainer scripts postinst, prerm, postrm are 0755" \
  test "$(stat -c %a "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm" | sort -u)" = 755
depends="$(dpkg-deb -f "$deb" Depends)"
check "Depends names only the libraries the binary loads: $depends" \
  bash -c '! tr , "\n" <<<"$1" | sed "s/^ *//; s/ .*//" | grep -vxE "libc6|libgcc-s1"' _ "$depends"
suggests="$(dpkg-deb -f "$deb" Suggests)"
check "Suggests lxcfs, docker.io, postgresql: $suggests" \
  bash -c 'for p in lxcfs docker.io postgresql; do grep -qw "$p" <<<"$1" || exit 1; done' _ "$suggests"

# --- the unit ----------------------------------------------------------------------------------------------------
unit="$pkg/lib/systemd/system/examroom.service"
check "the unit runs the packaged binary with the packaged config" \
  grep -qx 'ExecStart=/usr/bin/examroom serve --config /etc/examroom/config.toml' "$unit"
check "the unit keeps KillMode=process" grep -qx 'KillMode=process' "$unit"
# systemd-analyze verify in a root of the package and the host's units (it needs sysinit.target and the like), with
# the package's manual pages for Documentation=man:examroom(1). Any message is a failure, not only the exit status.
cp -an /lib/systemd/system/. "$pkg/lib/systemd/system/"
verify() {
  local out
  out="$(MANPATH="$pkg/usr/share/man" systemd-analyze verify --root="$pkg" /lib/systemd/system/examroom.service 2>&1)" \
    && [ -z "$out" ] || { echo "${out:-exit status non-zero}"; return 1; }
}
check "systemd-analyze verify on the unit" verify

# --- a real install into a throwaway Debian root -----------------------------------------------------------------
if [ ! -f "$image" ]; then
  not_ok "install into a throwaway root" "no image at $image: run make images"
  echo "package: $passed passed, $failed failed"
  exit 1
fi
mkdir -p "$root"
/usr/bin/python3 - "$image" "$root" <<'EOF' || { not_ok "unpack $image"; echo "package: $passed passed, $failed failed"; exit 1; }
# Unpacks an OCI archive's layers, in order, into a directory (the sample image has no whiteouts).
import json, subprocess, sys, tarfile
image, root = sys.argv[1], sys.argv[2]
with tarfile.open(image) as t:
    blob = lambda d: t.extractfile("blobs/" + d.replace(":", "/"))
    index = json.load(t.extractfile("index.json"))
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    for layer in manifest["layers"]:
        subprocess.run(["tar", "-xz", "--numeric-owner", "-p", "-C", root], input=blob(layer["digest"]).read(), check=True)
EOF
mkdir -p "$root/proc" "$root/sys" "$root/dev"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
# The systemd helpers, recording their calls; /run/systemd/system says "systemd runs" to the scripts.
mkdir -p "$root/run/systemd/system"
for tool in deb-systemd-invoke deb-systemd-helper systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>/var/log/systemd-calls.log\n' "$tool" >"$root/usr/bin/$tool"
  chmod 755 "$root/usr/bin/$tool"
done
calls() { cat "$root/var/log/systemd-calls.log" 2>/dev/null; }
cp "$deb" "$root/tmp/examroom.deb"

install_log="$(in_root dpkg -i /tmp/examroom.deb 2>&1)"
status=$?
printf '%s\n' "$install_log" | sed 's/^/    dpkg -i: /'
check "dpkg -i into the throwaway root" test "$status" = 0
check "dpkg: installed" bash -c '[ "$(chroot "$1" dpkg-query -W -f "\${Status}" examroom)" = "install ok installed" ]' _ "$root"
check "dpkg --verify: every file as packaged" in_root dpkg --verify examroom
check "data directory /var/lib/examroom is 0700 root:root" test "$(stat -c '%a %U:%G' "$root/var/lib/examroom")" = "700 root:root"
check "postinst ran examroom doctor" \
  bash -c 'grep -q "checking this host (examroom doctor)" <<<"$1" && grep -Eq "(ok|warn|fail) +user_namespaces" <<<"$1" && grep -q "fuse" <<<"$1" && grep -q "pid_max" <<<"$1"' _ "$install_log"
check "a fresh install neither starts nor restarts nor stops the server" bash -c '! grep -E "start|stop" <<<"$1"' _ "$(calls)"
check "a fresh install records the unit's state" grep -qx "deb-systemd-helper update-state examroom.service" \
  "$root/var/log/systemd-calls.log"
version="$(in_root /usr/bin/examroom --version)"
check "examroom --version names the commit: $version" grep -Eq '^examroom [0-9.]+ \(commit ([0-9a-f]{7,}|unknown)\)$' <<<"$version"
shown="$(in_root /usr/bin/examroom config show 2>&1)"
check "config show reads /etc/examroom/config.toml by default" \
  grep -qx 'exams = "/usr/share/examroom/exams"  # /etc/examroom/config.toml' <<<"$shown"
shown="$(in_root EXAMROOM_POOL_MAX=3 EXAMROOM_TOKEN_SECRET=package-check-secret-0123456789abcdef \
  /usr/bin/examroom config show --listen 127.0.0.1:9999 2>&1)"
check "config show: a variable overrides the file" grep -qx 'pool_max = 3  # EXAMROOM_POOL_MAX' <<<"$shown"
check "config show: a flag overrides the file" grep -qx 'listen = "127.0.0.1:9999"  # flag --listen' <<<"$shown"
check "config show: the token secret is masked" \
  bash -c '! grep -q package-check-secret <<<"$1" && grep -q "token_secret = \"\*\{8\}\"" <<<"$1"' _ "$shown"
validate_samples() {
  local dir bad=0
  for dir in "$root"/usr/share/examroom/exams/*/; do
    dir="/usr/share/examroom/exams/$(basename "$dir")"
    # tools-image needs its image imported first; the others must validate as installed.
    [ "$(basename "$dir")" = tools-image ] && continue
    in_root /usr/bin/examroom exam validate "$dir" || bad=1
  done
  return $bad
}
check "the installed sample exams validate" validate_samples
check "bash completion loads" bash -c 'source "$1/usr/share/bash-completion/completions/examroom" && complete -p examroom' _ "$root"
check "the manual page is examroom(1)" bash -c 'zcat "$1" | grep -q "^\.TH examroom 1"' _ "$root/usr/share/man/man1/examroom.1.gz"

# Upgrade: the same package as version +1 (repacked), over an edited configuration and a running "environment".
upgrade="$work/upgrade"
dpkg-deb -R "$deb" "$upgrade"
old_version="$(dpkg-deb -f "$deb" Version)"
sed -i "s/^Version: .*/Version: $old_version+check1/" "$upgrade/DEBIAN/control"
dpkg-deb -b -Zgzip -z1 "$upgrade" "$root/tmp/examroom-upgrade.deb" >/dev/null
echo 'pool_max = 7' >>"$root/etc/examroom/config.toml"
chroot "$root" /bin/sleep 86400 &
environment=$!
sleep 0.2
: >"$root/var/log/systemd-calls.log"
upgrade_log="$(in_root dpkg -i /tmp/examroom-upgrade.deb 2>&1)"
status=$?
check "upgrade: dpkg -i of $old_version+check1" bash -c '[ "$1" = 0 ] || { echo "$2"; exit 1; }' _ "$status" "$upgrade_log"
check "upgrade: the server is try-restarted once, after the new files are in place" \
  bash -c '[ "$(grep -c "try-restart" <<<"$1")" = 1 ] && grep -qx "deb-systemd-invoke try-restart examroom.service" <<<"$1"' _ "$(calls)"
check "upgrade: nothing is stopped" bash -c '! grep -w stop <<<"$1"' _ "$(calls)"
check "upgrade: a process running in the root before it still runs" kill -0 "$environment"
check "upgrade: the operator's configuration is kept" grep -qx 'pool_max = 7' "$root/etc/examroom/config.toml"
check "upgrade: the data directory is still 0700" test "$(stat -c %a "$root/var/lib/examroom")" = 700

# Remove, then purge.
: >"$root/var/log/systemd-calls.log"
echo "results" >"$root/var/lib/examroom/examroom.db"
remove_log="$(in_root dpkg -r examroom 2>&1)"
status=$?
check "remove: dpkg -r" bash -c '[ "$1" = 0 ] || { echo "$2"; exit 1; }' _ "$status" "$remove_log"
check "remove: the server is stopped" grep -qx "deb-systemd-invoke stop examroom.service" "$root/var/log/systemd-calls.log"
check "remove: the unit is masked (as debhelper does)" grep -qx "deb-systemd-helper mask examroom.service" \
  "$root/var/log/systemd-calls.log"
check "remove: the binary is gone, the configuration and data stay" \
  bash -c '[ ! -e "$1/usr/bin/examroom" ] && [ -f "$1/etc/examroom/config.toml" ] && [ -f "$1/var/lib/examroom/examroom.db" ]' _ "$root"
purge_log="$(in_root dpkg -P examroom 2>&1)"
check "purge: the configuration is gone" bash -c '[ ! -e "$1/etc/examroom/config.toml" ] || { echo "$2"; exit 1; }' _ "$root" "$purge_log"
check "purge: a data directory that holds data is kept, and said so" \
  bash -c '[ -f "$1/var/lib/examroom/examroom.db" ] && grep -q "/var/lib/examroom is kept" <<<"$2"' _ "$root" "$purge_log"
check "purge: the unit's state is purged" grep -qx "deb-systemd-helper purge examroom.service" "$root/var/log/systemd-calls.log"
kill "$environment" 2>/dev/null
wait "$environment" 2>/dev/null
environment=""

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
