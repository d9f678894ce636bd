//! Terminals: the main one, replay and takeover, more terminals, resizes, a shell that exits, flow control.

use std::time::Duration;

use examroom_runtime::protocol::{Reply, Request};
use examroom_runtime::TerminalEvent;

use crate::harness::{read_to_end, read_until, Shim};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn hello_and_status_describe_the_main_terminal() {
    let shim = Shim::start(&[("EXAMROOM_SHIM_COLS", "100"), ("EXAMROOM_SHIM_ROWS", "30")]);
    let mut c = shim.client().await;
    assert_eq!(c.version(), 3, "the shim speaks the protocol's highest version");
    let Reply::Status(st) = c.call(&Request::Status, T).await.unwrap() else { panic!("not a status") };
    assert_eq!(st.state, "running");
    assert_eq!((st.shim_pid, st.init_pid), (1, 1), "the shim is the container's init");
    assert_eq!(st.terminals.len(), 1, "{st:?}");
    let main = &st.terminals[0];
    assert_eq!((main.name.as_str(), main.cols, main.rows, main.attached), ("main", 100, 30, false));
    assert!(st.processes >= 2, "the shim and the main shell at least: {st:?}");
    assert!(st.desktop.is_none());
    // Several requests on one connection, each answered once.
    assert!(matches!(c.call(&Request::Status, T).await.unwrap(), Reply::Status(_)));
}

#[tokio::test]
async fn the_main_terminal_runs_commands_replays_its_scrollback_and_is_taken_over() {
    let shim = Shim::start(&[]);
    let (mut out, mut input) = shim.attach("main", true).await;
    input.write(b"echo hi-$((40+2))\n").await.unwrap();
    read_until(&mut out, "hi-42", T).await;

    // A second attach gets the scrollback first; the first is told it was replaced, and ends.
    let (mut out2, mut input2) = shim.attach("main", true).await;
    let (replay, _) = read_until(&mut out2, "hi-42", T).await;
    assert!(replay.contains("echo hi-$((40+2))"), "the replay holds the command too: {replay:?}");
    assert_eq!(read_to_end(&mut out, T).await, Some(TerminalEvent::Replaced));
    input2.write(b"echo again-$((1+1))\n").await.unwrap();
    read_until(&mut out2, "again-2", T).await;

    // Without replay, only what comes next.
    let (mut out3, mut input3) = shim.attach("main", false).await;
    input3.write(b"echo third-$((2+1))\n").await.unwrap();
    let (text, _) = read_until(&mut out3, "third-3", T).await;
    assert!(!text.contains("hi-42"), "no replay was asked for: {text:?}");
}

#[tokio::test]
async fn another_terminal_opens_attaches_and_resizes() {
    let shim = Shim::start(&[]);
    let mut c = shim.client().await;
    let name = match c.call(&Request::OpenTerminal { cols: 90, rows: 20 }, T).await.unwrap() {
        Reply::Opened { terminal } => terminal,
        other => panic!("{other:?}"),
    };
    assert_eq!(name, "t1", "named as the sandbox's shim names them");
    let (mut out, mut input) = shim.attach(&name, true).await;
    input.write(b"stty size\n").await.unwrap();
    read_until(&mut out, "20 90", T).await;
    // A resize on the attached stream ...
    input.resize(120, 50).await.unwrap();
    input.write(b"stty size\n").await.unwrap();
    read_until(&mut out, "50 120", T).await;
    // ... and one by name, on a control connection.
    let r = c.call(&Request::Resize { terminal: name.clone(), cols: 70, rows: 22 }, T).await.unwrap();
    assert_eq!(r, Reply::Ok);
    input.write(b"stty size\n").await.unwrap();
    read_until(&mut out, "22 70", T).await;
    let r = c.call(&Request::Resize { terminal: "nope".into(), cols: 70, rows: 22 }, T).await.unwrap();
    assert!(matches!(r, Reply::Error { ref code, .. } if code == "no_such_terminal"), "{r:?}");
    let Reply::Status(st) = c.call(&Request::Status, T).await.unwrap() else { panic!() };
    let names: Vec<_> = st.terminals.iter().map(|t| (t.name.as_str(), t.cols, t.rows, t.attached)).collect();
    assert_eq!(names, [("main", 80, 24, false), ("t1", 70, 22, true)]);
    // A terminal that does not exist cannot be attached.
    assert!(matches!(
        shim.client().await.attach("t9", true).await,
        Err(examroom_runtime::RuntimeError::InvalidSpec { .. })
    ));
}

#[tokio::test]
async fn a_shell_that_exits_is_replaced_with_a_notice() {
    let shim = Shim::start(&[]);
    let (mut out, mut input) = shim.attach("main", true).await;
    input.write(b"echo ready-$((3*3))\n").await.unwrap();
    read_until(&mut out, "ready-9", T).await;
    input.write(b"exit\n").await.unwrap();
    // The new shell is started at once or after the back-off (a shell that lived less than a second).
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, out.next()).await.expect("a notice within 10 s").unwrap() {
            Some(TerminalEvent::Notice(n)) => {
                assert_eq!(n, "shell exited; a new shell was started");
                break;
            }
            Some(TerminalEvent::Output(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
    input.write(b"echo back-$((1+1))\n").await.unwrap();
    read_until(&mut out, "back-2", T).await;
    let mut c = shim.client().await;
    let Reply::Status(st) = c.call(&Request::Status, T).await.unwrap() else { panic!() };
    assert_eq!(st.terminals[0].shell_restarts, 1);
}

#[tokio::test]
async fn flow_control_pauses_the_terminal_and_drops_nothing() {
    let shim = Shim::start(&[]);
    let (mut out, mut input) = shim.attach("main", true).await;
    // Every output byte since the attach, and its text.
    let (mut total, mut text) = (0u64, Vec::new());
    input.write(b"echo go-$((5+5))\n").await.unwrap();
    while !String::from_utf8_lossy(&text).contains("go-10") {
        let Ok(Ok(Some(TerminalEvent::Output(b)))) = tokio::time::timeout(T, out.next()).await else { panic!() };
        total += b.len() as u64;
        text.extend_from_slice(&b);
    }
    assert!(input.flow_control(Some(16 * 1024)).await.unwrap());
    // 400 KB of output, then a marker; nothing is acknowledged yet.
    input.write(b"head -c 400000 /dev/zero | tr '\\0' x; echo; echo end-$((6+6))\n").await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_millis(700), out.next()).await {
            Ok(Ok(Some(TerminalEvent::Output(b)))) => {
                total += b.len() as u64;
                text.extend_from_slice(&b);
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => break,
        }
    }
    let base = out.flow_base().expect("the shim's flow-control marker was read");
    assert!(total - base <= 16 * 1024, "a window of 16 KiB held the output back: {} bytes came", total - base);
    assert!(!String::from_utf8_lossy(&text).contains("end-12"), "the flood cannot have finished");
    // Acknowledging what was read lets the rest through: every byte, in order.
    let mut acked = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&text).contains("end-12") {
        input.ack(total - base - acked).await.unwrap();
        acked = total - base;
        match tokio::time::timeout_at(deadline, out.next()).await.expect("the flood resumes within 20 s").unwrap() {
            Some(TerminalEvent::Output(b)) => {
                total += b.len() as u64;
                text.extend_from_slice(&b);
            }
            other => panic!("{other:?}"),
        }
    }
    let flood = String::from_utf8_lossy(&text).replace(['\r', '\n'], "");
    assert!(flood.contains(&"x".repeat(400_000)), "the 400000 bytes arrived whole and in order");
}
