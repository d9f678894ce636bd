//! Commands (`Exec`) and ports (`Dial`).

use std::time::{Duration, Instant};

use examroom_runtime::protocol::client::relay;
use examroom_runtime::RuntimeError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{spec, Shim};

#[tokio::test]
async fn exec_takes_stdin_env_and_cwd_and_reports_the_exit_code() {
    let shim = Shim::start(&[("IMAGE_VAR", "from-image")]);
    let mut s = spec(&["sh", "-c", "cat; echo \"foo=$FOO image=${IMAGE_VAR:-unset}\"; pwd; echo oops >&2; exit 3"]);
    s.env.push(("FOO".into(), "bar".into()));
    s.cwd = "/tmp".into();
    let (st, out, err) = shim.exec_spec(s, b"from stdin\n").await.unwrap();
    assert_eq!(out, "from stdin\nfoo=bar image=unset\n/tmp\n", "a command's environment is exactly the request's");
    assert_eq!(err, "oops\n");
    assert_eq!((st.exit_code, st.signal, st.timed_out, st.truncated), (Some(3), None, false, false));

    // A working directory that does not exist falls back to /, as in the sandbox.
    let mut s = spec(&["pwd"]);
    s.cwd = "/no/such/dir".into();
    assert_eq!(shim.exec_spec(s, b"").await.unwrap().1, "/\n");

    // The program is looked up in the command's own PATH; a missing one is an error of the request.
    match shim.exec(&["no-such-program"], b"").await {
        Err(RuntimeError::Backend(m)) => {
            assert!(m.starts_with("exec_failed: no-such-program: command not found"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // A signal is reported as such.
    let (st, _, _) = shim.exec(&["sh", "-c", "kill -9 $$"], b"").await.unwrap();
    assert_eq!((st.exit_code, st.signal), (None, Some(9)));
}

#[tokio::test]
async fn exec_is_killed_at_its_timeout_and_its_output_is_capped() {
    let shim = Shim::start(&[]);
    let mut s = spec(&["sh", "-c", "echo started; sleep 30"]);
    s.timeout_ms = 300;
    let t0 = Instant::now();
    let (st, out, _) = shim.exec_spec(s, b"").await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "killed at its timeout, not after the sleep: {:?}", t0.elapsed());
    assert_eq!(out, "started\n");
    assert!(st.timed_out, "{st:?}");
    assert_eq!(st.signal, Some(9), "{st:?}");
    // The whole process group goes: the sleep does not hold the output open past the drain.
    assert!(st.duration_ms >= 300, "{st:?}");

    let mut s = spec(&["sh", "-c", "head -c 100000 /dev/zero; head -c 50 /dev/zero >&2"]);
    s.output_limit = 1000;
    let (st, out, err) = shim.exec_spec(s, b"").await.unwrap();
    assert_eq!((out.len(), err.len()), (1000, 50), "each stream is cut at the limit");
    assert!(st.truncated && !st.timed_out, "{st:?}");
    assert_eq!(st.exit_code, Some(0));
}

/// A TCP server inside: accepts one connection, answers each line in upper case.
const UPPER_SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8123))
s.listen(1)
c, _ = s.accept()
f = c.makefile('rwb')
for line in f:
    f.write(line.upper())
    f.flush()
"#;

#[tokio::test]
async fn dial_reaches_a_port_inside_and_a_closed_port_is_refused() {
    let shim = Shim::start(&[]);
    let script = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    std::fs::write(script.path(), UPPER_SERVER).unwrap();
    // Started in the background; it outlives the exec.
    shim.sh(&format!("python3 {} >/dev/null 2>&1 &", script.path().display())).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match shim.client().await.dial(8123).await {
            Ok(s) => break s,
            Err(RuntimeError::Refused(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("dial: {e}"),
        }
    };
    let mut port = relay(stream);
    port.write_all(b"ping\n").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), port.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"PING\n");

    // Nothing listens on 8124 inside (the host's ports are not the container's either).
    match shim.client().await.dial(8124).await {
        Err(RuntimeError::Refused(m)) => assert!(m.contains("8124"), "{m}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
