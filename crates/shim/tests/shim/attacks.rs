//! What a candidate's process (inside the container, root without `CAP_SYS_PTRACE`) tries against the shim.

use std::time::Duration;

use examroom_runtime::protocol::{Reply, Request};

use crate::harness::{read_until, shim_binary, Shim};

/// Connects to the shim's name from inside, says hello, and prints what comes back, then `eof`.
const CONNECT_INSIDE: &str = r#"
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect('\0' + sys.argv[1])
hello = json.dumps({"op": "hello", "min": 1, "max": 3}).encode()
try:
    s.sendall(struct.pack('>I', len(hello) + 1) + b'\x01' + hello)
except OSError:
    pass
data = b''
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except ConnectionResetError:
    pass
print(data[5:].decode(errors='replace'))
print('eof')
"#;

/// Binds an abstract name inside and says how it went.
const BIND_INSIDE: &str = r#"
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.bind('\0' + sys.argv[1])
    print('bound')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"#;

#[tokio::test]
async fn a_process_inside_can_neither_use_nor_take_the_socket() {
    let shim = Shim::start(&[]);
    let (st, out, err) = shim.exec(&["python3", "-c", CONNECT_INSIDE, "examroom-shim"], b"").await.unwrap();
    assert_eq!(st.exit_code, Some(0), "{out} {err}");
    assert!(out.contains(r#""code":"forbidden""#), "a process inside is refused: {out:?}");
    assert!(out.trim_end().ends_with("eof"), "and the connection is closed: {out:?}");
    assert!(!out.contains(r#""op":"hello""#), "no hello for a process inside: {out:?}");
    assert!(shim.log().contains("refused a connection from pid"), "{}", shim.log());

    let bind = |name: &str| {
        let name = name.to_string();
        let shim = &shim;
        async move { shim.exec(&["python3", "-c", BIND_INSIDE, &name], b"").await.unwrap().1 }
    };
    assert_eq!(bind("examroom-shim").await.trim(), "EADDRINUSE", "the shim's name is taken while it lives");
    assert_eq!(bind("another-name").await.trim(), "bound", "other names can be bound (the test can tell)");

    // The shim still serves the server.
    let mut c = shim.client().await;
    assert!(matches!(c.call(&Request::Status, Duration::from_secs(10)).await.unwrap(), Reply::Status(_)));
}

#[tokio::test]
async fn the_shims_memory_descriptors_and_settings_are_out_of_reach() {
    // As in a container: no process has CAP_SYS_PTRACE, the shim included, so nothing but its being not dumpable
    // keeps the others out.
    let drop_ptrace = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"];
    let shim = Shim::start_with(&shim_binary(), &drop_ptrace, &[("EXAMROOM_SHIM_ROWS", "25"), ("IMAGE_VAR", "x")]);
    let probe = r#"
        grep CapEff /proc/self/status
        echo "environ-shim=$(tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -c EXAMROOM_SHIM_)"
        echo "environ-image=$(tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -c IMAGE_VAR)"
        (exec 3</proc/1/mem) 2>/dev/null && echo mem-open || echo mem-denied
        readlink /proc/1/fd/0 >/dev/null 2>&1 && echo fd-read || echo fd-denied
        sleep 5 & (exec 3</proc/$!/mem) 2>/dev/null && echo sibling-mem-open || echo sibling-mem-denied
        readlink /proc/$!/fd/0 >/dev/null 2>&1 && echo sibling-fd-read || echo sibling-fd-denied
        kill $!
    "#;
    let out = shim.sh(probe).await;
    let cap_eff = out.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("CapEff");
    let cap_eff = u64::from_str_radix(cap_eff.trim(), 16).unwrap();
    assert_eq!(cap_eff & (1 << 19), 0, "the probe runs without CAP_SYS_PTRACE: {out}");
    assert_ne!(cap_eff, 0, "and as root otherwise: {out}");
    for line in ["mem-denied", "fd-denied", "environ-shim=0"] {
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    // The same probe reaches a process of the same uid that is dumpable (any of the candidate's): what keeps it out
    // of the shim is the shim's being not dumpable.
    assert!(out.lines().any(|l| l == "sibling-mem-open") && out.lines().any(|l| l == "sibling-fd-read"), "{out}");
    // This kernel (6.18) lets the same uid read a non-dumpable process's environ (and maps), though not its memory
    // or descriptors: the shim's settings are wiped from it (the image's variables are the candidate's own).
    assert!(out.lines().any(|l| l == "environ-image=1" || l == "environ-image=0"), "{out}");
}

#[tokio::test]
async fn the_candidates_processes_get_the_image_environment_without_the_shims_variables() {
    let shim = Shim::start(&[
        ("IMAGE_VAR", "from-image"),
        ("EXAMROOM_SHIM_SOCKET", "custom-shim-name"),
        ("EXAMROOM_SHIM_COLS", "81"),
        ("EXAMROOM_SHIM_SOMETHING_ELSE", "x"),
    ]);
    assert_eq!(shim.socket, "custom-shim-name", "the shim is reached on the name it was given");
    let (mut out, mut input) = shim.attach("main", true).await;
    input
        .write(
            b"echo \"count=$(env | grep -c EXAMROOM_SHIM_) own=$(tr '\\0' '\\n' </proc/$$/environ | grep -c EXAMROOM_SHIM_) \
              img=$IMAGE_VAR term=$TERM cols=$(tput cols 2>/dev/null || stty size | cut -d' ' -f2)\"\n",
        )
        .await
        .unwrap();
    let (text, _) = read_until(&mut out, "term=xterm-256color", Duration::from_secs(10)).await;
    assert!(text.contains("count=0 own=0 img=from-image term=xterm-256color cols=81"), "{text:?}");
}

#[tokio::test]
async fn signals_from_inside_do_not_end_the_shim() {
    let shim = Shim::start(&[]);
    let (st, _, err) =
        shim.exec(&["sh", "-c", "kill -TERM 1; kill -INT 1; kill -HUP 1; kill -KILL 1; true"], b"").await.unwrap();
    assert_eq!(st.exit_code, Some(0), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = shim.client().await;
    assert!(matches!(c.call(&Request::Status, Duration::from_secs(10)).await.unwrap(), Reply::Status(_)));
    assert!(shim.log().contains("signal 15 from pid"), "the SIGTERM from inside was seen and ignored: {}", shim.log());
}
