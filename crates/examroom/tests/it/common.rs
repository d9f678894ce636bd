//! Shared harness: a sandbox runtime with its own state directory and label, terminal helpers, and leak checks.

#![allow(dead_code)]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{EnvironmentSpec, ExecOutput, ExecRequest, ExecutionRuntime, Profile, Terminal, TerminalEvent};

/// The examroom binary, which is also the shim.
pub fn shim_program() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_examroom"))
}

/// These tests need root (namespaces, cgroups, idmapped mounts). Fail loudly rather than pass vacuously.
pub fn require_root() {
    // SAFETY: getuid has no preconditions.
    assert_eq!(unsafe { libc::getuid() }, 0, "the sandbox integration tests must run as root");
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique label for this test run and test.
pub fn unique_label(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A runtime with its own temporary state directory and label.
pub struct Harness {
    pub rt: SandboxRuntime,
    /// The profile of the environments `create` and `create_spec` make.
    pub profile: Profile,
    pub label: String,
    pub state_dir: PathBuf,
    torn_down: bool,
    _tmp: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with(|_| {})
    }

    /// A harness whose config is adjusted by `f` before the runtime starts.
    pub fn with(f: impl FnOnce(&mut SandboxConfig)) -> Harness {
        require_root();
        let tmp = tempfile::Builder::new().prefix("er-it-").tempdir_in("/tmp").expect("tempdir");
        let label = unique_label("it");
        let mut cfg = SandboxConfig::new(tmp.path(), &label);
        cfg.shim_program = shim_program();
        f(&mut cfg);
        let rt = SandboxRuntime::new(cfg).expect("runtime");
        Harness { rt, profile: Profile::Shell, label, state_dir: tmp.path().to_path_buf(), torn_down: false, _tmp: tmp }
    }

    /// A harness whose environments are of `profile`.
    pub fn for_profile(profile: Profile) -> Harness {
        Self::for_profile_with(profile, |_| {})
    }

    /// [`Harness::for_profile`], with the config adjusted by `f`.
    pub fn for_profile_with(profile: Profile, f: impl FnOnce(&mut SandboxConfig)) -> Harness {
        let mut h = Self::with(f);
        h.profile = profile;
        h
    }

    /// Another runtime on the same state directory and label (a restarted server).
    pub fn reopen(&self) -> SandboxRuntime {
        let mut cfg = SandboxConfig::new(&self.state_dir, &self.label);
        cfg.shim_program = shim_program();
        SandboxRuntime::new(cfg).expect("reopen runtime")
    }

    /// Creates an environment with default limits.
    pub async fn create(&self) -> EnvironmentId {
        self.create_spec(|_| {}).await
    }

    /// Creates an environment of the harness's profile whose spec is adjusted by `f`. A `system` environment is
    /// returned once its service manager has booted.
    pub async fn create_spec(&self, f: impl FnOnce(&mut EnvironmentSpec)) -> EnvironmentId {
        let id = EnvironmentId::new_v4();
        let mut spec = EnvironmentSpec::new(id);
        spec.profile = self.profile;
        f(&mut spec);
        let system = spec.profile == Profile::System;
        self.rt.create(spec).await.expect("create");
        if system {
            self.wait_booted(&id).await;
        }
        id
    }

    /// Waits (bounded) until a `system` environment's service manager has finished booting, cleanly.
    pub async fn wait_booted(&self, id: &EnvironmentId) {
        let out = self
            .sh(
                id,
                "for i in $(seq 150); do [ -S /run/systemd/private ] && break; sleep 0.1; done; \
                 timeout 30 systemctl is-system-running --wait",
            )
            .await;
        if out.stdout_text().trim() != "running" {
            let why =
                self.sh(id, "systemctl --failed --no-legend; journalctl -b -p warning --no-pager | tail -20").await;
            panic!(
                "the machine did not boot cleanly: {} {:?} {}\n{}{}",
                out.stdout_text().trim(),
                out.exit_code,
                String::from_utf8_lossy(&out.stderr),
                why.stdout_text(),
                String::from_utf8_lossy(&why.stderr)
            );
        }
    }

    /// Runs a shell script and returns its output.
    pub async fn sh(&self, id: &EnvironmentId, script: &str) -> ExecOutput {
        self.rt.exec(id, ExecRequest::shell(script)).await.expect("exec")
    }

    /// Runs a shell script that must succeed; returns its stdout.
    pub async fn sh_ok(&self, id: &EnvironmentId, script: &str) -> String {
        let out = self.sh(id, script).await;
        assert_eq!(
            out.exit_code,
            Some(0),
            "script {script:?} failed: stdout {:?} stderr {:?}",
            out.stdout_text(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout_text()
    }

    /// Destroys every environment of this harness and checks that nothing of this label is left.
    pub async fn teardown(mut self) {
        for st in self.rt.list().await.expect("list") {
            let r = self.rt.destroy(&st.id).await.expect("destroy");
            assert!(r.verified);
        }
        assert_no_leaks(&self.label, &self.state_dir).await;
        self.torn_down = true;
    }
}

impl Drop for Harness {
    /// A test that failed before `teardown` must not leave environments running on the machine.
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(e) = self.rt.destroy_all_blocking() {
                eprintln!("harness cleanup of {}: {e}", self.label);
            }
        }
    }
}

/// Waits on a terminal until its output contains `needle`; returns everything read.
pub async fn expect_output(term: &mut Terminal, needle: &str, within: Duration) -> String {
    match try_expect(term, needle, within).await {
        Some(seen) => seen,
        None => panic!("no {needle:?} within {within:?}"),
    }
}

/// Like `expect_output`, but `None` when the needle does not come in time (the terminal stays usable: reads are
/// cancel-safe).
pub async fn try_expect(term: &mut Terminal, needle: &str, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        if String::from_utf8_lossy(&seen).contains(needle) {
            return Some(String::from_utf8_lossy(&seen).into_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, term.output.next()).await {
            Ok(Ok(Some(TerminalEvent::Output(b)))) => seen.extend_from_slice(&b),
            Ok(Ok(Some(TerminalEvent::Notice(m)))) => seen.extend_from_slice(format!("\n[notice] {m}\n").as_bytes()),
            Ok(Ok(other)) => {
                panic!("terminal ended ({other:?}) before {needle:?}; saw {:?}", String::from_utf8_lossy(&seen))
            }
            Ok(Err(e)) => panic!("terminal error {e} before {needle:?}"),
            Err(_) => {
                eprintln!("no {needle:?} within {within:?}; saw {:?}", String::from_utf8_lossy(&seen));
                return None;
            }
        }
    }
}

/// Sends a line to a terminal.
pub async fn type_line(term: &mut Terminal, line: &str) {
    term.input.write(format!("{line}\n").as_bytes()).await.expect("type");
}

/// Everything of `label` that should be gone after its environments are destroyed, as descriptions.
pub fn leaks(label: &str, state_dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let marker = format!("/examroom/{label}/");
    // Processes in this label's cgroups.
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
                if cg.contains(&marker) {
                    left.push(format!("process {pid} in {}", cg.lines().find(|l| l.contains(&marker)).unwrap_or("")));
                }
            }
        }
    }
    // Cgroup directories of this label, in every hierarchy.
    if let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in hier.flatten() {
            let d = h.path().join("examroom").join(label);
            if d.exists() {
                left.push(format!("cgroup {}", d.display()));
            }
        }
    }
    // Mounts that mention the state directory (none should ever be in the host's mount table).
    let sd = state_dir.display().to_string();
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        left.extend(mi.lines().filter(|l| l.contains(&sd)).map(|l| format!("mount {l}")));
    }
    // Files: environment directories of this label.
    if let Ok(envs) = std::fs::read_dir(state_dir.join(label)) {
        left.extend(envs.flatten().map(|e| format!("file {}", e.path().display())));
    }
    // Uid ranges claimed by this label's environments.
    if let Ok(slots) = std::fs::read_dir("/run/examroom/uid-slots") {
        let owner = state_dir.join(label);
        for s in slots.flatten() {
            if std::fs::read(s.path()).is_ok_and(|o| Path::new(std::ffi::OsStr::from_bytes(&o)).starts_with(&owner)) {
                left.push(format!("uid slot {}", s.path().display()));
            }
        }
    }
    left
}

/// Asserts, with bounded retries (up to 10 s), that nothing of `label` is left.
pub async fn assert_no_leaks(label: &str, state_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leaks(label, state_dir);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("leaked after destroy: {left:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
