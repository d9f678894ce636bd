//! A shim as PID 1 of fresh pid, network and mount namespaces (`unshare`), reached from outside as the Docker runtime
//! reaches it: a thread `setns` into its network namespace and connects to the abstract name.

use std::fs::File;
use std::io::Read;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use examroom_runtime::protocol::client::{ShimClient, TerminalReader, TerminalWriter};
use examroom_runtime::protocol::{ExecSpec, ExecStatus};
use examroom_runtime::{RuntimeError, TerminalEvent};
use nix::sched::CloneFlags;
use tokio::io::{ReadHalf, WriteHalf};

/// The binary under test: `EXAMROOM_SHIM_BIN` if set (e.g. the static `target/shim/examroom-shim`), else the one
/// cargo built for these tests (same code, linked dynamically; the host's filesystem is its root here).
pub fn shim_binary() -> PathBuf {
    match std::env::var_os("EXAMROOM_SHIM_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_examroom-shim")),
    }
}

/// `PATH` inside (the host's system directories, not a developer's shims).
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A running shim; killed (with everything in its namespaces) when dropped.
pub struct Shim {
    unshare: Child,
    /// The shim's pid on the host.
    pub pid: i32,
    netns: File,
    /// Its abstract socket's name.
    pub socket: String,
    log: tempfile::NamedTempFile,
    /// The shells' home (empty: the host's own profile scripts stay out of the tests).
    _home: tempfile::TempDir,
}

pub type Client = ShimClient<tokio::net::UnixStream>;
pub type Output = TerminalReader<ReadHalf<tokio::net::UnixStream>>;
pub type Input = TerminalWriter<WriteHalf<tokio::net::UnixStream>>;

impl Shim {
    /// Starts a shim with the image environment `env` (plus `PATH`), waiting (bounded) until it answers.
    pub fn start(env: &[(&str, &str)]) -> Shim {
        Shim::start_with(&shim_binary(), &[], env)
    }

    /// Starts a given shim binary, through `wrapper` (a command that ends by executing its arguments, so the shim is
    /// still PID 1).
    pub fn start_with(bin: &std::path::Path, wrapper: &[&str], env: &[(&str, &str)]) -> Shim {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let home = tempfile::tempdir().expect("a home directory");
        let socket = env
            .iter()
            .find(|(k, _)| *k == "EXAMROOM_SHIM_SOCKET")
            .map_or("examroom-shim".to_string(), |(_, v)| v.to_string());
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--net", "--mount-proc", "--kill-child=SIGKILL"])
            .args(wrapper)
            .arg(bin)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", home.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("unshare (util-linux) runs");
        let netns = File::open("/proc/self/ns/net").unwrap();
        let mut shim = Shim { pid: 0, netns, unshare, socket, log, _home: home };
        let deadline = Instant::now() + Duration::from_secs(10);
        // The shim is unshare's child.
        while shim.pid == 0 {
            assert!(Instant::now() < deadline, "the shim did not start within 10 s: {}", shim.log());
            if let Ok(Some(st)) = shim.unshare.try_wait() {
                panic!("unshare exited ({st}) before the shim started: {}", shim.log());
            }
            shim.pid = children_of(shim.unshare.id() as i32).first().copied().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(5));
        }
        shim.netns = File::open(format!("/proc/{}/ns/net", shim.pid)).expect("the shim's network namespace");
        // A container's loopback is up (Docker does it); a fresh namespace's is not.
        let lo = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", shim.pid))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .expect("nsenter and ip run");
        assert!(lo.success(), "bringing the loopback up: {lo}");
        while shim.connect().is_err() {
            assert!(Instant::now() < deadline, "the shim did not listen within 10 s: {}", shim.log());
            std::thread::sleep(Duration::from_millis(5));
        }
        shim
    }

    /// What the shim printed.
    pub fn log(&self) -> String {
        let mut s = String::new();
        let _ = File::open(self.log.path()).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// Connects to the shim from outside its pid namespace, from inside its network namespace (a thread of ours
    /// `setns` there).
    pub fn connect(&self) -> std::io::Result<UnixStream> {
        let netns = self.netns.try_clone()?;
        let name = self.socket.clone();
        std::thread::spawn(move || {
            nix::sched::setns(&netns, CloneFlags::CLONE_NEWNET)?;
            let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
            UnixStream::connect_addr(&addr)
        })
        .join()
        .expect("the connecting thread")
    }

    /// A connection after the handshake, as the runtime makes it.
    pub async fn client(&self) -> Client {
        let s = self.connect().expect("connect to the shim");
        s.set_nonblocking(true).unwrap();
        let s = tokio::net::UnixStream::from_std(s).unwrap();
        ShimClient::handshake(s).await.expect("handshake")
    }

    /// Attaches to a terminal.
    pub async fn attach(&self, terminal: &str, replay: bool) -> (Output, Input) {
        let (stream, version) = self.client().await.attach(terminal, replay).await.expect("attach");
        let (r, w) = tokio::io::split(stream);
        (TerminalReader::new(r), TerminalWriter::new(w, terminal, version))
    }

    /// Runs a command inside.
    pub async fn exec(&self, argv: &[&str], stdin: &[u8]) -> Result<(ExecStatus, String, String), RuntimeError> {
        let spec = spec(argv);
        self.exec_spec(spec, stdin).await
    }

    /// Runs a command inside, as specified.
    pub async fn exec_spec(&self, spec: ExecSpec, stdin: &[u8]) -> Result<(ExecStatus, String, String), RuntimeError> {
        let c = self.client().await;
        let (st, out, err) = c.exec(spec, false, stdin, Duration::from_secs(30)).await?;
        Ok((st, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned()))
    }

    /// Runs a shell script inside; its stdout, after checking it exited 0.
    pub async fn sh(&self, script: &str) -> String {
        let (st, out, err) = self.exec(&["sh", "-c", script], b"").await.expect("exec");
        assert_eq!(st.exit_code, Some(0), "{script}: {st:?}, stdout {out:?}, stderr {err:?}");
        out
    }

    /// Waits (bounded) for unshare to exit, which it does once the shim has.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.unshare.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The shim's pid namespace (as `/proc/<pid>/ns/pid` reads).
    pub fn pidns(&self) -> String {
        std::fs::read_link(format!("/proc/{}/ns/pid", self.pid)).map(|p| p.display().to_string()).unwrap_or_default()
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // unshare's death takes the shim (PID 1, --kill-child) and with it everything in its namespace.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        if std::thread::panicking() {
            eprintln!("--- the shim's log ---\n{}", self.log());
        }
    }
}

/// An exec request with a plain environment.
pub fn spec(argv: &[&str]) -> ExecSpec {
    ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), PATH.into())],
        cwd: "/".into(),
        timeout_ms: 20_000,
        output_limit: 1 << 20,
    }
}

/// Host pids whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse::<i32>().ok());
        if parent == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Host pids of the processes in a pid namespace.
pub fn processes_in(ns: &str) -> Vec<i32> {
    if ns.is_empty() {
        return Vec::new();
    }
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|p| p.display().to_string() == ns))
        .collect()
}

/// Reads a terminal until its output contains `needle`, bounded. Returns the output and the notices seen.
pub async fn read_until(out: &mut Output, needle: &str, within: Duration) -> (String, Vec<String>) {
    let deadline = tokio::time::Instant::now() + within;
    let (mut seen, mut notices) = (Vec::new(), Vec::new());
    loop {
        let text = String::from_utf8_lossy(&seen).replace('\r', "");
        if text.contains(needle) {
            return (text, notices);
        }
        match tokio::time::timeout_at(deadline, out.next()).await {
            Ok(Ok(Some(TerminalEvent::Output(b)))) => seen.extend_from_slice(&b),
            Ok(Ok(Some(TerminalEvent::Notice(n)))) => notices.push(n),
            Ok(other) => panic!("the terminal ended ({other:?}) before {needle:?}; saw {text:?}"),
            Err(_) => panic!("no {needle:?} within {within:?}; saw {text:?}, notices {notices:?}"),
        }
    }
}

/// Reads a terminal until it ends (Replaced, Ended or end of stream), bounded; the last event.
pub async fn read_to_end(out: &mut Output, within: Duration) -> Option<TerminalEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, out.next()).await {
            Ok(Ok(Some(TerminalEvent::Output(_)))) | Ok(Ok(Some(TerminalEvent::Notice(_)))) => continue,
            Ok(Ok(Some(e))) => return Some(e),
            Ok(Ok(None)) | Ok(Err(_)) => return None,
            Err(_) => panic!("the terminal did not end within {within:?}"),
        }
    }
}
