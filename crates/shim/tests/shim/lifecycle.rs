//! PID 1's duties and the shim's end: reaping, SIGTERM, Destroy; what is refused; the static build.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use examroom_runtime::protocol::{DesktopSpec, Reply, Request};
use examroom_runtime::{RuntimeError, TerminalEvent};

use crate::harness::{processes_in, read_to_end, read_until, shim_binary, spec, Shim};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn orphans_are_adopted_and_reaped() {
    let shim = Shim::start(&[]);
    // An orphan: its parent exits at once, so the kernel gives it to PID 1, the shim.
    let pid = shim.sh("sh -c 'sleep 0.5 >/dev/null 2>&1 & echo $!'").await.trim().to_string();
    let ppid = shim.sh(&format!("grep PPid /proc/{pid}/status")).await;
    assert_eq!(ppid.split_whitespace().nth(1), Some("1"), "the orphan {pid} was adopted by the shim: {ppid}");
    // Many short-lived orphans.
    shim.sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do (true &); done").await;
    let deadline = Instant::now() + T;
    loop {
        let gone = shim.sh(&format!("test -e /proc/{pid} && echo present || echo gone")).await;
        // Zombies still have a /proc entry with state Z.
        let zombies = shim.sh("cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l").await;
        if gone.trim() == "gone" && zombies.trim() == "0" {
            break;
        }
        assert!(Instant::now() < deadline, "orphans were not reaped: {gone} {zombies}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sigterm_from_outside_kills_everything_and_the_shim_exits() {
    let mut shim = Shim::start(&[]);
    let ns = shim.pidns();
    let (mut out, mut input) = shim.attach("main", true).await;
    input.write(b"sleep 1000 & echo started-$((2*4))\n").await.unwrap();
    read_until(&mut out, "started-8", T).await;
    shim.sh("sleep 999 >/dev/null 2>&1 &").await;
    let before = processes_in(&ns);
    assert!(before.len() >= 4, "the shim, the shell and two sleeps: {before:?}");
    // SAFETY: signalling our own test's shim.
    assert_eq!(unsafe { libc::kill(shim.pid, libc::SIGTERM) }, 0);
    assert_eq!(read_to_end(&mut out, T).await, Some(TerminalEvent::Ended), "the attached client is told");
    let st = shim.wait_exit(Duration::from_secs(15)).expect("the shim exited within 15 s of SIGTERM");
    assert!(st.success(), "the shim exits 0 after SIGTERM: {st}");
    assert!(processes_in(&ns).is_empty(), "nothing of the container is left: {:?}", processes_in(&ns));
    assert!(shim.log().contains("SIGTERM from outside"), "{}", shim.log());
}

#[tokio::test]
async fn destroy_kills_everything_answers_and_the_shim_exits() {
    let mut shim = Shim::start(&[]);
    let ns = shim.pidns();
    shim.sh("sleep 999 >/dev/null 2>&1 &").await;
    let (mut out, _input) = shim.attach("main", true).await;
    let mut c = shim.client().await;
    match c.call(&Request::Destroy, T).await.unwrap() {
        Reply::Destroyed { killed } => assert!(killed >= 3, "the shim, the shell and the sleep: {killed}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(read_to_end(&mut out, T).await, Some(TerminalEvent::Ended));
    shim.wait_exit(Duration::from_secs(15)).expect("the shim exited after destroy");
    assert!(processes_in(&ns).is_empty(), "nothing of the container is left: {:?}", processes_in(&ns));
}

#[tokio::test]
async fn what_a_container_does_elsewhere_is_refused() {
    let shim = Shim::start(&[]);
    let mut c = shim.client().await;
    match c.call(&Request::Freeze, T).await.unwrap() {
        Reply::Error { code, message } => assert_eq!(code, "unsupported", "{message}"),
        other => panic!("{other:?}"),
    }
    match c.start_desktop(DesktopSpec { width: 1280, height: 800, port: 5900 }).await {
        Err(RuntimeError::Unsupported(m)) => assert!(m.contains("no desktop"), "{m}"),
        other => panic!("{other:?}"),
    }
    match shim.client().await.exec(spec(&["true"]), true, b"", T).await {
        Err(RuntimeError::Backend(m)) => assert!(m.starts_with("unsupported:"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Requests before hello, and frames that are not frames, close the connection with an error.
    let raw = shim.connect().unwrap();
    let mut s = tokio::net::UnixStream::from_std({
        raw.set_nonblocking(true).unwrap();
        raw
    })
    .unwrap();
    examroom_runtime::protocol::client::write_request(&mut s, &Request::Status).await.unwrap();
    let f = examroom_runtime::protocol::client::read_frame(&mut s).await.unwrap().unwrap();
    let r: Reply = serde_json::from_slice(&f.payload).unwrap();
    assert!(matches!(r, Reply::Error { ref code, .. } if code == "hello_first"), "{r:?}");
    assert!(examroom_runtime::protocol::client::read_frame(&mut s).await.unwrap().is_none(), "then closed");
}

#[test]
fn the_shim_refuses_to_run_unless_it_is_pid_1() {
    let out = std::process::Command::new(shim_binary()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not PID 1"), "{err}");
}

/// `make shim` puts the static binary at target/shim/examroom-shim (`make test` builds it first).
#[tokio::test]
async fn the_built_shim_is_static_and_serves() {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_examroom-shim"));
    let target = built.parent().and_then(|p| p.parent()).expect("target/<profile>/examroom-shim");
    let bin = target.join("shim/examroom-shim");
    let elf = std::fs::read(&bin)
        .unwrap_or_else(|e| panic!("{}: {e}; build it with `make shim` (make test does)", bin.display()));
    assert_eq!(&elf[..4], b"\x7fELF", "{} is an ELF file", bin.display());
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let (phoff, phentsize, phnum) =
        (u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize, u16_at(0x36), u16_at(0x38));
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    });
    assert!(!interp, "{} asks for a dynamic loader: it would not run in an image without one", bin.display());
    let shim = Shim::start_with(&bin, &[], &[]);
    assert_eq!(shim.sh("echo static-$((1+1))").await, "static-2\n");
}
