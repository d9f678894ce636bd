//! Isolation and attack tests: what one environment can see of another and of the host, what its limits contain, and
//! which escapes from inside are refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::{
    Base, EnvironmentSpec, EnvironmentState, ExecOutput, ExecRequest, ExecutionRuntime, Profile, RuntimeError, Terminal,
};

use crate::common::*;

const T: Duration = Duration::from_secs(10);
/// A generous floor for "still answers".
const ANSWER: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// Host paths a test made; removed on drop, also when the test fails.
struct HostPaths(Vec<PathBuf>);

impl HostPaths {
    fn new() -> Self {
        HostPaths(Vec::new())
    }
    fn add(&mut self, p: impl Into<PathBuf>) -> PathBuf {
        let p = p.into();
        self.0.push(p.clone());
        p
    }
}

impl Drop for HostPaths {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir_all(p);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(p);
                }
                Err(_) => {}
            }
        }
    }
}

/// An argv-based request with the shell request's defaults.
fn argv_req(argv: &[&str]) -> ExecRequest {
    ExecRequest { argv: argv.iter().map(|s| s.to_string()).collect(), ..ExecRequest::shell("") }
}

/// Runs python3 code (passed as an argument, no shell quoting involved).
async fn py(h: &Harness, id: &EnvironmentId, code: &str) -> ExecOutput {
    h.rt.exec(id, argv_req(&["python3", "-c", code])).await.expect("exec python3")
}

/// Runs python3 code that must succeed; returns its stdout.
async fn py_ok(h: &Harness, id: &EnvironmentId, code: &str) -> String {
    let out = py(h, id, code).await;
    assert_eq!(out.exit_code, Some(0), "python failed: {}\ncode: {code}", describe(&out));
    out.stdout_text()
}

/// Writes a file inside an environment (through stdin, so the content needs no quoting).
async fn put_file(h: &Harness, id: &EnvironmentId, path: &str, content: &str) {
    let mut req = ExecRequest::shell(&format!("cat > {path}"));
    req.stdin = content.as_bytes().to_vec();
    let out = h.rt.exec(id, req).await.expect("exec");
    assert_eq!(out.exit_code, Some(0), "writing {path}: {}", describe(&out));
}

fn stderr(o: &ExecOutput) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn describe(o: &ExecOutput) -> String {
    format!(
        "exit {:?} signal {:?} timed_out {} stdout {:?} stderr {:?}",
        o.exit_code,
        o.signal,
        o.timed_out,
        o.stdout_text(),
        stderr(o)
    )
}

/// Types `echo ok-$((1000+n))` and waits for `ok-<1000+n>` (the typed line itself does not contain it). Returns how
/// long the round trip took; panics after `within`.
async fn round_trip(term: &mut Terminal, n: u32, within: Duration) -> Duration {
    let t0 = Instant::now();
    type_line(term, &format!("echo ok-$((1000+{n}))")).await;
    expect_output(term, &format!("ok-{}", 1000 + n), within).await;
    t0.elapsed()
}

/// Retries a round trip until the terminal answers (a shell may be restarting); panics after `total`.
async fn eventually_answers(term: &mut Terminal, first_n: u32, total: Duration) {
    let deadline = Instant::now() + total;
    let mut n = first_n;
    loop {
        type_line(term, &format!("echo ok-$((1000+{n}))")).await;
        if try_expect(term, &format!("ok-{}", 1000 + n), Duration::from_secs(2)).await.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "the terminal did not answer within {total:?}");
        n += 1;
    }
}

/// Retries `echo alive` in an environment until it succeeds; panics after `total`.
async fn eventually_execs(h: &Harness, id: &EnvironmentId, total: Duration) {
    let deadline = Instant::now() + total;
    let mut last = String::new();
    while Instant::now() < deadline {
        match h.rt.exec(id, ExecRequest::shell("echo alive").with_timeout(Duration::from_secs(5))).await {
            Ok(o) if o.exit_code == Some(0) && o.stdout_text() == "alive\n" => return,
            Ok(o) => last = describe(&o),
            Err(e) => last = format!("error: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("exec did not work again within {total:?}; last: {last}");
}

/// Status of an environment, which must be running.
async fn assert_running(h: &Harness, id: &EnvironmentId) -> examroom_runtime::EnvironmentStatus {
    let st = h.rt.status(id).await.expect("status");
    assert_eq!(st.state, EnvironmentState::Running, "{st:?}");
    st
}

/// Non-empty, non-header data lines of `ipcs -m` output (segments start with their key, `0x...`).
fn shm_segments(ipcs: &str) -> Vec<String> {
    ipcs.lines().filter(|l| l.trim_start().starts_with("0x")).map(str::to_string).collect()
}

/// The host cgroup file of an environment in a v1 hierarchy, if present.
fn env_cgroup_file(h: &Harness, id: &EnvironmentId, controller: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("examroom")
            .join(&h.label)
            .join("envs")
            .join(id.to_string())
            .join(file),
    )
    .ok()
}

/// Every group below the environment's in one hierarchy.
fn env_cgroup_subgroups(h: &Harness, id: &EnvironmentId, controller: &str) -> Vec<PathBuf> {
    let top =
        Path::new("/sys/fs/cgroup").join(controller).join("examroom").join(&h.label).join("envs").join(id.to_string());
    let mut out = Vec::new();
    let mut pending = vec![top];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                pending.push(e.path());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------------
// 1. Environments and the host
// ---------------------------------------------------------------------------------------------------------------------

const LISTENER_PY: &str = r#"
import socket, sys, time
name = sys.argv[1]
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", 7777))
t.listen(8)
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind("\0" + name)
u.listen(8)
time.sleep(300)
"#;

const CONNECT_7777_PY: &str = r#"
import socket
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", 7777))
    print("connected")
except OSError as e:
    print(type(e).__name__, e.errno)
"#;

async fn two_environments_do_not_see_each_other(profile: Profile) {
    let tag = unique_label("iso");
    let mut host = HostPaths::new();
    // A hidden exam catalog under the host's /usr (which the host base exposes).
    let catalog_top = host.add(format!("/usr/share/examroom-it-{tag}"));
    let catalog = catalog_top.join("exams");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(catalog.join("answers.txt"), "the answer is 42\n").unwrap();
    // Host markers in /home and /root.
    let home_dir = host.add(format!("/home/examroom-it-{tag}"));
    std::fs::create_dir_all(&home_dir).unwrap();
    std::fs::write(home_dir.join("marker"), "host home\n").unwrap();
    let root_marker = host.add(format!("/root/examroom-it-{tag}"));
    std::fs::write(&root_marker, "host root\n").unwrap();
    assert!(Path::new("/run/examroom").exists(), "precondition: the host has /run/examroom (uid slots)");

    let catalog_c = catalog.clone();
    let h = Harness::for_profile_with(profile, move |c| c.hidden.push(catalog_c));
    let a = h.create().await;
    let b = h.create().await;
    let abstract_name = format!("examroom-it-abstract-{tag}");

    // --- A: a file, a background process, a shm segment, a TCP listener and an abstract unix socket.
    put_file(&h, &a, "/tmp/listen.py", LISTENER_PY).await;
    h.sh_ok(
        &a,
        &format!(
            "echo secret > /tmp/secret-a\n\
             setsid sleep 4242 >/dev/null 2>&1 < /dev/null &\n\
             setsid python3 /tmp/listen.py {abstract_name} >/dev/null 2>&1 < /dev/null &\n\
             ipcmk -M 4096"
        ),
    )
    .await;
    // Positive controls in A: everything is there and reachable.
    let deadline = Instant::now() + T;
    loop {
        let out = py(&h, &a, CONNECT_7777_PY).await.stdout_text();
        if out.trim() == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "A's own listener never came up: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(h.sh_ok(&a, "ps -eo args").await.contains("sleep 4242"));
    assert!(!shm_segments(&h.sh_ok(&a, "ipcs -m").await).is_empty(), "A does not see its own shm segment");
    assert!(h.sh_ok(&a, "cat /proc/net/unix").await.contains(&format!("@{abstract_name}")));
    h.sh_ok(&a, "test -e /tmp/secret-a").await;

    // --- B sees none of it.
    let ps = h.sh_ok(&b, "ps -eo args").await;
    assert!(!ps.contains("sleep 4242"), "B sees A's process:\n{ps}");
    assert!(!ps.contains("listen.py"), "B sees A's process:\n{ps}");
    let out = h.sh(&b, "test -e /tmp/secret-a").await;
    assert_eq!(out.exit_code, Some(1), "B sees A's file: {}", describe(&out));
    let ha = h.sh_ok(&a, "hostname").await.trim().to_string();
    let hb = h.sh_ok(&b, "hostname").await.trim().to_string();
    assert_ne!(ha, hb);
    assert!(ha.contains(&a.short()), "A's hostname {ha:?} lacks {}", a.short());
    assert!(hb.contains(&b.short()), "B's hostname {hb:?} lacks {}", b.short());
    let ipcs = h.sh_ok(&b, "ipcs -m").await;
    assert!(shm_segments(&ipcs).is_empty(), "B sees shm segments:\n{ipcs}");
    let conn = py(&h, &b, CONNECT_7777_PY).await.stdout_text();
    assert!(conn.starts_with("ConnectionRefusedError"), "B reached A's listener: {conn}");
    let unix = h.sh_ok(&b, "cat /proc/net/unix").await;
    assert!(!unix.contains(&abstract_name), "B sees A's abstract socket:\n{unix}");

    // --- The host: state directory, hidden catalog, homes, secrets, /var/lib and /run.
    for (what, id) in [("A", &a), ("B", &b)] {
        let sd = h.state_dir.display().to_string();
        let out = h.sh(id, &format!("test -e {sd}")).await;
        assert_eq!(out.exit_code, Some(1), "{what} sees the state directory {sd}");
        let cat = h.sh(id, &format!("cat {}/answers.txt", catalog.display())).await;
        assert_ne!(cat.exit_code, Some(0), "{what} reads the hidden catalog: {}", describe(&cat));
        assert!(!cat.stdout_text().contains("42"), "{what} reads the hidden catalog");
        let ls = h.sh(id, &format!("ls -A {}", catalog.display())).await;
        assert!(ls.stdout_text().trim().is_empty(), "{what} lists the hidden catalog: {}", describe(&ls));
    }
    let root_ls = h.sh_ok(&b, "ls -A /root").await;
    for entry in root_ls.lines() {
        assert!(entry.starts_with('.'), "/root inside has a non-dotfile {entry:?}: {root_ls:?}");
    }
    assert!(!root_ls.contains("examroom-it-"), "host /root marker visible: {root_ls}");
    let home_ls = h.sh_ok(&b, "ls -A /home").await;
    assert!(!home_ls.contains("examroom-it-"), "host /home marker visible: {home_ls}");
    for e in std::fs::read_dir("/home").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!home_ls.lines().any(|l| l == name), "host /home/{name} is visible inside");
    }
    let out = h.sh(&b, &format!("cat /home/examroom-it-{tag}/marker /root/examroom-it-{tag}")).await;
    assert_ne!(out.exit_code, Some(0));
    assert!(!out.stdout_text().contains("host"), "{}", describe(&out));

    let shadow = h.sh_ok(&b, "cat /etc/shadow").await;
    assert!(shadow.lines().count() > 0, "an empty shadow proves nothing");
    for line in shadow.lines() {
        let pw = line.split(':').nth(1).unwrap_or("");
        assert!(pw == "*" || pw.starts_with('!'), "/etc/shadow inside has a password: {line}");
    }
    let out = h.sh(&b, "test -e /run/examroom").await;
    assert_eq!(out.exit_code, Some(1), "host /run/examroom is visible inside");
    // A marker the host puts in its own /run never shows, in any profile.
    let run_marker = host.add(format!("/run/examroom-it-{tag}"));
    std::fs::write(&run_marker, "host run\n").unwrap();
    let out = h.sh(&b, &format!("ls -A /run; cat /run/examroom-it-{tag}")).await;
    assert!(
        !out.stdout_text().contains("examroom-it-") && !out.stdout_text().contains("host run"),
        "{}",
        describe(&out)
    );
    let var_lib_marker = host.add(format!("/var/lib/examroom-it-{tag}"));
    std::fs::write(&var_lib_marker, "host var lib\n").unwrap();
    let out = h.sh(&b, &format!("ls -A /var/lib; cat /var/lib/examroom-it-{tag}")).await;
    assert!(
        !out.stdout_text().contains("examroom-it-") && !out.stdout_text().contains("host var"),
        "{}",
        describe(&out)
    );
    let dirs: &[&str] = if expect(profile).machine_state_dirs { &[] } else { &["/run", "/var/lib"] };
    for dir in dirs {
        let inside = h.sh(&b, &format!("ls -A {dir}")).await.stdout_text();
        let host_entries: Vec<String> = std::fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        // Made inside on purpose: an empty /run/lock and /run/sshd, and dpkg's database (read-only, the base's).
        let ours = ["lock", "sshd", "dpkg"];
        for e in inside.lines().filter(|e| !ours.contains(e)) {
            assert!(!host_entries.iter().any(|x| x == e), "host {dir}/{e} is visible inside: {inside:?}");
        }
    }
    h.teardown().await;
    drop(host);
}

// ---------------------------------------------------------------------------------------------------------------------
// 2-4. Limits
// ---------------------------------------------------------------------------------------------------------------------

async fn fork_bomb_is_contained(profile: Profile) {
    let h = Harness::for_profile(profile);
    let a = h.create_spec(|s| s.limits.pids = 128).await;
    let b = h.create().await;
    let mut term_b = h.rt.attach(&b, "main").await.unwrap();
    round_trip(&mut term_b, 0, T).await;

    // The bomb's first process stays in the foreground (exec replaces the shell, no fork needed once the pids are
    // gone), so the exec runs until its timeout, which kills its whole process group.
    let bomb = async {
        let t0 = Instant::now();
        let r = h
            .rt
            .exec(&a, ExecRequest::shell("bash -c ':(){ :|:& };:'; exec sleep 30").with_timeout(Duration::from_secs(5)))
            .await;
        (r, t0.elapsed())
    };
    let probe = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut max_procs = 0;
        for n in 1..=5 {
            let took = round_trip(&mut term_b, n, ANSWER).await;
            assert!(took < ANSWER, "B's terminal took {took:?}");
            if let Ok(st) = h.rt.status(&a).await {
                max_procs = max_procs.max(st.processes);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        max_procs
    };
    let ((bomb_result, bomb_took), max_procs) = tokio::join!(bomb, probe);
    let out = bomb_result.expect("the fork bomb's exec must come back without error");
    assert!(bomb_took < Duration::from_secs(20), "the fork bomb's exec took {bomb_took:?}");
    assert!(out.timed_out || out.exit_code.is_some() || out.signal.is_some(), "{}", describe(&out));
    assert!(max_procs <= 128, "A had {max_procs} processes with pids.max = 128");
    if let Some(events) = env_cgroup_file(&h, &a, "pids", "pids.events") {
        // v1 counts a refused fork in the group it happened in: a machine's are below its top.
        let mut hit = 0u64;
        let mut all = events.clone();
        for sub in env_cgroup_subgroups(&h, &a, "pids") {
            if let Ok(e) = std::fs::read_to_string(sub.join("pids.events")) {
                all.push_str(&e);
            }
        }
        for l in all.lines() {
            hit += l.strip_prefix("max ").and_then(|n| n.trim().parse::<u64>().ok()).unwrap_or(0);
        }
        assert!(hit > 0, "the bomb never reached the pids limit ({all:?}, max seen {max_procs})");
    }

    // A survives: still running, and usable once its pids drain.
    assert_running(&h, &a).await;
    eventually_execs(&h, &a, Duration::from_secs(15)).await;
    let st = assert_running(&h, &a).await;
    assert!(st.processes < 16, "the bomb outlived its exec: {} processes", st.processes);
    round_trip(&mut term_b, 99, ANSWER).await;
    h.teardown().await;
}

async fn memory_hog_is_contained(profile: Profile) {
    let h = Harness::for_profile(profile);
    let a = h
        .create_spec(|s| {
            s.limits.memory_bytes = 128 << 20;
            s.limits.disk_bytes = 64 << 20;
        })
        .await;
    let b = h.create().await;
    assert_eq!(assert_running(&h, &a).await.oom_kills, 0);

    let hog = h
        .rt
        .exec(&a, ExecRequest::shell("python3 -c 'b = bytearray(400 << 20)'").with_timeout(Duration::from_secs(20)));
    let probe = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t0 = Instant::now();
        let o = h.rt.exec(&b, ExecRequest::shell("echo b-alive")).await.unwrap();
        (o, t0.elapsed())
    };
    let (hog, (b_out, b_took)) = tokio::join!(hog, probe);
    let out = hog.expect("the hog's exec must come back");
    assert_eq!(b_out.stdout_text(), "b-alive\n");
    assert!(b_took < ANSWER, "B answered after {b_took:?}");

    let killed = out.signal == Some(libc::SIGKILL) || out.exit_code == Some(128 + libc::SIGKILL);
    let memory_error = stderr(&out).contains("MemoryError");
    assert!(!out.timed_out, "the hog ran into its timeout instead of its limit: {}", describe(&out));
    assert!(killed || memory_error, "the hog was neither killed nor refused memory: {}", describe(&out));
    if killed {
        // The counter is read from the cgroup; give the kernel a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let st = assert_running(&h, &a).await;
            if st.oom_kills > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "killed, but oom_kills is 0: {}", describe(&out));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A's shell still answers.
    let mut term_a = h.rt.attach(&a, "main").await.unwrap();
    eventually_answers(&mut term_a, 0, T).await;
    assert_eq!(h.sh_ok(&a, "echo still").await, "still\n");
    assert_eq!(assert_running(&h, &b).await.oom_kills, 0, "B suffered from A's hog");
    h.teardown().await;
}

async fn filling_the_disk_gives_enospc_not_oom(profile: Profile) {
    let h = Harness::for_profile(profile);
    let a = h
        .create_spec(|s| {
            s.limits.memory_bytes = 256 << 20;
            s.limits.disk_bytes = 64 << 20;
        })
        .await;
    let out =
        h.rt.exec(
            &a,
            ExecRequest::shell("dd if=/dev/zero of=/tmp/fill bs=1M count=200").with_timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    assert!(!out.timed_out && out.signal.is_none(), "{}", describe(&out));
    assert_ne!(out.exit_code, Some(0), "200 MiB fit in a 64 MiB disk: {}", describe(&out));
    assert!(stderr(&out).contains("No space left on device"), "{}", describe(&out));
    let size: u64 = h.sh_ok(&a, "stat -c %s /tmp/fill").await.trim().parse().unwrap();
    assert!(size <= 64 << 20, "the file grew to {size} bytes");
    assert_eq!(h.sh_ok(&a, "echo still-here").await, "still-here\n");
    let mut term = h.rt.attach(&a, "main").await.unwrap();
    round_trip(&mut term, 1, ANSWER).await;
    let st = assert_running(&h, &a).await;
    assert_eq!(st.oom_kills, 0, "a full disk caused an OOM kill");
    // Space comes back once the file is removed.
    h.sh_ok(&a, "rm /tmp/fill && dd if=/dev/zero of=/tmp/small bs=1M count=8 2>/dev/null").await;
    h.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------------
// 5. Attacks from inside
// ---------------------------------------------------------------------------------------------------------------------

/// What each profile lets root inside do, reviewed against docs/SECURITY.md ("Profiles"). Every test that runs in
/// both profiles and expects something different reads it from here, so that no expectation flips quietly.
struct Expect {
    /// `mount -t tmpfs`, `unshare -m` and `unshare -n` work: root holds CAP_SYS_ADMIN over the machine's own mount
    /// and network namespaces (only theirs: masks stay locked, the host is out of reach). No profile may make a user
    /// namespace.
    own_mounts_and_namespaces: bool,
    /// The new mount API (`open_tree`, `fsopen`, `move_mount`, `mount_setattr`) passes the filter.
    mount_api: bool,
    /// CAP_SYS_ADMIN is effective and in the bounding set (in the environment's own user namespace).
    sys_admin: bool,
    /// `/run` is the machine's own tmpfs and `/var/lib` fills with its services' state, from the base's tmpfiles.d
    /// and units (so names may be the host's; a marker the host puts in its own still never shows).
    machine_state_dirs: bool,
    /// The kernel prints the `uid=` of a tmpfs mounted inside (a machine's `/run`) in the host's terms, so the
    /// environment's host uid range shows in mountinfo. Examroom's own mounts never name it.
    host_uid_in_own_tmpfs: bool,
    /// `/sys/class/net` lists the environment's interfaces. A machine's network namespace is made after `/sys` is
    /// mounted (it must be owned by the candidate's user namespace), and a new sysfs cannot be mounted over masks:
    /// its `/sys/class/net` is empty; `ip` (netlink) shows the interfaces.
    sys_class_net: bool,
    /// Processes the shim starts sit in a leaf group of the environment's (`/.examroom`), not at its top.
    entry_leaf: bool,
    /// `/run/sshd` exists before sshd runs (made by examroom; a machine's sshd makes it itself).
    run_sshd_made: bool,
}

fn expect(p: Profile) -> Expect {
    match p {
        Profile::Shell => Expect {
            own_mounts_and_namespaces: false,
            mount_api: false,
            sys_admin: false,
            machine_state_dirs: false,
            host_uid_in_own_tmpfs: false,
            sys_class_net: true,
            entry_leaf: false,
            run_sshd_made: true,
        },
        Profile::System => Expect {
            own_mounts_and_namespaces: true,
            mount_api: true,
            sys_admin: true,
            machine_state_dirs: true,
            host_uid_in_own_tmpfs: true,
            sys_class_net: false,
            entry_leaf: true,
            run_sshd_made: false,
        },
    }
}

fn refused(o: &ExecOutput) -> bool {
    let e = stderr(o).to_lowercase();
    o.exit_code.is_some_and(|c| c != 0) && (e.contains("permission denied") || e.contains("not permitted"))
}

const SYSCALLS_PY: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
S = ctypes.c_char_p
AT_FDCWD = -100
calls = [
    (425, (L(1), L(0))),                                   # io_uring_setup(1, NULL)
    (321, (L(0), L(0), L(0))),                             # bpf(BPF_MAP_CREATE, NULL, 0)
    (298, (L(0), L(0), L(-1), L(-1), L(0))),               # perf_event_open(NULL, ...)
    (250, (L(0), L(-3), L(1))),                            # keyctl(KEYCTL_GET_KEYRING_ID, session, create)
    (246, (L(0), L(0), L(0), L(0))),                       # kexec_load
    (175, (L(0), L(0), S(b""))),                           # init_module
    (313, (L(-1), S(b""), L(0))),                          # finit_module
    (428, (L(AT_FDCWD), S(b"/"), L(0))),                   # open_tree(AT_FDCWD, "/", 0)
    (430, (S(b"tmpfs"), L(0))),                            # fsopen("tmpfs", 0)
    (429, (L(-1), S(b""), L(AT_FDCWD), S(b"/mnt"), L(0))), # move_mount
    (442, (L(AT_FDCWD), S(b"/"), L(0), L(0), L(0))),       # mount_setattr
    (0x40000000 | 39, ()),                                 # getpid through the x32 ABI
]
for n, args in calls:
    ctypes.set_errno(0)
    r = libc.syscall(L(n), *args)
    print(n, r, ctypes.get_errno())
"#;

async fn attacks_from_inside_are_refused(profile: Profile) {
    let h = Harness::for_profile(profile);
    let id = h.create().await;
    let mut term = h.rt.attach(&id, "main").await.unwrap();
    round_trip(&mut term, 0, T).await;

    let exp = expect(profile);
    // Mounting, new namespaces: refused in a shell; a machine's own (its mount table, its nested namespaces).
    let out = h.sh(&id, "mount -t tmpfs x /mnt").await;
    let mounted = h.sh_ok(&id, "cat /proc/self/mountinfo").await.contains(" /mnt ");
    if exp.own_mounts_and_namespaces {
        assert_eq!(out.exit_code, Some(0), "mount: {}", describe(&out));
        assert!(mounted, "the machine's mount is not in its table");
        h.sh_ok(&id, "umount /mnt").await;
    } else {
        assert!(refused(&out), "mount: {}", describe(&out));
        assert!(!mounted, "something got mounted on /mnt");
    }
    for cmd in ["unshare -m true", "unshare -n true"] {
        let out = h.sh(&id, cmd).await;
        if exp.own_mounts_and_namespaces {
            assert_eq!(out.exit_code, Some(0), "{cmd}: {}", describe(&out));
        } else {
            assert!(refused(&out), "{cmd}: {}", describe(&out));
        }
    }
    // A user namespace of one's own is refused in both: its root could map any uid (grading's reserved one too).
    let out = h.sh(&id, "unshare -Ur true").await;
    assert!(refused(&out), "unshare -Ur: {}", describe(&out));

    // PID 1 (our init, or a machine's systemd from its execute-only copy) is out of reach.
    for cmd in ["ls /proc/1/root/", "cat /proc/1/environ"] {
        let out = h.sh(&id, cmd).await;
        assert!(out.exit_code != Some(0) && stderr(&out).contains("Permission denied"), "{cmd}: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{cmd} printed {:?}", out.stdout_text());
    }
    let out = py(
        &h,
        &id,
        "import ctypes; libc=ctypes.CDLL(None,use_errno=True); r=libc.ptrace(16,1,0,0); print(r, ctypes.get_errno())",
    )
    .await;
    assert_eq!(out.stdout_text().trim(), "-1 1", "PTRACE_ATTACH to init: {}", describe(&out));

    // System calls outside the allowlist.
    let out = py_ok(&h, &id, SYSCALLS_PY).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    for line in lines {
        let f: Vec<i64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
        let (n, rc, errno) = (f[0], f[1], f[2]);
        if exp.mount_api && [428, 429, 430, 442].contains(&n) {
            // Past the filter: the kernel answers (an fd, or an error about the arguments), never the filter's EPERM.
            assert!(rc >= 0 || (errno != 1 && errno != 38), "syscall {n} was filtered in a machine: {line}");
            continue;
        }
        assert_eq!(rc, -1, "syscall {n:#x} succeeded: {line}");
        assert!(errno == 1 || errno == 38, "syscall {n:#x} failed with errno {errno}, not EPERM/ENOSYS (not filtered)");
    }

    // Capabilities, no_new_privs, seccomp.
    let status = h.sh_ok(&id, "cat /proc/self/status").await;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    let cap_eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    assert_eq!(cap_eff & (1 << 21) != 0, exp.sys_admin, "CAP_SYS_ADMIN effective: {cap_eff:#x}");
    let cap_bnd = u64::from_str_radix(&field("CapBnd:"), 16).unwrap();
    assert_eq!(cap_bnd & (1 << 21) != 0, exp.sys_admin, "CAP_SYS_ADMIN in the bounding set: {cap_bnd:#x}");
    // Never what reaches the host or a device, in any profile: modules, raw I/O, the clock, tracing PID 1.
    for (bit, name) in [(16, "SYS_MODULE"), (17, "SYS_RAWIO"), (19, "SYS_PTRACE"), (25, "SYS_TIME"), (27, "MKNOD")] {
        assert_eq!(cap_bnd & (1 << bit), 0, "CAP_{name} is in the bounding set: {cap_bnd:#x}");
    }
    // No no_new_privs with a user namespace: the filter went in while CAP_SYS_ADMIN was held, so set-user-ID programs
    // work (and grant no more than root of the namespace with the candidate's bounding set).
    assert_eq!(field("NoNewPrivs:"), "0");
    assert_eq!(field("Seccomp:"), "2");

    // TIOCSTI needs a terminal.
    type_line(&mut term, r#"python3 -c 'import fcntl,termios,sys; fcntl.ioctl(sys.stdin.fileno(), termios.TIOCSTI, b"x")'; echo tiocsti-$((20+1))"#)
        .await;
    let seen = expect_output(&mut term, "tiocsti-21", T).await;
    assert!(seen.contains("PermissionError"), "TIOCSTI was not refused: {seen}");

    // Signals to init are dropped.
    let out = h.sh(&id, "kill -9 1; echo sent").await;
    assert_eq!(out.stdout_text(), "sent\n", "{}", describe(&out));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_running(&h, &id).await;
    assert_eq!(h.sh_ok(&id, "echo after-kill-1").await, "after-kill-1\n");
    round_trip(&mut term, 1, ANSWER).await;

    // kill -9 -1 kills everything the candidate may signal (the terminal's shell too), but not the environment.
    h.sh_ok(&id, "setsid sleep 777 >/dev/null 2>&1 < /dev/null & echo started").await;
    let out = h.sh(&id, "kill -9 -1; echo survived").await;
    assert_eq!(out.stdout_text(), "survived\n", "{}", describe(&out));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_running(&h, &id).await;
    assert!(!h.sh_ok(&id, "ps -eo args").await.contains("sleep 777"), "kill -9 -1 missed a process");
    eventually_answers(&mut term, 2, T).await;
    assert_eq!(h.sh_ok(&id, "echo after-kill-all").await, "after-kill-all\n");
    h.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------------
// 6. Network
// ---------------------------------------------------------------------------------------------------------------------

const UNREACHABLE_PY: &str = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.connect(("1.1.1.1", 53))
    u.send(b"x")
    print("udp sent")
except OSError as e:
    print("udp", e.errno, e.strerror)
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.settimeout(2)
try:
    t.connect(("1.1.1.1", 53))
    print("tcp connected")
except OSError as e:
    print("tcp", e.errno, e.strerror)
"#;

const LOOPBACK_PY: &str = r#"
import socket, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(100).upper())
    c.close()
threading.Thread(target=serve, daemon=True).start()
cl = socket.create_connection(srv.getsockname(), timeout=5)
cl.sendall(b"ping-loopback")
print(cl.recv(100).decode())
"#;

async fn network_is_loopback_only(profile: Profile) {
    let h = Harness::for_profile(profile);
    let id = h.create().await;
    let dev = h.sh_ok(&id, "cat /proc/net/dev").await;
    let ifaces: Vec<String> =
        dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(|s| s.trim().to_string()).collect();
    assert_eq!(ifaces, vec!["lo".to_string()], "interfaces inside: {dev}");
    let route = h.sh_ok(&id, "cat /proc/net/route").await;
    assert_eq!(route.lines().count(), 1, "routes inside: {route}");
    assert!(route.starts_with("Iface"), "{route}");

    let out = py_ok(&h, &id, UNREACHABLE_PY).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("udp 101 "), "UDP to 1.1.1.1: {out}");
    assert!(lines[1].starts_with("tcp 101 "), "TCP to 1.1.1.1: {out}");
    assert!(out.contains("Network is unreachable"), "{out}");

    assert_eq!(py_ok(&h, &id, LOOPBACK_PY).await.trim(), "PING-LOOPBACK");
    h.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------------
// 7-8. Users
// ---------------------------------------------------------------------------------------------------------------------

fn parse_map(map: &str) -> (u64, u64, u64) {
    let lines: Vec<&str> = map.lines().collect();
    assert_eq!(lines.len(), 1, "one range expected: {map:?}");
    let f: Vec<u64> = lines[0].split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f.len(), 3, "{map:?}");
    (f[0], f[1], f[2])
}

async fn uid_ranges_are_distinct_and_base_appears_root_owned(profile: Profile) {
    let tag = unique_label("uid");
    let mut host = HostPaths::new();
    let newfile = format!("/usr/bin/examroom-it-newfile-{tag}");
    assert!(!Path::new(&newfile).exists());
    // Only removed if the test wrongly makes it appear on the host.
    host.add(&newfile);

    let h = Harness::for_profile(profile);
    let a = h.create().await;
    let b = h.create().await;
    let mut bases = Vec::new();
    for id in [&a, &b] {
        for map in ["uid_map", "gid_map"] {
            // Inside, the candidate's namespace is nested in the environment's with the identity map: no host uid
            // shows.
            assert_eq!(parse_map(&h.sh_ok(id, &format!("cat /proc/self/{map}")).await), (0, 0, 65536), "{map}");
            // Seen from the host, the range is the environment's own.
            let st: serde_json::Value = serde_json::from_slice(
                &std::fs::read(h.state_dir.join(&h.label).join(id.to_string()).join("state.json")).unwrap(),
            )
            .unwrap();
            let init = st["init_pid"].as_i64().unwrap();
            let (inside, outside, count) = parse_map(&std::fs::read_to_string(format!("/proc/{init}/{map}")).unwrap());
            assert_eq!(inside, 0, "{map}");
            assert_eq!(count, 65536, "{map}");
            assert!(outside >= 65536, "{map}: the range starts at host uid {outside}, among ordinary users");
            if map == "uid_map" {
                bases.push(outside);
            }
        }
    }
    assert!(bases[0].abs_diff(bases[1]) >= 65536, "uid ranges overlap: {bases:?}");
    for id in [&a, &b] {
        assert_eq!(h.sh_ok(id, "stat -c %U:%G /usr/bin/ls").await.trim(), "root:root");
        assert_eq!(h.sh_ok(id, "id -u").await.trim(), "0");
    }

    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let base_passwd_path =
        examroom_runtime::sandbox::base_etc::current(Path::new("/"), &h.state_dir.join("base")).unwrap().join("passwd");
    let base_passwd = std::fs::read(&base_passwd_path).unwrap();
    h.sh_ok(&a, "echo x >> /etc/passwd").await;
    assert!(h.sh_ok(&a, "tail -n 1 /etc/passwd").await == "x\n", "the write inside did not take");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd, "the host's /etc/passwd changed");
    assert_eq!(std::fs::read(&base_passwd_path).unwrap(), base_passwd, "the shared curated /etc changed");
    assert_ne!(h.sh_ok(&b, "tail -n 1 /etc/passwd").await, "x\n", "B sees A's /etc/passwd change");

    h.sh_ok(&a, &format!("touch {newfile} && test -f {newfile}")).await;
    assert!(!Path::new(&newfile).exists(), "{newfile} appeared on the host");
    let out = h.sh(&b, &format!("test -e {newfile}")).await;
    assert_eq!(out.exit_code, Some(1), "B sees A's {newfile}");
    h.teardown().await;
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_user_namespace_the_shell_is_unprivileged() {
    let tag = unique_label("nouserns");
    let mut host = HostPaths::new();
    let target = format!("/usr/bin/examroom-it-x-{tag}");
    assert!(!Path::new(&target).exists());
    host.add(&target);

    let h = Harness::with(|c| c.userns = Some(false));
    assert!(!h.rt.uses_userns());
    let id = h.create().await;
    let uid: u64 = h.sh_ok(&id, "id -u").await.trim().parse().unwrap();
    assert_ne!(uid, 0, "the shell is root without a user namespace");
    let out = h.sh(&id, &format!("echo pwned > {target}")).await;
    assert_ne!(out.exit_code, Some(0), "wrote into /usr/bin: {}", describe(&out));
    assert!(!Path::new(&target).exists(), "{target} appeared on the host");
    let status = h.sh_ok(&id, "cat /proc/self/status").await;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(cap_eff, 0, "an unprivileged shell holds capabilities: {cap_eff:#x}");
    // The bounding set stays full here (a non-root process cannot shrink it), so no_new_privs is what keeps set-uid
    // binaries such as /usr/bin/su from making the candidate host root.
    assert!(status.lines().any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])), "{status}");
    assert!(status.lines().any(|l| l.split_whitespace().eq(["Seccomp:", "2"])), "{status}");
    let out = h.sh(&id, "kill -9 1").await;
    assert_ne!(out.exit_code, Some(0), "the candidate may signal init: {}", describe(&out));
    let out = h.sh(&id, "cat /etc/shadow").await;
    assert_ne!(out.exit_code, Some(0), "an unprivileged candidate reads /etc/shadow: {}", describe(&out));
    let mut term = h.rt.attach(&id, "main").await.unwrap();
    round_trip(&mut term, 7, T).await;
    type_line(&mut term, "echo uid-$(id -u)-end").await;
    expect_output(&mut term, &format!("uid-{uid}-end"), T).await;
    // The base as the candidate sees it must be nosuid and nodev (docs/SECURITY.md, fallback section): here the
    // candidate is an ordinary host uid and the host's set-uid-root binaries are in /usr/bin, so mount flags are the
    // second line of defence behind no_new_privs. Checked after teardown, so that a failure leaks nothing.
    let mountinfo = h.sh_ok(&id, "cat /proc/self/mountinfo").await;
    h.teardown().await;
    drop(host);
    let mut missing = Vec::new();
    for mount_point in ["/usr", "/etc"] {
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(mount_point))
            .unwrap_or_else(|| panic!("no {mount_point} mount inside:\n{mountinfo}"));
        let opts: Vec<&str> = line.split(' ').nth(5).unwrap_or("").split(',').collect();
        for flag in ["nosuid", "nodev"] {
            if !opts.contains(&flag) {
                missing.push(format!("{mount_point} lacks {flag}: {line}"));
            }
        }
    }
    assert!(missing.is_empty(), "the base is not nosuid/nodev inside the environment:\n{}", missing.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------------
// 9. A rootfs base
// ---------------------------------------------------------------------------------------------------------------------

/// Copies `src` (following symlinks) to the same path under `root`.
fn copy_into(root: &Path, src: &Path, dst_inside: &Path) {
    let dst = root.join(dst_inside.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    if !dst.exists() {
        std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
    }
}

/// Copies the shared libraries a host binary needs, under both the path ldd names and the resolved one.
fn copy_libs(root: &Path, bin: &str) {
    let out = std::process::Command::new("ldd").arg(bin).output().unwrap();
    assert!(out.status.success(), "ldd {bin}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(p) = path.filter(|p| p.starts_with('/')) else { continue };
        let p = Path::new(p);
        copy_into(root, p, p);
        let resolved = std::fs::canonicalize(p).unwrap();
        copy_into(root, &resolved, &resolved);
    }
}

fn tiny_rootfs() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("er-it-rootfs-").tempdir_in("/tmp").unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_into(root, Path::new("/usr/bin/dash"), Path::new("/bin/sh"));
    copy_libs(root, "/usr/bin/dash");
    for b in ["cat", "ls", "id"] {
        let src = format!("/usr/bin/{b}");
        copy_into(root, Path::new(&src), &Path::new("/bin").join(b));
        copy_libs(root, &src);
    }
    assert!(root.join("lib64/ld-linux-x86-64.so.2").is_file(), "the interpreter is missing");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootfs_base_works() {
    let rootfs = tiny_rootfs();
    let root = rootfs.path().to_path_buf();
    let h = Harness::new();
    let id = h.create_spec(|s| s.base = Base::Rootfs(root.clone())).await;
    let out =
        h.rt.exec(
            &id,
            argv_req(&[
                "/bin/sh",
                "-c",
                "echo hi; ls /; if [ -e /usr/bin ]; then echo HOST-USR-BIN; fi; id -u; cat /etc/hostname",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", describe(&out));
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"hi"), "{text}");
    assert!(lines.contains(&"bin"), "no /bin in the listing: {text}");
    // The rootfs has /usr/lib (the libraries' resolved paths) but no /usr/bin: nothing of the host's /usr.
    assert!(!text.contains("HOST-USR-BIN"), "the host's /usr/bin is inside: {text}");
    let out = h.sh(&id, "test -e /usr/bin/python3").await;
    assert_eq!(out.exit_code, Some(1), "the host's python3 is inside: {}", describe(&out));
    assert!(lines.contains(&"0"), "not root inside: {text}");
    assert!(text.contains(&format!("exam-{}", id.short())), "{text}");
    let out = h.sh(&id, "cat /etc/passwd").await;
    assert_ne!(out.exit_code, Some(0), "the host's /etc/passwd is inside: {}", describe(&out));
    // The terminal runs the rootfs's sh.
    let mut term = h.rt.attach(&id, "main").await.unwrap();
    round_trip(&mut term, 9, T).await;
    // Writes stay in the environment.
    h.sh_ok(&id, "echo inside > /bin/newfile; cat /bin/newfile").await;
    assert!(!root.join("bin/newfile").exists(), "a write inside reached the rootfs directory");

    // A missing rootfs is refused up front, leaving nothing.
    let mut spec = EnvironmentSpec::new(EnvironmentId::new_v4());
    spec.base = Base::Rootfs(PathBuf::from(format!("/nonexistent/examroom-it-{}", h.label)));
    match h.rt.create(spec).await {
        Err(RuntimeError::InvalidSpec { field, .. }) => assert_eq!(field, "base"),
        other => panic!("expected InvalidSpec for a missing rootfs, got {other:?}"),
    }
    let left: Vec<_> =
        std::fs::read_dir(h.state_dir.join(&h.label)).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from(id.to_string())], "a refused create left something");
    h.teardown().await;
    drop(rootfs);
}

/// What the host tells through `/proc` is masked, and every mask and hidden path is a locked mount: a process holding
/// CAP_SYS_ADMIN in the candidate's own user and mount namespaces (what root inside would have with more privileges)
/// can mount and unmount its own things there, but cannot unmount, move or uncover any of them.
async fn proc_is_masked_and_every_mask_is_locked(profile: Profile) {
    let tag = unique_label("lock");
    let mut host = HostPaths::new();
    let catalog = host.add(format!("/usr/share/examroom-it-{tag}"));
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(catalog.join("answers.txt"), "the answer is 42\n").unwrap();
    let file = host.add(format!("/usr/share/examroom-it-{tag}.key"));
    std::fs::write(&file, "secret\n").unwrap();
    let (c1, c2) = (catalog.clone(), file.clone());
    let h = Harness::for_profile_with(profile, move |c| c.hidden.extend([c1, c2]));
    let id = h.create().await;
    // As the candidate: the masks read empty, /proc/sys is read-only, and nothing names a host uid.
    let out = h
        .sh_ok(
            &id,
            "wc -c < /proc/cmdline; wc -c < /proc/kallsyms; test -e /proc/config.gz && wc -c < /proc/config.gz || echo 0; \
             find /proc/acpi /proc/bus -mindepth 1 2>/dev/null | wc -l; \
             echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo wrote || echo refused; \
             cat /proc/sys/kernel/ostype; cat /proc/self/uid_map | tr -s ' '; cat /proc/self/oom_score_adj",
        )
        .await;
    // The candidate's processes are the OOM killer's first choice (+500), ahead of init.
    assert_eq!(out, "0\n0\n0\n0\nrefused\nLinux\n 0 0 65536\n500\n", "{out}");
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(h.state_dir.join(&h.label).join(id.to_string()).join("state.json")).unwrap(),
    )
    .unwrap();
    let init = st["init_pid"].as_i64().unwrap().to_string();
    let base = std::fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    let base = base.split_whitespace().nth(1).unwrap().to_string();
    let mountinfo = h.sh_ok(&id, "cat /proc/self/mountinfo").await;
    for line in mountinfo.lines().filter(|l| l.contains(&base)) {
        // Only the kernel's rendering of a tmpfs the machine mounted itself (`uid=`/`gid=` of its root).
        let own_tmpfs = line.contains(" - tmpfs ") && line.contains(&format!("uid={base}"));
        assert!(expect(profile).host_uid_in_own_tmpfs && own_tmpfs, "mountinfo names the host uid {base}: {line}");
    }
    // With CAP_SYS_ADMIN in the candidate's namespaces (nsenter as host root enters them with every capability there).
    let inside = |script: &str| {
        std::process::Command::new("nsenter")
            .args(["-t", &init, "-U", "-m", "--", "/bin/sh", "-c", script])
            .output()
            .expect("nsenter")
    };
    let own = inside("mkdir -p /mnt/own && mount -t tmpfs own /mnt/own && umount /mnt/own && echo own-ok");
    assert_eq!(String::from_utf8_lossy(&own.stdout), "own-ok\n", "{own:?}");
    let catalog_s = catalog.display().to_string();
    let file_s = file.display().to_string();
    for path in
        ["/proc/cmdline", "/proc/kcore", "/proc/acpi", "/proc/sys", "/", "/usr", "/etc", "/proc", &catalog_s, &file_s]
    {
        let r = inside(&format!(
            "umount {path} 2>/dev/null && echo UNMOUNTED; umount -l {path} 2>/dev/null && echo DETACHED; \
             mount --move {path} /mnt 2>/dev/null && echo MOVED; echo done"
        ));
        assert_eq!(String::from_utf8_lossy(&r.stdout), "done\n", "{path} is not locked: {r:?}");
    }
    let hidden = h.sh(&id, &format!("cat {catalog_s}/answers.txt {file_s}")).await;
    assert!(!hidden.stdout_text().contains("42") && !hidden.stdout_text().contains("secret"), "{hidden:?}");
    h.teardown().await;
    drop(host);
}

const TRACE_PY: &str = r#"
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
pid = os.fork()
if pid == 0:
    libc.ptrace(0, 0, 0, 0)           # PTRACE_TRACEME
    os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(7)
_, st = os.waitpid(pid, 0)
assert os.WIFSTOPPED(st), st
assert libc.ptrace(7, pid, 0, 0) == 0  # PTRACE_CONT
_, st = os.waitpid(pid, 0)
print("traced", os.WEXITSTATUS(st))
os.makedirs("/tmp/jail", exist_ok=True)
os.chroot("/tmp/jail")
print("chrooted", os.listdir("/"))
"#;

const PING_PY: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(2)
s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"examroom", ("127.0.0.1", 0))
data, addr = s.recvfrom(64)
print("pong", data[0], addr[0])
"#;

/// What a shell user expects of a Linux machine: set-user-ID programs (for an ordinary user), tracing their own
/// programs, `chroot`, `setarch -R`, and ping on loopback without CAP_NET_RAW.
async fn setuid_programs_debuggers_chroot_and_ping_work_inside(profile: Profile) {
    let h = Harness::for_profile(profile);
    let id = h.create().await;
    h.sh_ok(&id, "useradd -m alice").await;
    // chage is set-group-ID shadow: an ordinary user reads their own password ageing only through it.
    let out = h.sh(&id, "su alice -s /bin/sh -c 'chage -l alice'").await;
    assert!(out.exit_code == Some(0) && out.stdout_text().contains("Last password change"), "{}", describe(&out));
    assert_eq!(h.sh_ok(&id, "setarch \"$(uname -m)\" -R echo no-aslr").await, "no-aslr\n");
    assert_eq!(py_ok(&h, &id, TRACE_PY).await, "traced 7\nchrooted []\n");
    assert_eq!(
        h.sh_ok(&id, "cat /proc/sys/net/ipv4/ping_group_range").await.split_whitespace().collect::<Vec<_>>(),
        ["0", "65535"]
    );
    assert_eq!(py_ok(&h, &id, PING_PY).await, "pong 0 127.0.0.1\n");
    // The real tools (installed by scripts/install-deps.sh on the host that serves the base).
    let tools = "echo 'alice ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/alice && chmod 440 /etc/sudoers.d/alice && \
                 su alice -s /bin/sh -c 'sudo -n id -u' && \
                 su alice -s /bin/sh -c 'echo \"* * * * * true\" | crontab -' && crontab -l -u alice && \
                 ping -c 1 -W 2 127.0.0.1 >/dev/null && echo pinged && \
                 strace -f -o /dev/null true && echo traced";
    assert_eq!(h.sh_ok(&id, tools).await, "0\n* * * * * true\npinged\ntraced\n");
    h.teardown().await;
}

/// The curated `/etc` takes from the host's `/etc` only what packages own, as they shipped it: a secret the
/// administrator put there (a drop-in of examroom's own unit holding the token secret) never shows inside, and when
/// the host's package state changes (a package adds a system group) new environments see it, while a running one keeps
/// the `/etc` it started with.
async fn the_curated_etc_follows_the_packages_and_never_the_administrator(profile: Profile) {
    let tag = unique_label("etc").replace('-', "");
    let mut host = HostPaths::new();
    let dropin = host.add(format!("/etc/systemd/system/examroom-it-{tag}.service.d"));
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(dropin.join("secret.conf"), "[Service]\nEnvironment=EXAMROOM_TOKEN_SECRET=it-secret-4711\n")
        .unwrap();
    let h = Harness::for_profile(profile);
    let a = h.create().await;
    let seen = h
        .sh(
            &a,
            &format!("cat /etc/systemd/system/examroom-it-{tag}.service.d/secret.conf; grep -rs it-secret-4711 /etc"),
        )
        .await;
    assert!(!seen.stdout_text().contains("it-secret-4711"), "the administrator's secret reached the environment");
    assert_eq!(h.sh_ok(&a, "getent group shadow >/dev/null && echo shadow-ok").await, "shadow-ok\n");
    // A "package" adds a system group on the host.
    let group = format!("eit{}", &tag[tag.len().saturating_sub(8)..]);
    let added = std::process::Command::new("groupadd").args(["-r", &group]).status().unwrap();
    assert!(added.success());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new("groupdel").arg(&self.0).status();
        }
    }
    let _remove = Remove(group.clone());
    let b = h.create().await;
    assert_eq!(h.sh_ok(&b, &format!("getent group {group} | cut -d: -f1")).await, format!("{group}\n"));
    let old = h.sh(&a, &format!("getent group {group}")).await;
    assert_ne!(old.exit_code, Some(0), "a running environment's /etc changed under it");
    h.teardown().await;
    drop(host);
}

/// `/sys` is the environment's own (its network namespace, read-only) with its own cgroups mounted where programs look
/// for their limits: the memory limit reads back from inside, and a JVM sizes its heap to it.
async fn sys_shows_the_environments_own_network_and_limits(profile: Profile) {
    let h = Harness::for_profile(profile);
    let id = h.create_spec(|s| s.limits.memory_bytes = 384 << 20).await;
    let net = if expect(profile).sys_class_net { "lo\n" } else { "" };
    assert_eq!(h.sh_ok(&id, "ls /sys/class/net").await, net);
    let out =
        h.sh(&id, "touch /sys/x 2>&1; echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1 || echo refused").await;
    assert!(out.stdout_text().contains("refused"), "{out:?}");
    let limit = h
        .sh_ok(&id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
        .await;
    assert_eq!(limit.trim(), (384u64 << 20).to_string());
    // The cgroup namespace is rooted at the environment's group: no host path shows, and the shim's processes are at
    // its top (a shell) or in its leaf (a machine, whose service manager owns the rest).
    let own = if expect(profile).entry_leaf { "/.examroom" } else { "/" };
    let cgroups = h.sh_ok(&id, "cat /proc/self/cgroup").await;
    for line in cgroups.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        assert!(path == own || (own != "/" && path == "/"), "{line} in {cgroups}");
    }
    if std::path::Path::new("/usr/bin/java").exists() {
        let heap = h
            .sh_ok(&id, "java -XX:+PrintFlagsFinal -version 2>/dev/null | awk '$2 == \"MaxHeapSize\" { print $4 }'")
            .await;
        let heap: u64 = heap.trim().parse().unwrap();
        assert!(heap <= 384 << 20, "the JVM sizes its heap from the host's memory: {heap}");
    }
    h.teardown().await;
}

/// The host base looks like a Debian system: dpkg's database (read-only), the directories packages expect, man pages
/// with their configuration, and crontabs for ordinary users.
async fn the_host_base_looks_like_a_debian_system(profile: Profile) {
    let h = Harness::for_profile(profile);
    let id = h.create().await;
    assert_eq!(h.sh_ok(&id, "dpkg -S /bin/ls | cut -d: -f1").await, "coreutils\n");
    assert!(h.sh_ok(&id, "dpkg -l coreutils | tail -n 1").await.starts_with("ii"));
    let out = h.sh(&id, "touch /var/lib/dpkg/x").await;
    assert_ne!(out.exit_code, Some(0), "dpkg's database is writable: {out:?}");
    let group = if h.sh_ok(&id, "getent group crontab || true").await.is_empty() { "root" } else { "crontab" };
    let sshd = if expect(profile).run_sshd_made { "&& test -d /run/sshd" } else { "" };
    assert_eq!(
        h.sh_ok(
            &id,
            &format!(
                "stat -c '%a %U:%G' /var/spool/cron/crontabs; readlink /var/run; test -d /var/log {sshd} && echo dirs"
            )
        )
        .await,
        format!("1730 root:{group}\n/run\ndirs\n")
    );
    assert_eq!(h.sh_ok(&id, "readlink /etc/mtab").await, "../proc/self/mounts\n");
    // `logger` (syslog(3)) reaches a log: journald's in a machine, /var/log/syslog in a shell (init's sink).
    let read = match profile {
        Profile::System => "journalctl -q -o cat -t examtest",
        Profile::Shell => "grep -h ' exam-[0-9a-f]* examtest: ' /var/log/syslog | sed 's/.*examtest: //'",
    };
    let logged = h
        .sh_ok(
            &id,
            &format!(
                "logger -t examtest 'hello from logger'; su nobody -s /bin/sh -c \"logger -t examtest 'and from nobody'\"; \
                 for i in $(seq 50); do [ \"$({read} 2>/dev/null | wc -l)\" -ge 2 ] && break; sleep 0.1; done; {read}"
            ),
        )
        .await;
    assert_eq!(logged, "hello from logger\nand from nobody\n");
    if std::path::Path::new("/usr/bin/man").exists() {
        assert_eq!(h.sh_ok(&id, "test -f /etc/manpath.config && echo manpath").await, "manpath\n");
    }
    h.teardown().await;
}

/// `free`, `nproc`, `uptime` and `top` see the environment, not the host: the memory limit as the total, an allocation
/// within a second, as many CPUs as the limit gives, the environment's own uptime.
async fn proc_shows_the_environments_memory_cpus_and_uptime(profile: Profile) {
    let h = Harness::for_profile(profile);
    let id = h
        .create_spec(|s| {
            s.limits.memory_bytes = 512 << 20;
            s.limits.cpu_millicores = 1000;
        })
        .await;
    let total: u64 = h.sh_ok(&id, "free -m | awk '/^Mem:/ { print $2 }'").await.trim().parse().unwrap();
    assert_eq!(total, 512, "free shows the limit as the total");
    assert_eq!(h.sh_ok(&id, "grep -c ^processor /proc/cpuinfo").await.trim(), "1");
    let up: f64 = h.sh_ok(&id, "cut -d' ' -f1 /proc/uptime").await.trim().parse().unwrap();
    assert!(up < 60.0, "the host's uptime shows: {up}");
    let used_before: u64 = h.sh_ok(&id, "free -m | awk '/^Mem:/ { print $3 }'").await.trim().parse().unwrap();
    // Hold 100 MiB for a while and look at free from another process.
    h.sh_ok(&id, "python3 -c 'import time; b = bytearray(100 << 20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(8)' >/dev/null 2>&1 & echo started").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let used_after: u64 = h.sh_ok(&id, "free -m | awk '/^Mem:/ { print $3 }'").await.trim().parse().unwrap();
    assert!(used_after >= used_before + 90, "free does not see a 100 MiB allocation: {used_before} → {used_after}");
    let top = h.sh_ok(&id, "top -b -n 1 | head -n 5").await;
    assert!(top.contains("512.0 total") || top.contains("512 total"), "{top}");
    h.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------------
// Both profiles
// ---------------------------------------------------------------------------------------------------------------------

/// Runs each named test once per profile: `sandbox_isolation::shell::NAME` and `sandbox_isolation::system::NAME`.
/// Where a profile expects something else, the test reads it from [`expect`].
macro_rules! in_both_profiles {
    ($($name:ident),* $(,)?) => {
        mod shell {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(examroom_runtime::Profile::Shell).await
                }
            )*
        }
        mod system {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(examroom_runtime::Profile::System).await
                }
            )*
        }
    };
}

in_both_profiles!(
    two_environments_do_not_see_each_other,
    fork_bomb_is_contained,
    memory_hog_is_contained,
    filling_the_disk_gives_enospc_not_oom,
    attacks_from_inside_are_refused,
    network_is_loopback_only,
    uid_ranges_are_distinct_and_base_appears_root_owned,
    proc_is_masked_and_every_mask_is_locked,
    setuid_programs_debuggers_chroot_and_ping_work_inside,
    the_curated_etc_follows_the_packages_and_never_the_administrator,
    sys_shows_the_environments_own_network_and_limits,
    the_host_base_looks_like_a_debian_system,
    proc_shows_the_environments_memory_cpus_and_uptime,
);
