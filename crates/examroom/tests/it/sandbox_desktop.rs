//! The desktop and `Dial` at the runtime boundary: a real Xvnc, openbox and xterm inside a real environment, reached
//! through the shim from the environment's own loopback.

use std::time::Duration;

use examroom_runtime::{DesktopSpec, ExecutionRuntime, RuntimeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const VNC: u16 = 5900;

fn spec() -> DesktopSpec {
    DesktopSpec { width: 1024, height: 768, port: VNC }
}

/// Reads the VNC server's greeting through `dial`.
async fn greeting(h: &Harness, id: &examroom_core::EnvironmentId) -> Option<Vec<u8>> {
    let mut s = h.rt.dial(id, VNC).await.ok()?;
    let mut hello = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut hello)).await {
        Ok(Ok(_)) => Some(hello.to_vec()),
        _ => None,
    }
}

/// The host pids in a cgroup directory of the environment (the memory hierarchy, or the unified one).
fn group_pids(h: &Harness, id: &examroom_core::EnvironmentId, leaf: &str) -> Vec<i32> {
    for mount in ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"] {
        let dir = format!("{mount}/examroom/{}/envs/{id}{leaf}", h.label);
        if let Ok(text) = std::fs::read_to_string(format!("{dir}/cgroup.procs")) {
            return text.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        }
    }
    Vec::new()
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

fn oom_score_adj(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap_or_default().trim().to_string()
}

fn parent(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// Waits until a process named `name` (whose parent is named `parent_name`, when given) is in the environment's own
/// group (not the desktop's); returns its host pid.
async fn wait_in_env_group(
    h: &Harness,
    id: &examroom_core::EnvironmentId,
    name: &str,
    parent_name: Option<&str>,
) -> i32 {
    // The session waits for the X server before it starts the terminal emulator, which starts its shell: allow for a
    // busy machine.
    for _ in 0..600 {
        let found = group_pids(h, id, "")
            .into_iter()
            .find(|p| comm(*p) == name && parent_name.is_none_or(|pn| comm(parent(*p)) == pn));
        if let Some(p) = found {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen: Vec<(i32, String, String)> =
        group_pids(h, id, "").into_iter().map(|p| (p, comm(p), comm(parent(p)))).collect();
    panic!("no {name} in the environment's group: {seen:?}");
}

#[tokio::test]
async fn a_desktop_starts_answers_vnc_and_keeps_its_x_server_apart_from_the_candidates_processes() {
    let h = Harness::new();
    let id = h.create_spec(|s| s.limits.memory_bytes = 768 << 20).await;
    let st = h.rt.start_desktop(&id, spec()).await.expect("start the desktop");
    assert_eq!((st.state.as_str(), st.port, st.restarts), ("running", VNC, 0), "{st:?}");
    let hello = greeting(&h, &id).await.expect("a VNC greeting through dial");
    assert!(hello.starts_with(b"RFB 003."), "{:?}", String::from_utf8_lossy(&hello));
    // Asked again, it is the same desktop.
    assert_eq!(h.rt.start_desktop(&id, spec()).await.expect("again").restarts, 0);

    // The X server is in the desktop's group and keeps init's OOM score; the session's terminal emulator, and the
    // shell it runs, are the candidate's: in the environment's group, the OOM killer's first choice.
    let desktop = group_pids(&h, &id, "/desktop");
    assert_eq!(desktop.iter().map(|p| comm(*p)).collect::<Vec<_>>(), vec!["Xvnc".to_string()], "{desktop:?}");
    assert_eq!(oom_score_adj(desktop[0]), "0");
    let xterm = wait_in_env_group(&h, &id, "xterm", None).await;
    // The shell the desktop's terminal runs (not the main terminal's).
    let shell = wait_in_env_group(&h, &id, "bash", Some("xterm")).await;
    assert_eq!(oom_score_adj(xterm), "500");
    assert_eq!(oom_score_adj(shell), "500");
    assert!(!group_pids(&h, &id, "/desktop").contains(&shell));
    // The environment's memory limit is the group's the shell is charged to.
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/examroom/{}/envs/{id}/memory.limit_in_bytes", h.label));
    if let Ok(limit) = limit {
        assert_eq!(limit.trim(), (768u64 << 20).to_string());
    }

    // Grading's freeze takes the desktop too: the X server no longer answers, and the shell is frozen.
    h.rt.freeze(&id).await.expect("freeze");
    assert!(greeting(&h, &id).await.is_none(), "a frozen X server greeted");
    let state = std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/examroom/{}/envs/{id}/freezer.state", h.label));
    if let Ok(state) = state {
        assert_eq!(state.trim(), "FROZEN");
        assert!(
            group_pids(&h, &id, "").contains(&shell)
                || std::fs::read_to_string(format!(
                    "/sys/fs/cgroup/freezer/examroom/{}/envs/{id}/cgroup.procs",
                    h.label
                ))
                .unwrap_or_default()
                .split_whitespace()
                .any(|p| p == shell.to_string())
        );
    }
    h.teardown().await;
}

#[tokio::test]
async fn a_memory_hog_is_killed_before_the_x_server() {
    let h = Harness::new();
    let id = h.create_spec(|s| s.limits.memory_bytes = 320 << 20).await;
    h.rt.start_desktop(&id, spec()).await.expect("start");
    let xvnc = group_pids(&h, &id, "/desktop");
    assert_eq!(xvnc.len(), 1);
    // More than the environment may have: the OOM killer must pick the hog, not the X server.
    let out = h.sh(&id, "python3 -c 'a = bytearray(600 << 20); print(len(a))'").await;
    assert_ne!(out.exit_code, Some(0), "the hog was not stopped: {}", out.stdout_text());
    assert!(std::fs::metadata(format!("/proc/{}", xvnc[0])).is_ok(), "the X server was killed");
    assert!(greeting(&h, &id).await.is_some_and(|g| g.starts_with(b"RFB ")), "the desktop still answers");
    h.teardown().await;
}

#[tokio::test]
async fn two_desktops_see_only_their_own() {
    let h = Harness::new();
    let (a, b) = (h.create().await, h.create().await);
    h.rt.start_desktop(&a, spec()).await.expect("start A");
    h.rt.start_desktop(&b, spec()).await.expect("start B");
    // Inside A: one X server (its own), whose VNC server listens on the loopback only (127.0.0.1 and ::1); B's is
    // nowhere to be seen or reached.
    let seen = h
        .sh_ok(&a, "pgrep -c -x Xvnc; awk '$2 ~ /:170C$/ && $4 == \"0A\" { print $2 }' /proc/net/tcp /proc/net/tcp6")
        .await;
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some("1"), "{seen}");
    let listeners: Vec<&str> = lines.collect();
    assert!(!listeners.is_empty(), "{seen}");
    for l in listeners {
        assert!(
            l == "0100007F:170C" || l == "00000000000000000000000001000000:170C",
            "a VNC listener off the loopback: {l}"
        );
    }
    // Each desktop is its own X server: a window title made in A's session is not in B's.
    let (xa, xb) = (group_pids(&h, &a, "/desktop"), group_pids(&h, &b, "/desktop"));
    assert_eq!((xa.len(), xb.len()), (1, 1));
    assert_ne!(xa, xb);
    h.teardown().await;
}

#[tokio::test]
async fn a_desktop_killed_inside_says_why_and_starts_again() {
    let h = Harness::new();
    let id = h.create().await;
    h.rt.start_desktop(&id, spec()).await.expect("start");
    // Root inside kills its own X server.
    h.sh_ok(
        &id,
        "pkill -KILL -x Xvnc; for i in $(seq 50); do pgrep -x Xvnc >/dev/null || exit 0; sleep 0.1; done; exit 1",
    )
    .await;
    let mut gone = false;
    for _ in 0..50 {
        if greeting(&h, &id).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the killed X server still answers");
    let st = h.rt.status(&id).await.expect("status");
    assert!(matches!(st.state, examroom_runtime::EnvironmentState::Running), "the environment itself is fine");
    let again = h.rt.start_desktop(&id, spec()).await.expect("start again");
    assert_eq!((again.state.as_str(), again.restarts), ("running", 1), "{again:?}");
    assert!(greeting(&h, &id).await.is_some_and(|g| g.starts_with(b"RFB ")));
    h.teardown().await;
}

#[tokio::test]
async fn dial_reaches_a_port_inside_and_only_there() {
    let h = Harness::new();
    let a = h.create().await;
    let b = h.create().await;
    // Nothing listens yet: refused, with a message that says so.
    match h.rt.dial(&a, 8000).await {
        Err(RuntimeError::Refused(m)) => assert!(m.contains("8000"), "{m}"),
        other => panic!("expected refused, got {:?}", other.map(|_| ())),
    }
    // A web server in A, on A's own loopback.
    h.sh_ok(
        &a,
        "mkdir -p /srv/www && echo 'hello from A' > /srv/www/index.html && \
         (cd /srv/www && setsid python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &) && \
         for i in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:8000/ && exit 0; sleep 0.05; done; exit 1",
    )
    .await;
    let mut s = h.rt.dial(&a, 8000).await.expect("dial A's port");
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n").await.expect("request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains("hello from A"), "{answer}");
    // B's loopback is B's own: A's server is not there.
    assert!(matches!(h.rt.dial(&b, 8000).await, Err(RuntimeError::Refused(_))));
    // A large body both ways arrives whole (flow control in the shim, both directions).
    h.sh_ok(
        &a,
        "head -c 3000000 /dev/urandom > /srv/www/big && md5sum /srv/www/big | cut -d' ' -f1 > /srv/www/big.md5",
    )
    .await;
    let mut s = h.rt.dial(&a, 8000).await.expect("dial again");
    s.write_all(b"GET /big HTTP/1.0\r\n\r\n").await.expect("request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await.expect("in time").expect("read");
    let body_at = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    assert_eq!(answer.len() - body_at, 3_000_000);
    h.teardown().await;
}
