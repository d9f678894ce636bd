//! [`SandboxRuntime`]: the server's side of the sandbox backend. It starts one shim per environment, talks to shims
//! over their sockets, and cleans up after them. Everything it knows lives in the state directory, so a restarted
//! server finds every environment again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;

/// How long a desktop may take to answer once started.
const DESKTOP_TIMEOUT: Duration = Duration::from_secs(15);

use super::cgroup::{self, Cgroups, RealOs};
use super::idmap::UidPool;
use super::state::{self, ShimConfig, ShimState};
use crate::error::RuntimeError;
use crate::protocol::client::{ShimClient, TerminalReader, TerminalWriter, REQUEST_TIMEOUT};
use crate::protocol::{ExecSpec, Reply, Request};
use crate::types::*;
use crate::{ExecutionRuntime, Terminal};

/// How the sandbox backend is set up.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where environments keep their state (a directory per label inside).
    pub state_dir: PathBuf,
    /// This runtime instance's name: scopes cgroups and state, so that tests and several servers do not meet.
    pub label: String,
    /// The program that runs `__shim` (this binary by default).
    pub shim_program: PathBuf,
    /// The top cgroup name.
    pub cgroup_root: String,
    /// Host uid ranges.
    pub uid_pool: UidPool,
    /// `Some(false)` forces the no-user-namespace fallback; `None` uses one when the kernel allows.
    pub userns: Option<bool>,
    /// Host paths never visible inside (the data directory, the exam catalog); the state directory is always added.
    pub hidden: Vec<PathBuf>,
    /// Scrollback per terminal.
    pub scrollback_bytes: usize,
    /// How long a create may take (once its turn came, see `concurrent_creates`).
    pub create_timeout: Duration,
    /// Environments being made at once; more wait their turn, first come first served. Making one is mostly mount
    /// and namespace work in the kernel, under locks that CPU weights cannot share out: a short queue keeps a start
    /// storm from slowing everything down at once, the candidates who are typing included.
    pub concurrent_creates: usize,
    /// Whether `system` environments may be made (systemd, and `CAP_SYS_ADMIN` in the environment's own user
    /// namespace, which opens more of the kernel to a candidate; see SECURITY.md).
    pub allow_system_profile: bool,
}

impl SandboxConfig {
    /// Defaults for a state directory and label.
    pub fn new(state_dir: impl Into<PathBuf>, label: &str) -> Self {
        SandboxConfig {
            state_dir: state_dir.into(),
            label: label.to_string(),
            shim_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            cgroup_root: "examroom".into(),
            uid_pool: UidPool::default(),
            userns: None,
            hidden: Vec::new(),
            scrollback_bytes: 256 * 1024,
            create_timeout: Duration::from_secs(30),
            concurrent_creates: default_concurrent_creates(),
            allow_system_profile: true,
        }
    }
}

/// Twice the CPUs this process may use, at least 2.
pub fn default_concurrent_creates() -> usize {
    std::thread::available_parallelism().map(|n| n.get() * 2).unwrap_or(2).max(2)
}

/// Checks a label: 1 to 32 of `[a-z0-9-]`, not starting with `-`.
pub fn validate_label(label: &str) -> Result<(), RuntimeError> {
    let ok = !label.is_empty()
        && label.len() <= 32
        && !label.starts_with('-')
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::invalid(
            "label",
            format!("{label:?} must be 1 to 32 of a-z, 0-9 and '-', not starting with '-'"),
        ))
    }
}

/// The sandbox backend.
pub struct SandboxRuntime {
    cfg: SandboxConfig,
    /// `<state_dir>/<label>`.
    dir: PathBuf,
    /// `<state>/base`: the curated `/etc` builds (`base_etc.rs`), one per host package state.
    base_dir: PathBuf,
    /// One build at a time.
    building: Arc<std::sync::Mutex<()>>,
    userns: bool,
    cg: Arc<Cgroups<RealOs>>,
    /// Turns to make an environment (`SandboxConfig::concurrent_creates`).
    creating: Arc<tokio::sync::Semaphore>,
    /// Notices of environments whose shim or init died (`watch.rs`).
    watcher: Arc<super::watch::Watcher>,
}

impl SandboxRuntime {
    /// Prepares the state directory and the curated `/etc`, and checks the host. Environments left by an earlier
    /// server are found again by [`ExecutionRuntime::list`].
    pub fn new(mut cfg: SandboxConfig) -> Result<Self, RuntimeError> {
        validate_label(&cfg.label)?;
        if !cfg.state_dir.is_absolute() {
            return Err(RuntimeError::invalid("state_dir", "must be an absolute path"));
        }
        let dir = cfg.state_dir.join(&cfg.label);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(format!("create {}", dir.display()), e))?;
        set_mode(&cfg.state_dir, 0o711)?;
        set_mode(&dir, 0o700)?;
        // Longest socket path: <dir>/<36-char id>/shim.sock must fit in sun_path (108 bytes with the NUL).
        let longest = dir.as_os_str().len() + 1 + 36 + 1 + state::SOCKET.len();
        if longest > 107 {
            return Err(RuntimeError::invalid(
                "state_dir",
                format!("{} is too long for unix sockets inside it ({longest} > 107 bytes)", dir.display()),
            ));
        }
        let base_dir = cfg.state_dir.join("base");
        let building = Arc::new(std::sync::Mutex::new(()));
        current_base_etc(&base_dir, &building)?;
        let layout = cgroup::detect_layout(&RealOs).map_err(|e| RuntimeError::Backend(e.to_string()))?;
        let userns = match cfg.userns {
            Some(v) => v,
            None => std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0),
        };
        if !cfg.hidden.contains(&cfg.state_dir) {
            cfg.hidden.push(cfg.state_dir.clone());
        }
        let cg = Arc::new(Cgroups::new(RealOs, layout, &cfg.cgroup_root, &cfg.label));
        let creating = Arc::new(tokio::sync::Semaphore::new(cfg.concurrent_creates.max(1)));
        let watcher = super::watch::Watcher::new();
        Ok(SandboxRuntime { cfg, dir, base_dir, building, userns, cg, creating, watcher })
    }

    /// Environments whose shim or init died, as they die (a hint: ask [`ExecutionRuntime::status`] for the truth).
    /// Every environment this runtime made, or found again with [`ExecutionRuntime::list`], is watched.
    pub fn losses(&self) -> tokio::sync::broadcast::Receiver<EnvironmentId> {
        self.watcher.subscribe()
    }

    /// Whether environments get a user namespace.
    pub fn uses_userns(&self) -> bool {
        self.userns
    }

    /// The label.
    pub fn label(&self) -> &str {
        &self.cfg.label
    }

    /// This label's state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<state_dir>/images`: the image store (`examroom image import`), shared by every label.
    pub fn images_dir(&self) -> PathBuf {
        self.cfg.state_dir.join("images")
    }

    /// An image's tree as the base, for a spec that names an image.
    fn image_base(&self, reference: &str) -> Result<Base, RuntimeError> {
        let image = examroom_images::ImageStore::at(self.images_dir())
            .resolve(reference)
            .map_err(|e| RuntimeError::invalid("base", e.to_string()))?;
        Ok(Base::Rootfs(image.rootfs))
    }

    /// The manifest digest of the image environment `id` was made from, if its base is an image of this store.
    pub fn image_digest_of(&self, id: &EnvironmentId) -> Option<String> {
        let cfg: ShimConfig = state::read_json(&self.env_dir(id).join(state::CONFIG)).ok()?;
        let Base::Rootfs(tree) = cfg.spec.base else { return None };
        let image = tree.parent().filter(|_| tree.file_name() == Some(std::ffi::OsStr::new("rootfs")))?;
        let hex = image.file_name()?.to_string_lossy().into_owned();
        (image.parent()? == self.images_dir().join("images")).then(|| format!("sha256:{hex}"))
    }

    /// Whether this runtime holds environment `id` (its state directory exists): how [`crate::Backends`] finds
    /// the backend of an environment made before a restart.
    pub fn holds(&self, id: &EnvironmentId) -> bool {
        self.env_dir(id).is_dir()
    }

    fn env_dir(&self, id: &EnvironmentId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn validate(&self, spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
        spec.limits.validate()?;
        if spec.profile == Profile::System {
            if !self.cfg.allow_system_profile {
                return Err(RuntimeError::invalid(
                    "profile",
                    "the system profile is turned off on this server (its operator chose so); use the shell profile",
                ));
            }
            if !self.userns {
                return Err(RuntimeError::invalid(
                    "profile",
                    "the system profile needs user namespaces, which this host does not allow \
                     (sysctl user.max_user_namespaces); use the shell profile",
                ));
            }
        }
        if let Base::Rootfs(p) = &spec.base {
            let md = std::fs::metadata(p)
                .map_err(|_| RuntimeError::invalid("base", format!("rootfs {} does not exist", p.display())))?;
            if !md.is_dir() {
                return Err(RuntimeError::invalid("base", format!("rootfs {} is not a directory", p.display())));
            }
            if std::fs::symlink_metadata(p.join("bin/sh")).is_err() && !p.join("usr/bin/sh").exists() {
                return Err(RuntimeError::invalid("base", format!("rootfs {} has no /bin/sh", p.display())));
            }
        }
        if !(2..=1000).contains(&spec.cols) || !(2..=1000).contains(&spec.rows) {
            return Err(RuntimeError::invalid("size", "terminal columns and rows must be 2..=1000"));
        }
        Ok(())
    }

    async fn connect(&self, id: &EnvironmentId) -> Result<ShimClient<UnixStream>, RuntimeError> {
        let dir = self.env_dir(id);
        let sock = dir.join(state::SOCKET);
        match tokio::time::timeout(REQUEST_TIMEOUT, UnixStream::connect(&sock)).await {
            Ok(Ok(s)) => ShimClient::handshake(s).await.map_err(|e| match e {
                // The shim died between accept and answer.
                RuntimeError::Io { source, .. } => RuntimeError::Lost(format!("its shim went away ({source})")),
                other => other,
            }),
            // Out of descriptors (or kernel memory) here: nothing is known about the shim. Never call it lost.
            Ok(Err(e)) if crate::error::is_out_of_resources(&e) => Err(RuntimeError::io("connect to a shim", e)),
            Ok(Err(_)) if !dir.exists() => Err(RuntimeError::NotFound),
            Ok(Err(e)) => Err(RuntimeError::Lost(format!("its shim does not answer ({e})"))),
            Err(_) => {
                Err(RuntimeError::Timeout { what: "connect to shim".into(), ms: REQUEST_TIMEOUT.as_millis() as u64 })
            }
        }
    }

    /// Removes everything an environment made, whatever state its shim is in, and verifies it. Blocking.
    fn cleanup(cg: &Cgroups<RealOs>, pool: &UidPool, dir: &Path) -> Result<u32, RuntimeError> {
        let mut st: ShimState = state::read_json(&dir.join(state::STATE)).unwrap_or_default();
        // A shim that died before recording its cgroups may still have made them: their names are derived.
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            if st.env_group.is_none() {
                st.env_group = cg.env_group(name).ok();
            }
            if st.shim_group.is_none() {
                st.shim_group = cg.shim_group(name).ok();
            }
        }
        let mut killed = 0;
        let wait = Duration::from_secs(10);
        // A shim that never reported ready may be in no cgroup yet.
        kill_recorded_shim(dir);
        if let Some(g) = &st.env_group {
            killed += cg.procs(g).map(|p| p.len() as u32).unwrap_or(0);
            cg.kill_all(g, wait).map_err(|e| RuntimeError::Backend(format!("kill the environment: {e}")))?;
        }
        if let Some(g) = &st.shim_group {
            cg.kill_all(g, wait).map_err(|e| RuntimeError::Backend(format!("stop the shim: {e}")))?;
        }
        // The grading group, if grading ever ran.
        let grade_group =
            dir.file_name().and_then(|n| n.to_str()).and_then(|n| cg.env_group(&format!("{n}.grade")).ok());
        if let Some(g) = &grade_group {
            cg.kill_all(g, wait).map_err(|e| RuntimeError::Backend(format!("stop grading: {e}")))?;
        }
        for g in [&st.env_group, &st.shim_group, &grade_group].into_iter().flatten() {
            cg.remove(g, wait).map_err(|e| RuntimeError::Backend(format!("remove cgroup: {e}")))?;
        }
        if st.uid.is_none() {
            // A shim that died before recording its claim: find it by owner.
            st.uid = pool.claimed_by(dir).map(|slot| super::idmap::UidSlot { slot, base: pool.base(slot) });
        }
        if let Some(slot) = st.uid {
            pool.release(slot.slot, dir).map_err(|e| RuntimeError::io("release the uid range", e))?;
        }
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::io(format!("remove {}", dir.display()), e))
            }
            _ => {}
        }
        // Verify.
        let mut left = Vec::new();
        for g in [&st.env_group, &st.shim_group, &grade_group].into_iter().flatten() {
            left.extend(g.paths.iter().filter(|p| p.exists()).map(|p| p.display().to_string()));
        }
        if dir.exists() {
            left.push(dir.display().to_string());
        }
        if let Some(slot) = st.uid {
            if pool.held_by(slot.slot, dir) {
                left.push(format!("uid range {}", slot.slot));
            }
        }
        if !left.is_empty() {
            return Err(RuntimeError::Backend(format!("teardown left {}", left.join(", "))));
        }
        // The last environment of this label takes the label's cgroup parents with it.
        let label_dir = dir.parent();
        if label_dir.is_some_and(|d| std::fs::read_dir(d).map(|mut e| e.next().is_none()).unwrap_or(false)) {
            cg.remove_label_if_empty();
        }
        Ok(killed)
    }

    async fn cleanup_async(&self, dir: PathBuf) -> Result<u32, RuntimeError> {
        let cg = self.cg.clone();
        let pool = self.cfg.uid_pool.clone();
        tokio::task::spawn_blocking(move || Self::cleanup(&cg, &pool, &dir))
            .await
            .map_err(|e| RuntimeError::Backend(format!("cleanup task: {e}")))?
    }

    fn log_tail(dir: &Path) -> String {
        let log = std::fs::read_to_string(dir.join(state::LOG)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Destroys every environment of this label without asking their shims: kills each cgroup (shim included),
    /// then removes and verifies. Blocking; for emergencies and for test harnesses that must not leak when a test
    /// fails. Returns how many were removed.
    pub fn destroy_all_blocking(&self) -> Result<usize, RuntimeError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| RuntimeError::io("list environments", e))?;
        let mut n = 0;
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.parse::<EnvironmentId>().is_ok()) {
                Self::cleanup(&self.cg, &self.cfg.uid_pool, &e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn run(&self, id: &EnvironmentId, req: ExecRequest, trusted: bool) -> Result<ExecOutput, RuntimeError> {
        if req.argv.is_empty() {
            return Err(RuntimeError::invalid("argv", "empty"));
        }
        let client = self.connect(id).await?;
        let spec = ExecSpec {
            argv: req.argv,
            env: req.env,
            cwd: req.cwd,
            timeout_ms: req.timeout.as_millis() as u64,
            output_limit: req.output_limit,
        };
        // The shim enforces the command's timeout; ours only covers a shim that stops answering.
        let (st, stdout, stderr) =
            client.exec(spec, trusted, &req.stdin, req.timeout + Duration::from_secs(10)).await?;
        Ok(ExecOutput {
            exit_code: st.exit_code,
            signal: st.signal,
            timed_out: st.timed_out,
            stdout,
            stderr,
            truncated: st.truncated,
            duration: Duration::from_millis(st.duration_ms),
        })
    }

    /// Removes environments whose shim is gone (lost after a crash, or a SIGKILL of the shim). Returns how many.
    pub async fn reap_lost(&self) -> Result<usize, RuntimeError> {
        let mut n = 0;
        for st in self.list().await? {
            if matches!(st.state, EnvironmentState::Lost { .. }) {
                self.destroy(&st.id).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| RuntimeError::io(format!("chmod {}", p.display()), e))
}

impl ExecutionRuntime for SandboxRuntime {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn create(&self, mut spec: EnvironmentSpec) -> Result<(), RuntimeError> {
        let env_id = spec.id;
        if let Some(image) = &spec.image {
            spec.base = self.image_base(image)?;
        }
        self.validate(&spec)?;
        // Wait for a turn (bounded by the caller: a session's provisioning timeout covers the wait).
        let _turn =
            self.creating.acquire().await.map_err(|_| RuntimeError::Backend("the runtime is closing".into()))?;
        // The curated /etc for the host's packages as they are now (built again when they changed).
        let (base_dir, building) = (self.base_dir.clone(), self.building.clone());
        let base_etc = tokio::task::spawn_blocking(move || current_base_etc(&base_dir, &building))
            .await
            .map_err(|e| RuntimeError::Backend(format!("building the curated /etc: {e}")))??;
        if spec.profile == Profile::System {
            machine_inotify_limits();
        }
        let dir = self.env_dir(&spec.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(RuntimeError::AlreadyExists),
            Err(e) => return Err(RuntimeError::io("create the state directory", e)),
        }
        // A machine's shim gives up on a boot after 30 s and then says why: wait longer than that for its word.
        let create_timeout = match spec.profile {
            Profile::System => self.cfg.create_timeout.max(Duration::from_secs(45)),
            Profile::Shell => self.cfg.create_timeout,
        };
        let cfg = ShimConfig {
            spec,
            label: self.cfg.label.clone(),
            cgroup_root: self.cfg.cgroup_root.clone(),
            uid_pool: self.cfg.uid_pool.clone(),
            userns: self.userns,
            base_etc,
            hidden: self.cfg.hidden.clone(),
            scrollback_bytes: self.cfg.scrollback_bytes,
        };
        let started = async {
            state::write_json(&dir.join(state::CONFIG), &cfg).map_err(|e| RuntimeError::io("write config", e))?;
            let log =
                std::fs::File::create(dir.join(state::LOG)).map_err(|e| RuntimeError::io("create shim log", e))?;
            let mut child = tokio::process::Command::new(&self.cfg.shim_program)
                .arg("__shim")
                .arg(&dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(log)
                .env_clear()
                .kill_on_drop(false)
                .spawn()
                .map_err(|e| RuntimeError::io(format!("start the shim {}", self.cfg.shim_program.display()), e))?;
            // Until the shim reports ready, it dies with this create: on an error, a timeout, or when the caller
            // drops the create (its own deadline). Its pid is also on disk, for a cleanup by a later process.
            let mut guard = ShimGuard(child.id().map(|p| p as i32));
            if let Some(pid) = guard.0 {
                let _ = std::fs::write(dir.join(state::PID), pid.to_string());
            }
            let stdout = child.stdout.take().ok_or_else(|| RuntimeError::Backend("shim has no stdout".into()))?;
            let mut line = String::new();
            let read = tokio::time::timeout(create_timeout, BufReader::new(stdout).read_line(&mut line)).await;
            // The shim is our child until it exits: reap it whenever that is, without holding up anyone.
            let reap = async move {
                let _ = child.wait().await;
            };
            match read {
                Err(_) => {
                    tokio::spawn(reap);
                    Err(RuntimeError::Timeout {
                        what: "environment create".into(),
                        ms: create_timeout.as_millis() as u64,
                    })
                }
                Ok(Err(e)) => {
                    tokio::spawn(reap);
                    Err(RuntimeError::io("read the shim's report", e))
                }
                Ok(Ok(_)) => {
                    tokio::spawn(reap);
                    let ready: super::shim::Ready = serde_json::from_str(line.trim()).map_err(|_| {
                        RuntimeError::Backend(format!("the shim exited without a report: {}", Self::log_tail(&dir)))
                    })?;
                    if ready.ok {
                        guard.0 = None;
                        self.watcher.watch(env_id, dir.clone());
                        Ok(())
                    } else {
                        Err(RuntimeError::Backend(ready.error.unwrap_or_else(|| "create failed".into())))
                    }
                }
            }
        };
        match started.await {
            Ok(()) => Ok(()),
            Err(e) => match self.cleanup_async(dir).await {
                Ok(_) => Err(e),
                Err(c) => {
                    tracing::error!(error = %c, "cleanup after a failed create");
                    Err(RuntimeError::Backend(format!("{e}; cleaning up after it failed too: {c}")))
                }
            },
        }
    }

    async fn attach(&self, id: &EnvironmentId, terminal: &str) -> Result<Terminal, RuntimeError> {
        let (stream, version) = self.connect(id).await?.attach(terminal, true).await?;
        let (r, w) = stream.into_split();
        Ok(Terminal {
            output: TerminalReader::new(Box::new(r)),
            input: TerminalWriter::new(Box::new(w), terminal, version),
        })
    }

    async fn dial(&self, id: &EnvironmentId, port: u16) -> Result<crate::PortStream, RuntimeError> {
        let stream = self.connect(id).await?.dial(port).await?;
        Ok(crate::protocol::client::relay(stream))
    }

    async fn start_desktop(
        &self,
        id: &EnvironmentId,
        spec: crate::DesktopSpec,
    ) -> Result<crate::DesktopStatus, RuntimeError> {
        let port = spec.port;
        let mut status = self.connect(id).await?.start_desktop(spec.clone()).await?;
        // Ready once the VNC server greets (`RFB 003.008\n`); it takes the X server a moment to listen.
        let deadline = tokio::time::Instant::now() + DESKTOP_TIMEOUT;
        loop {
            let last = match self.dial(id, port).await {
                Ok(mut s) => {
                    let mut hello = [0u8; 12];
                    match tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut hello)).await {
                        Ok(Ok(_)) if hello.starts_with(b"RFB ") => return Ok(status),
                        Ok(Ok(_)) => format!("port {port} answered {:?}, not VNC", String::from_utf8_lossy(&hello)),
                        Ok(Err(e)) => format!("reading the VNC greeting: {e}"),
                        Err(_) => "the VNC server did not greet within 2 s".to_string(),
                    }
                }
                Err(RuntimeError::Refused(m)) => m,
                Err(e) => return Err(e),
            };
            // Still starting, or ended: the shim knows which (asked without starting it again).
            status = match self.connect(id).await?.call(&Request::Status, REQUEST_TIMEOUT).await? {
                Reply::Status(crate::protocol::ShimStatus { desktop: Some(d), .. }) => d,
                other => return Err(reply_error(other)),
            };
            if status.state != "running" || tokio::time::Instant::now() >= deadline {
                let why = status.error.clone().unwrap_or(last);
                return Err(RuntimeError::Backend(format!("the desktop did not start: {why}")));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn open_terminal(&self, id: &EnvironmentId, cols: u16, rows: u16) -> Result<String, RuntimeError> {
        match self.connect(id).await?.call(&Request::OpenTerminal { cols, rows }, REQUEST_TIMEOUT).await? {
            Reply::Opened { terminal } => Ok(terminal),
            other => Err(reply_error(other)),
        }
    }

    async fn resize(&self, id: &EnvironmentId, terminal: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        match self
            .connect(id)
            .await?
            .call(&Request::Resize { terminal: terminal.into(), cols, rows }, REQUEST_TIMEOUT)
            .await?
        {
            Reply::Ok => Ok(()),
            other => Err(reply_error(other)),
        }
    }

    async fn exec(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        self.run(id, req, false).await
    }

    async fn exec_trusted(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        self.run(id, req, true).await
    }

    async fn freeze(&self, id: &EnvironmentId) -> Result<(), RuntimeError> {
        // A shell environment freezes within 10 s; a machine is stopped (10 s at most) and booted again for grading
        // (30 s at most, see `shim/reboot.rs`).
        match self.connect(id).await?.call(&Request::Freeze, REQUEST_TIMEOUT + Duration::from_secs(45)).await? {
            Reply::Ok => Ok(()),
            other => Err(reply_error(other)),
        }
    }

    async fn status(&self, id: &EnvironmentId) -> Result<EnvironmentStatus, RuntimeError> {
        let lost = |reason: String| EnvironmentStatus {
            id: *id,
            state: EnvironmentState::Lost { reason },
            processes: 0,
            shell_restarts: 0,
            oom_kills: 0,
            protocol_version: 0,
        };
        let mut client = match self.connect(id).await {
            Ok(c) => c,
            Err(RuntimeError::Lost(reason)) => return Ok(lost(reason)),
            Err(e) => return Err(e),
        };
        match client.call(&Request::Status, REQUEST_TIMEOUT).await? {
            Reply::Status(s) => Ok(EnvironmentStatus {
                id: *id,
                state: match s.lost_reason {
                    Some(reason) => EnvironmentState::Lost { reason },
                    None => EnvironmentState::Running,
                },
                processes: s.processes,
                shell_restarts: s.terminals.iter().map(|t| t.shell_restarts).sum(),
                oom_kills: s.oom_kills,
                protocol_version: client.version(),
            }),
            other => Err(reply_error(other)),
        }
    }

    async fn list(&self) -> Result<Vec<EnvironmentStatus>, RuntimeError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| RuntimeError::io("list environments", e))?;
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<EnvironmentId>().ok()) else { continue };
            match self.status(&id).await {
                Ok(s) => {
                    if s.state == EnvironmentState::Running {
                        self.watcher.watch(id, self.env_dir(&id));
                    }
                    out.push(s)
                }
                Err(RuntimeError::NotFound) => {}
                // The server itself is out of descriptors: the whole answer would be a guess. Callers (the
                // reconciler, readiness) treat this as "unknown, try later", never as lost environments.
                Err(e) if e.is_out_of_resources() => return Err(e),
                Err(e) => out.push(EnvironmentStatus {
                    id,
                    state: EnvironmentState::Lost { reason: e.to_string() },
                    processes: 0,
                    shell_restarts: 0,
                    oom_kills: 0,
                    protocol_version: 0,
                }),
            }
        }
        Ok(out)
    }

    async fn destroy(&self, id: &EnvironmentId) -> Result<DestroyReport, RuntimeError> {
        let t0 = Instant::now();
        let dir = self.env_dir(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound);
        }
        // Its end is on purpose: no notice of a loss.
        self.watcher.forget(id);
        let mut killed = 0;
        if let Ok(mut client) = self.connect(id).await {
            if let Ok(Reply::Destroyed { killed: k }) = client.call(&Request::Destroy, Duration::from_secs(20)).await {
                killed = k;
            }
            // Wait (bounded) for the shim to exit, so that its cgroup can go; cleanup kills it otherwise.
            let st: ShimState = state::read_json(&dir.join(state::STATE)).unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(5);
            while st.shim_pid > 0
                && super::sys::process_alive(st.shim_pid)
                && !is_zombie(st.shim_pid)
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        killed += self.cleanup_async(dir).await?;
        Ok(DestroyReport { killed, verified: true, duration_ms: t0.elapsed().as_millis() as u64 })
    }
}

/// Kills a shim that has not reported ready when the create that started it ends (or is dropped).
struct ShimGuard(Option<i32>);

impl Drop for ShimGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: signalling our own child, which has not been reaped (the reaper task holds it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Kills the shim named in `shim.pid` if that pid still runs the shim of `dir` (and not a reused pid).
fn kill_recorded_shim(dir: &Path) {
    let Some(pid) = std::fs::read_to_string(dir.join(state::PID)).ok().and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return };
    let mut want = b"__shim\0".to_vec();
    want.extend_from_slice(dir.as_os_str().as_encoded_bytes());
    if pid > 0 && cmdline.windows(want.len()).any(|w| w == want.as_slice()) {
        // SAFETY: the pid runs this environment's shim (checked just above).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

fn reply_error(r: Reply) -> RuntimeError {
    match r {
        Reply::Error { code, message } if code == "environment_lost" => RuntimeError::Lost(message),
        Reply::Error { code, message } if code == "no_such_terminal" => RuntimeError::invalid("terminal", message),
        Reply::Error { code, message } => RuntimeError::Backend(format!("{code}: {message}")),
        other => RuntimeError::Protocol(format!("unexpected answer {other:?}")),
    }
}

/// The curated `/etc` for the host's current package state, built first if needed (one build at a time).
/// A machine's services (systemd, journald, logind, dbus) hold inotify instances, and every environment's are counted
/// against host root, which made their user namespaces: the kernel's default of 128 instances stops about the
/// twentieth machine's systemd at boot ("Failed to allocate manager object: Too many open files"). Raised once, never
/// lowered; a host that refuses gets a warning with the command.
fn machine_inotify_limits() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        for (name, want) in [("max_user_instances", 65536u64), ("max_user_watches", 4_194_304)] {
            let path = format!("/proc/sys/fs/inotify/{name}");
            let now = std::fs::read_to_string(&path).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
            if now >= want {
                continue;
            }
            match std::fs::write(&path, want.to_string()) {
                Ok(()) => tracing::info!("raised fs.inotify.{name} from {now} to {want} for machines' services"),
                Err(e) => tracing::warn!(
                    "fs.inotify.{name} is {now}: machines may fail to boot once their services hold that many; \
                     run `sysctl -w fs.inotify.{name}={want}` ({e})"
                ),
            }
        }
    });
}

fn current_base_etc(base_dir: &Path, building: &std::sync::Mutex<()>) -> Result<PathBuf, RuntimeError> {
    let _one = building.lock().unwrap_or_else(|p| p.into_inner());
    // The host's packages may be changing right now (a package manager replacing /etc/group, its lock and backup
    // files coming and going): a build that failed is tried again a moment later, twice, before a create fails.
    let mut tries = 0;
    loop {
        match crate::sandbox::base_etc::current(Path::new("/"), base_dir) {
            Ok(p) => return Ok(p),
            Err(e) if tries < 2 => {
                tries += 1;
                tracing::warn!(error = %e, "building the curated /etc failed; trying again");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(RuntimeError::io("build the curated /etc", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        for ok in ["a", "dev", "t-123-x", "0abc"] {
            assert!(validate_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "A", "a/b", "a b", "../x", "é", &"x".repeat(33)] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
    }
}
