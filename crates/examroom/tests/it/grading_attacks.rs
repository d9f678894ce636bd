//! Grading under attack. A hostile candidate is root in their environment, has gcc, and knows that checks will run
//! there. These tests plant real payloads on every route we know of (and every directory a check could pick code
//! from), then grade as `sessions::ending::grade` does: freeze, then every check trusted, one at a time. A payload
//! that ran anywhere would print a marker, write canaries, leave a process behind, and exit 0 (which would pass
//! checks). The suite asserts: score 0 on the unsolved exams, no marker in any output, no canary, nothing alive.

use std::path::Path;
use std::time::Duration;

use examroom_core::EnvironmentId;
use examroom_exams::{Catalog, Exam, Script};
use examroom_runtime::{ExecOutput, ExecRequest, ExecutionRuntime};

use crate::common::Harness;

const MARKER: &str = "EXAMROOM-PWNED-MARKER";

/// The payload: as a shared library its constructor runs, as a program its main; either way it prints the marker,
/// writes canaries wherever it can reach the candidate's files, leaves a sleeper behind, and exits 0.
const PAYLOAD_C: &str = r#"
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void canary(const char *dir) {
    char p[600];
    snprintf(p, sizeof p, "%s/EXAMROOM-CANARY", dir);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) { if (write(fd, "x", 1) < 0) {} close(fd); }
}
static void pwn(void) {
    const char m[] = "EXAMROOM-PWNED-MARKER\n";
    if (write(1, m, sizeof m - 1) < 0) {}
    if (write(2, m, sizeof m - 1) < 0) {}
    /* On the candidate's own side (root, no grading view) the payload only prints: canaries mean grading. */
    if (access("/examroom", F_OK) != 0 && access("/candidate", F_OK) != 0 && getuid() == 0) _exit(0);
    canary("/root"); canary("/srv"); canary("/tmp"); canary("/var/tmp"); canary("/candidate/root");
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[300];
        snprintf(p, sizeof p, "/proc/%s/root/root", e->d_name); canary(p);
        snprintf(p, sizeof p, "/proc/%s/cwd", e->d_name); canary(p);
    }
    if (fork() == 0) {
        setsid();
        execl("/bin/sleep", "EXAMROOM-PWNED-sleeper", "600", (char *)0);
        _exit(0);
    }
    _exit(0);
}
__attribute__((constructor)) static void init(void) { pwn(); }
int main(void) { pwn(); return 0; }
"#;

/// A process that waits for grading: the moment it saw a check's process (the checks' uid, `examroom-run`,
/// `mktemp -d`, a probe) it would write canaries, also into every process's root. Static, so that the candidate's own
/// loader tampering does not touch it. It is frozen before any check runs.
const WAITER_C: &str = r#"
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static void drop(const char *p) { int fd = open(p, O_CREAT | O_WRONLY, 0644); if (fd >= 0) { if (write(fd, "w", 1) < 0) {} close(fd); } }
static void hit(void) {
    drop("/root/EXAMROOM-CANARY-waiter");
    DIR *d = opendir("/proc"); struct dirent *e;
    while (d && (e = readdir(d))) { char p[300]; snprintf(p, sizeof p, "/proc/%s/root/tmp/EXAMROOM-CANARY-waiter", e->d_name); drop(p); }
    if (d) closedir(d);
}
int main(void) {
    for (;;) {
        DIR *d = opendir("/proc"); struct dirent *e;
        while (d && (e = readdir(d))) {
            char p[300], buf[4096]; struct stat st;
            snprintf(p, sizeof p, "/proc/%s", e->d_name);
            if (stat(p, &st) == 0 && st.st_uid == 65533) hit();
            snprintf(p, sizeof p, "/proc/%s/cmdline", e->d_name);
            int fd = open(p, O_RDONLY); if (fd < 0) continue;
            ssize_t n = read(fd, buf, sizeof buf - 1); close(fd);
            if (n <= 0) continue;
            for (ssize_t i = 0; i < n; i++) if (!buf[i]) buf[i] = ' ';
            buf[n] = 0;
            /* Split literals: the planting shell's own command line holds this source. */
            if (strstr(buf, "examroom" "-run") || strstr(buf, "mkt" "emp -d") || strstr(buf, "nosuchuser" "-probe")) hit();
        }
        if (d) closedir(d);
        usleep(20000);
    }
}
"#;

/// Plants every route. Runs as root inside the environment, as the candidate would. The order matters only because
/// the routes break the candidate's own tools: whatever needs a working toolchain comes first, `ld.so.preload` last.
const PLANT: &str = r#"
set -e
mkdir -p /root/src /root/lib /root/bin /home/alice/bin /opt/bin /srv/bin /var/tmp /usr/local/lib "/root/libnss_"
cat > /root/src/pwn.c <<'PWN'
@PAYLOAD@
PWN
cat > /root/src/waiter.c <<'WAITER'
@WAITER@
WAITER
gcc -O0 -o /root/pwn /root/src/pwn.c
gcc -O0 -shared -fPIC -o /root/libpwn.so /root/src/pwn.c
gcc -O0 -static -o /root/waiter /root/src/waiter.c
cp /root/libpwn.so "/root/libnss_/x.so.2"
for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/local/lib /root/lib; do
    cp /root/libpwn.so "$d/libnss_pwn.so.2" 2>/dev/null || true
done
for t in cp rm chmod ln; do cp "$(command -v $t)" "/root/.$t"; done
# Accounts with odd shells.
echo 'alice:x:1000:1000:Alice:/home/alice:/root/pwn' >> /etc/passwd
sed -i 's#^root:\(.*\):/bin/bash$#root:\1:/root/pwn#' /etc/passwd
# The environment: PAM's environment file, login scripts, shell start-up files, BASH_ENV and ENV.
printf 'LD_PRELOAD=/root/libpwn.so\nBASH_ENV=/root/pwn.sh\nENV=/root/pwn.sh\nLD_LIBRARY_PATH=/root/lib\n' > /etc/environment
printf '#!/bin/sh\n/root/pwn\necho EXAMROOM-PWNED-MARKER\nexit 0\n' > /root/pwn.sh
/root/.chmod 755 /root/pwn.sh
for f in /etc/profile.d/000-pwn.sh /etc/profile /etc/bash.bashrc /root/.bashrc /root/.profile /root/.bash_profile \
         /root/.bash_login /root/.zshenv /root/.inputrc; do
    /root/.cp /root/pwn.sh "$f"
done
# Locale and gconv data that would name the payload.
mkdir -p /usr/lib/x86_64-linux-gnu/gconv /etc/default
printf 'module INTERNAL PWN// /root/libpwn 1\nmodule PWN// INTERNAL /root/libpwn 1\nalias UTF-8// PWN//\n' \
    > /usr/lib/x86_64-linux-gnu/gconv/gconv-modules
echo 'C.UTF-8 /root/locale' > /etc/locale.alias
printf 'LANG=/root/locale\nLC_ALL=/root/locale\n' > /etc/default/locale
# Interpreters that read code from /etc or /usr/local; git, ssh and alternatives.
for d in /etc/python3*; do printf 'import os\nos.write(1, b"EXAMROOM-PWNED-MARKER\\n")\nos._exit(0)\n' > "$d/sitecustomize.py"; done
mkdir -p /usr/local/lib/python3.11/dist-packages /usr/local/lib/python3/dist-packages
for d in /usr/local/lib/python3.11/dist-packages /usr/local/lib/python3/dist-packages; do
    echo 'import os; os.write(1, b"EXAMROOM-PWNED-MARKER\n"); os._exit(0)' > "$d/000-pwn.pth"
done
mkdir -p /etc/perl /usr/local/share/perl/5.36.0
for d in /etc/perl /usr/local/share/perl/5.36.0; do printf 'print "EXAMROOM-PWNED-MARKER\\n"; exit 0;\n1;\n' > "$d/strict.pm"; done
printf '[core]\n\tfsmonitor = "echo EXAMROOM-PWNED-MARKER; /root/pwn"\n\tpager = /root/pwn\n[alias]\n\tlog = !/root/pwn\n' > /etc/gitconfig
/root/.cp /etc/gitconfig /root/.gitconfig
mkdir -p /etc/ssh; printf 'Host *\n  ProxyCommand /root/pwn\n  LocalCommand /root/pwn\n' > /etc/ssh/ssh_config
mkdir -p /etc/alternatives
for a in nawk pager editor; do /root/.ln -sfn /root/pwn "/etc/alternatives/$a"; done
/root/.ln -sfn /usr/bin/true /etc/alternatives/awk
# Symlinks out of the candidate's files, where checks read answers.
mkdir -p /root/answers /srv/www /etc/cron.d /srv/archive /srv/www/site /root/inbox
/root/.ln -sfn /proc/self/fd/0 /root/hello.txt
/root/.ln -sfn /proc/self/environ /root/big-files.txt
/root/.ln -sfn /dev/stdin /root/answers/error-count
/root/.ln -sfn /examroom/run.sock /root/answers/top-ip
/root/.ln -sfn /proc/1/root/etc/shadow /root/answers/not-found
/root/.ln -sfn /tmp /srv/project
/root/.ln -sfn /candidate/root /srv/logs
/root/.ln -sfn /proc/self/cwd /etc/cron.d/rotate
# Files with odd names where checks list directories.
for n in '$(pwn)' '`pwn`' '; pwn' '-exec' '--help' "$(printf 'a\nb')" '*' ' ' 'x;id'; do
    : > "/srv/archive/$n"; : > "/srv/www/site/$n"; : > "/root/inbox/$n"
done
# The process that waits for grading.
/root/waiter </dev/null >/dev/null 2>&1 &
# A program named like every tool a check might call, in every directory a check could pick code from.
tools="grep egrep fgrep awk mawk sed stat find id getent pgrep ps cat head tail cut sort uniq tr ls readlink test [ \
       timeout sh bash dash python3 perl git ssh wc cmp diff env mktemp rm printf echo true false tar xargs"
for d in /usr/local/bin /usr/local/sbin /root /root/bin /home/alice/bin /opt/bin /srv/bin /tmp /var/tmp /usr/bin /usr/sbin; do
    for t in $tools; do
        /root/.rm -f "$d/$t"; /root/.cp /root/pwn "$d/$t"
    done
done
# NSS: a relative service name (the confirmed route) and a module of that name in every library directory.
printf 'passwd: /x pwn files\ngroup: /x pwn files\nshadow: /x files\nhosts: /x files\n' > /etc/nsswitch.conf
# The loader: configured library paths with fake libraries that checks' tools load, its cache, and the preload.
echo /root/lib > /etc/ld.so.conf.d/000-pwn.conf
echo /usr/local/lib >> /etc/ld.so.conf.d/000-pwn.conf
for l in libselinux.so.1 libacl.so.1 libpcre2-8.so.0 libattr.so.1 libcap.so.2 libprocps.so.8 libproc2.so.0; do
    /root/.cp /root/libpwn.so "/root/lib/$l"; /root/.cp /root/libpwn.so "/usr/local/lib/$l"
done
/sbin/ldconfig
echo /root/libpwn.so > /etc/ld.so.preload
echo planted
"#;

/// Checks that pass only if a payload ran (each would fail on a clean base): the routes through interpreters, git,
/// ssh, the alternatives, login shells and NSS that no sample check happens to take.
const PROBES: &[(&str, &str)] = &[
    ("python", "#!/bin/sh\npython3 -c 'raise SystemExit(3)'\n"),
    ("python-site", "#!/usr/bin/python3\nraise SystemExit(3)\n"),
    ("perl", "#!/bin/sh\nperl -e 'use strict; exit 3'\n"),
    ("awk", "#!/bin/sh\nawk 'BEGIN { exit 3 }'\n"),
    ("login-shell", "#!/bin/sh\nbash -l -c 'exit 3'\n"),
    ("interactive-shell", "#!/bin/sh\nbash -i -c 'exit 3' </dev/null\n"),
    ("bash-env", "#!/bin/bash\nbash -c 'exit 3'\n"),
    ("sh-env", "#!/bin/sh\nsh -c 'exit 3'\n"),
    ("nss", "#!/bin/sh\nid nosuchuser-probe >/dev/null 2>&1 && exit 0\ngetent passwd nosuchuser-probe && exit 0\nexit 3\n"),
    ("ls", "#!/bin/sh\nls /nonexistent-probe\n"),
    ("git", "#!/bin/sh\ncommand -v git >/dev/null || exit 3\ncd /tmp && git init -q probe && cd probe && git status >/dev/null 2>&1\ngit log >/dev/null 2>&1 && exit 0\nexit 3\n"),
    ("ssh", "#!/bin/sh\ncommand -v ssh >/dev/null || exit 3\nssh -G localhost | grep -qi proxycommand && exit 0\nexit 3\n"),
    ("path", "#!/bin/sh\nPATH=/usr/local/bin:/root/bin:/root:/opt/bin:/tmp:$PATH\ngrep -q probe /nonexistent-probe\n"),
    ("cwd", "#!/bin/sh\ncd /root && ./grep -q probe /nonexistent-probe\n"),
    ("symlink", "#!/bin/sh\nf=/root/hello.txt\n[ \"$(cat \"$f\" 2>/dev/null)\" = hello ]\n"),
    ("odd-names", "#!/bin/sh\nfor f in /srv/archive/*; do [ -e \"$f\" ] && eval \"true\"; done\nexit 3\n"),
];

fn catalog() -> Catalog {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams");
    Catalog::load(&dir)
}

fn script(name: &str, body: &str) -> Script {
    Script { path: format!("probe/{name}.sh").into(), body: body.to_string() }
}

async fn root_sh(h: &Harness, id: &EnvironmentId, body: &str, stdin: &str) -> ExecOutput {
    let req = ExecRequest {
        argv: vec!["/bin/sh".into(), "-c".into(), body.into()],
        stdin: stdin.as_bytes().to_vec(),
        timeout: Duration::from_secs(120),
        ..ExecRequest::shell("")
    };
    h.rt.exec(id, req).await.expect("exec")
}

async fn plant(h: &Harness, id: &EnvironmentId) {
    let script = PLANT.replace("@PAYLOAD@", PAYLOAD_C).replace("@WAITER@", WAITER_C);
    let out = root_sh(h, id, &script, "").await;
    assert_eq!(
        out.exit_code,
        Some(0),
        "planting failed: {} {}",
        out.stdout_text(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The payloads are live on the candidate's side: their own grep is the payload.
    let own = root_sh(h, id, "grep -q x /nonexistent; echo status=$?", "").await;
    assert!(own.stdout_text().contains(MARKER), "the payload does not run for the candidate: {own:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Runs `checks` as grading does (frozen, trusted, one at a time). Returns (check name, passed, output).
async fn grade(h: &Harness, id: &EnvironmentId, checks: &[(String, Script)]) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    if let Err(e) = h.rt.freeze(id).await {
        // A machine booted again for grading whose candidate broke its boot (their library preloaded into PID 1):
        // not graded, with the reason (the session's result says so).
        assert!(machine(h) && e.to_string().contains("PID 1"), "freeze: {e}");
        return checks.iter().map(|(n, _)| (n.clone(), false, e.to_string())).collect();
    }
    for (name, s) in checks {
        let req = examroom_sessions::provision::script_request(s, Duration::from_secs(20), 64 * 1024);
        let r = match h.rt.exec_trusted(id, req).await {
            Ok(r) => r,
            // The same, noticed once the machine's PID 1 has died: the environment is lost, and not graded.
            Err(e) if machine(h) && shim_log(h, id).contains("environment lost") => {
                return checks.iter().map(|(n, _)| (n.clone(), false, e.to_string())).collect();
            }
            Err(e) => panic!("trusted exec: {e}: {}", shim_log(h, id)),
        };
        let text = format!("{}{}", r.stdout_text(), String::from_utf8_lossy(&r.stderr));
        out.push((name.clone(), r.exit_code == Some(0) && !r.timed_out, text));
    }
    out
}

/// After grading: no canary anywhere in the candidate's files, no payload process on the whole host, and an empty
/// grading group.
async fn assert_nothing_happened(h: &Harness, id: &EnvironmentId, results: &[(String, bool, String)]) {
    let passed: Vec<&String> = results.iter().filter(|r| r.1).map(|r| &r.0).collect();
    assert!(passed.is_empty(), "checks passed on an unsolved, attacked environment: {passed:?}");
    for (name, _, text) in results {
        assert!(!text.contains(MARKER), "check {name} ran the payload: {text}");
    }
    if machine(h) {
        // A machine boots again for grading and runs what its candidate put in it: their payload may run in it, as
        // their root, which is theirs to do. What matters is above (no check ran it, none passed) and below (nothing
        // of grading's outlived it).
        return assert_grading_group_empty(id);
    }
    let look = script(
        "look",
        "#!/bin/sh\nfind /candidate -xdev -name 'EXAMROOM-CANARY*' 2>/dev/null\nps -eo args | grep -c '^EXAMROOM-PWNED' || true\n",
    );
    let req = examroom_sessions::provision::script_request(&look, Duration::from_secs(30), 64 * 1024);
    let seen = h.rt.exec_trusted(id, req).await.expect("look");
    assert_eq!(seen.stdout_text(), "0\n", "canaries or payload processes inside: {seen:?}");
    let mut alive = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).starts_with("EXAMROOM-PWNED") {
                alive.push(e.file_name());
            }
        }
    }
    assert!(alive.is_empty(), "payload processes alive on the host: {alive:?}");
    assert_grading_group_empty(id);
}

fn shim_log(h: &Harness, id: &EnvironmentId) -> String {
    std::fs::read_to_string(h.state_dir.join(&h.label).join(id.to_string()).join("shim.log")).unwrap_or_default()
}

/// Whether the harness makes `system` environments (the planted test uses each exam's profile).
fn machine(h: &Harness) -> bool {
    h.profile == examroom_runtime::Profile::System
}

fn assert_grading_group_empty(id: &EnvironmentId) {
    let grade_group = format!("{id}.grade");
    for procs in cgroup_procs(&grade_group) {
        let left = std::fs::read_to_string(&procs).unwrap_or_default();
        assert!(left.trim().is_empty(), "processes left in the grading group {}: {left}", procs.display());
    }
}

/// `cgroup.procs` of every directory named `name` under /sys/fs/cgroup (all hierarchies).
fn cgroup_procs(name: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, out: &mut Vec<std::path::PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if e.file_name() == name {
                    out.push(p.join("cgroup.procs"));
                } else {
                    walk(&p, name, depth + 1, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 0, &mut out);
    out
}

fn exam_checks(exam: &Exam) -> Vec<(String, Script)> {
    exam.tasks
        .iter()
        .flat_map(|t| t.checks.iter().map(move |c| (format!("{}/{}", t.id, c.id), c.script.clone())))
        .collect()
}

/// Every sample exam, unsolved, with every route planted: score 0, and the payload never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_payloads_never_run_during_grading() {
    let c = catalog();
    for exam in c.exams().filter(|e| e.tasks.len() >= 5) {
        let h = Harness::for_profile(examroom_runtime::Profile::parse(&exam.environment.profile).unwrap());
        let id = h.create().await;
        for (task, setup) in exam.setup_steps() {
            let req = examroom_sessions::provision::script_request(setup, Duration::from_secs(60), 64 * 1024);
            let out = h.rt.exec(&id, req).await.unwrap();
            assert_eq!(out.exit_code, Some(0), "{}: setup of {}: {out:?}", exam.id, task.id);
        }
        plant(&h, &id).await;
        let results = grade(&h, &id, &exam_checks(exam)).await;
        assert_nothing_happened(&h, &id, &results).await;
        h.teardown().await;
    }
}

/// Checks through interpreters, git, ssh, login shells, NSS and the alternatives: each passes only if a payload
/// runs, and none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_through_interpreters_shells_and_libraries_are_closed() {
    let h = Harness::new();
    let id = h.create().await;
    // Each probe fails on a clean environment.
    let probes: Vec<(String, Script)> = PROBES.iter().map(|(n, b)| (n.to_string(), script(n, b))).collect();
    for (name, s) in &probes {
        let req = examroom_sessions::provision::script_request(s, Duration::from_secs(20), 64 * 1024);
        let r = h.rt.exec_trusted(&id, req).await.unwrap();
        assert_ne!(r.exit_code, Some(0), "probe {name} passes on a clean environment: {r:?}");
    }
    plant(&h, &id).await;
    let results = grade(&h, &id, &probes).await;
    assert_nothing_happened(&h, &id, &results).await;
    h.teardown().await;
}

/// Checks read the candidate's processes (`ps`, `pgrep`, `/proc/<pid>/{status,stat,cmdline}`) but cannot reach
/// into them (`root`, `cwd`, `fd`, `mem`, `environ`, `map_files`), and the candidate's files are read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_see_processes_but_cannot_reach_into_them() {
    let h = Harness::new();
    let id = h.create().await;
    h.sh_ok(&id, "setsid sh -c 'cd /root && exec sleep 600' </dev/null >/dev/null 2>&1 & echo ok").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.rt.freeze(&id).await.unwrap();
    let body = r#"#!/bin/sh
pid=$(pgrep -x sleep | head -n 1)
[ -n "$pid" ] || { echo no-pid; exit 1; }
echo "uid=$(id -u) gid=$(id -g)"
grep -q '^State:' /proc/$pid/status && echo status-ok
[ -n "$(cat /proc/$pid/stat)" ] && echo stat-ok
tr '\0' ' ' < /proc/$pid/cmdline | grep -q 'sleep 600' && echo cmdline-ok
ps -o ni= -p "$pid" >/dev/null && echo ps-ok
for f in root/root cwd fd/0 environ mem map_files exe; do
    if cat /proc/$pid/$f >/dev/null 2>&1 || ls /proc/$pid/$f/ >/dev/null 2>&1; then echo "REACHED $f"; fi
done
readlink /proc/$pid/cwd && echo "REACHED cwd link"
touch /root/x 2>/dev/null && echo "WROTE /root"
touch /candidate/root/x 2>/dev/null && echo "WROTE /candidate"
touch /tmp/x && echo tmp-ok
"#;
    let req = examroom_sessions::provision::script_request(&script("proc", body), Duration::from_secs(20), 1 << 16);
    let r = h.rt.exec_trusted(&id, req).await.unwrap();
    let out = r.stdout_text();
    assert_eq!(
        out,
        "uid=65533 gid=65533\nstatus-ok\nstat-ok\ncmdline-ok\nps-ok\ntmp-ok\n",
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    h.teardown().await;
}

/// Nothing a check starts outlives it, and checks run one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outlives_a_check_and_checks_run_one_at_a_time() {
    let h = Harness::new();
    let id = h.create().await;
    h.rt.freeze(&id).await.unwrap();
    let leave = script("leave", "#!/bin/sh\nsetsid sleep 600 </dev/null >/dev/null 2>&1 &\n(sleep 601 &) \nexit 0\n");
    let req = examroom_sessions::provision::script_request(&leave, Duration::from_secs(20), 1 << 16);
    let r = h.rt.exec_trusted(&id, req).await.unwrap();
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    let look = script("look", "#!/bin/sh\npgrep -f 'sleep 60[01]' || echo none\n");
    let req = examroom_sessions::provision::script_request(&look, Duration::from_secs(20), 1 << 16);
    let r = h.rt.exec_trusted(&id, req).await.unwrap();
    assert_eq!(r.stdout_text(), "none\n", "a process outlived its check: {r:?}");
    for procs in cgroup_procs(&format!("{id}.grade")) {
        assert_eq!(std::fs::read_to_string(&procs).unwrap_or_default().trim(), "", "{}", procs.display());
    }
    // While one check runs, another is refused.
    let slow = ExecRequest { timeout: Duration::from_secs(20), ..ExecRequest::shell("sleep 2") };
    let rt2 = h.reopen();
    let first = tokio::spawn(async move { rt2.exec_trusted(&id, slow).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = h.rt.exec_trusted(&id, ExecRequest::shell("true")).await;
    match second {
        Err(e) if e.to_string().contains("already running") => {}
        other => panic!("a second concurrent check was not refused: {other:?}"),
    }
    assert_eq!(first.await.unwrap().unwrap().exit_code, Some(0));
    h.teardown().await;
}

/// `examroom-run` runs the candidate's program in a throwaway copy: their files and tools, their privileges, the
/// check's /tmp; what it changes does not stay; it cannot see the check; it is killed with its helper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examroom_run_runs_candidate_programs_in_a_throwaway_copy() {
    let h = Harness::new();
    let id = h.create().await;
    h.sh_ok(
        &id,
        r#"mkdir -p /root/bin && echo data > /root/data && printf '#!/bin/sh\necho mine\n' > /usr/local/bin/mytool && chmod 755 /usr/local/bin/mytool
cat > /root/bin/prog <<'EOF'
#!/bin/sh
echo "uid=$(id -u) arg=$1 data=$(cat /root/data) tool=$(mytool) in=$(cat "$2")"
echo changed > /root/data; echo new > /root/new
echo out > "$3"
echo "$(ps -eo uid= | grep -c 65533) $(ps -eo args= | grep -c [e]xamroom-run)" > /tmp/pids
setsid sleep 600 </dev/null >/dev/null 2>&1 &
exit 7
EOF
chmod 755 /root/bin/prog
printf '#!/bin/sh\nexec sleep 600\n' > /root/bin/forever; chmod 755 /root/bin/forever
echo ok"#,
    )
    .await;
    h.rt.freeze(&id).await.unwrap();
    let body = r#"#!/bin/sh
d=$(mktemp -d)
echo input > "$d/in"
out=$(cd "$d" && examroom-run /root/bin/prog "Ada Lovelace" "$d/in" "$d/out")
echo "status=$? $out"
cat "$d/out"
echo "checks-seen=$(cat /tmp/pids)"
cat /root/data; [ -e /root/new ] && echo "NEW STAYED"
pgrep -f 'sleep 600' && echo "SLEEPER LEFT"
timeout 1 examroom-run /root/bin/forever; echo "timeout=$?"
sleep 0.3; pgrep -f 'sleep 600' && echo "FOREVER LEFT"
examroom-run /root/bin/missing; echo "missing=$?"
examroom-run /root/data; echo "not-executable=$?"
/root/bin/prog 2>/dev/null; echo "direct=$?"
"#;
    let req = examroom_sessions::provision::script_request(&script("run", body), Duration::from_secs(30), 1 << 16);
    let r = h.rt.exec_trusted(&id, req).await.unwrap();
    let out = r.stdout_text();
    assert_eq!(
        out,
        "status=7 uid=0 arg=Ada Lovelace data=data tool=mine in=input\nout\nchecks-seen=0 0\ndata\ntimeout=124\nmissing=127\n\
         not-executable=126\ndirect=126\n",
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    h.teardown().await;
}

/// The detector works: a candidate process that is not frozen sees a check's process and writes its canary. (This is
/// why grading freezes first; the tests above would catch a grading that did not.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfrozen_waiter_would_catch_a_check() {
    let h = Harness::new();
    let id = h.create().await;
    let src = WAITER_C;
    let out = root_sh(
        &h,
        &id,
        "mkdir -p /root/src && cat > /root/src/w.c && gcc -O0 -static -o /root/waiter /root/src/w.c && \
         (/root/waiter </dev/null >/dev/null 2>&1 &) && echo started",
        src,
    )
    .await;
    assert_eq!(out.stdout_text().trim(), "started", "{out:?}");
    let req = ExecRequest { timeout: Duration::from_secs(10), ..ExecRequest::shell("sleep 1") };
    h.rt.exec_trusted(&id, req).await.unwrap();
    let seen = h.sh_ok(&id, "ls /root/EXAMROOM-CANARY-waiter").await;
    assert_eq!(seen.trim(), "/root/EXAMROOM-CANARY-waiter");
    h.teardown().await;
}

/// Through the API: a real session on the linux-basics sample, every route planted, submitted: score 0, and no
/// check's output (which proctors see) carries the payload's marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacked_session_scores_zero_through_the_api() {
    use crate::server::{state, wait_for, Client, Options, TestServer};
    use serde_json::json;
    fn samples(catalog: &Path) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams/linux-basics");
        let dst = catalog.join("linux-basics");
        let status = std::process::Command::new("cp").arg("-r").arg(&src).arg(&dst).status().unwrap();
        assert!(status.success());
    }
    let s = TestServer::start_with(Options { exams: samples, ..Options::default() }).await;
    let c = Client::default();
    let (alice, proctor) = (s.candidate("alice"), s.proctor("p"));
    let a = c.post(&s.url("/api/v1/sessions"), &alice, json!({ "exam_id": "linux-basics" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let sid = a.body["id"].as_str().unwrap().to_string();
    let view = wait_for(&c, &s, &alice, &sid, Duration::from_secs(60), |v| state(v) == "ready").await;
    let b = c.post(&s.url(&format!("/api/v1/sessions/{sid}/start")), &alice, json!({})).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let env: EnvironmentId = view["execution_environment_id"].as_str().unwrap().parse().unwrap();
    let mut cfg = examroom_runtime::sandbox::SandboxConfig::new(s.sandbox_dir(), &s.label);
    cfg.shim_program = crate::common::shim_program();
    let rt = examroom_runtime::sandbox::SandboxRuntime::new(cfg).unwrap();
    let script = PLANT.replace("@PAYLOAD@", PAYLOAD_C).replace("@WAITER@", WAITER_C);
    let req = ExecRequest {
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        timeout: Duration::from_secs(120),
        ..ExecRequest::shell("")
    };
    let out = rt.exec(&env, req).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "planting: {}", String::from_utf8_lossy(&out.stderr));
    let sub = c.post(&s.url(&format!("/api/v1/sessions/{sid}/submit")), &alice, json!({})).await;
    assert_eq!(sub.status, 200, "{}", sub.text);
    wait_for(&c, &s, &alice, &sid, Duration::from_secs(120), |v| state(v) == "terminated").await;
    let r = c.get(&s.url(&format!("/api/v1/sessions/{sid}/result")), &proctor).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["score"].as_u64()), (Some("graded"), Some(0)), "{}", r.text);
    assert!(!r.text.contains(MARKER), "a check's output carries the payload's marker: {}", r.text);
    s.teardown().await;
}
