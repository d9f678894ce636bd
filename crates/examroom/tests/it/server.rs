//! A real examroom server for tests: the HTTP API on an ephemeral port, over a real session service, a real SQLite
//! store in a temporary data directory, and the real sandbox runtime under a unique label. Plus a tiny HTTP client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use std::time::Instant;

use serde_json::{json, Value};

use examroom_api::auth::TokenKeys;
use examroom_api::{ApiConfig, AppState};
use examroom_core::{Role, UserId};
use examroom_exams::Catalog;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{Backends, Runtime};
use examroom_sessions::{Clock, ServiceConfig, SessionService};
use examroom_store::sqlite::SqliteStore;
use examroom_store::Store;

use crate::common::{require_root, shim_program, unique_label};

/// The HS256 secret every test server uses.
pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123";

/// Writes an exam directory `<catalog>/<id>/exam.toml` with the given TOML body (the `id` line is added).
pub fn write_exam(catalog: &Path, id: &str, body: &str) {
    let dir = catalog.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("exam.toml"), format!("id = \"{id}\"\n{body}")).unwrap();
}

/// The exams most tests use: `quick` (5 minutes), `short` (5 s), `broken-base` (a rootfs that does not exist).
pub fn standard_exams(catalog: &Path) {
    let env = "[environment]\nbase = \"host\"\nmemory = \"256M\"\ncpu = \"500m\"\n";
    write_exam(catalog, "quick", &format!("title = \"Quick\"\ndescription = \"q\"\nduration = \"5m\"\n{env}"));
    write_exam(catalog, "short", &format!("title = \"Short\"\ndescription = \"s\"\nduration = \"5s\"\n{env}"));
    write_exam(
        catalog,
        "broken-base",
        "title = \"Broken\"\ndescription = \"b\"\nduration = \"5m\"\n[environment]\nbase = \"rootfs:/nonexistent/rootfs\"\n",
    );
}

/// Knobs for a test server.
#[derive(Clone)]
pub struct Options {
    /// Writes exams into the catalog directory.
    pub exams: fn(&Path),
    /// The service config.
    pub service: ServiceConfig,
    /// Replaces the shim program (fault injection: a shim that never answers).
    pub shim_program: Option<PathBuf>,
    /// The sandbox's create timeout.
    pub create_timeout: Duration,
    /// Connection caps and timeouts, status streams per user.
    pub limits: examroom_api::connections::EdgeLimits,
    /// Serve the ports origin on a listener of its own (`http://{name}.localhost:PORT`).
    pub ports: bool,
    /// Put the data directory (the store and the sandbox's state) on a tmpfs of this many bytes, to fill it.
    pub data_tmpfs: Option<u64>,
    /// The store: a `postgres://` URL (replicas share it), else SQLite in the data directory.
    pub database: Option<String>,
    /// Serve HTTPS.
    pub tls: Option<examroom_api::tls::Tls>,
    /// Run the Docker backend too, on the Engine at this socket (the tests' own: `docker_engine::with_sample_image`).
    pub docker: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            exams: standard_exams,
            service: ServiceConfig::default(),
            shim_program: None,
            create_timeout: Duration::from_secs(30),
            limits: examroom_api::connections::EdgeLimits::default(),
            ports: false,
            data_tmpfs: None,
            database: None,
            tls: None,
            docker: None,
        }
    }
}

/// A running test server.
pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    pub catalog_dir: PathBuf,
    pub label: String,
    pub keys: TokenKeys,
    /// The ports origin's listener, when [`Options::ports`].
    pub ports_addr: Option<std::net::SocketAddr>,
    /// The data directory is a tmpfs of ours (unmounted when the server is dropped).
    data_mounted: bool,
    /// The Docker Engine of the docker backend, when it runs.
    pub docker: Option<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _tmp: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestServer {
        require_root();
        let tmp = tempfile::Builder::new().prefix("er-api-").tempdir_in("/tmp").unwrap();
        let data_dir = tmp.path().join("data");
        let catalog_dir = tmp.path().join("exams");
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::create_dir_all(&catalog_dir).unwrap();
        if let Some(size) = opts.data_tmpfs {
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
                .arg(&data_dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount a tmpfs on {}", data_dir.display());
        }
        (opts.exams)(&catalog_dir);
        let label = unique_label("api");
        let ports_listener = match opts.ports {
            true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let ports_addr = ports_listener.as_ref().map(|l| l.local_addr().unwrap());
        let mut opts = opts;
        opts.service.ports_enabled = opts.ports;
        let mut state = build_state(&data_dir, &catalog_dir, &label, &opts).await;
        if let Some(addr) = ports_addr {
            let mut config = (*state.config).clone();
            let url = format!("http://{{name}}.localhost:{}", addr.port());
            config.ports = Some(examroom_api::ports::PortsConfig::new(&url).unwrap());
            state.config = std::sync::Arc::new(config);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let ports_state = state.clone();
        let (ports_tx, ports_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let ports = async move {
                if let Some(l) = ports_listener {
                    let _ = examroom_api::ports::serve(l, ports_state, async {
                        let _ = ports_rx.await;
                    })
                    .await;
                }
            };
            let main = async move {
                let _ = examroom_api::serve(listener, st, async {
                    let _ = rx.await;
                })
                .await;
                let _ = ports_tx.send(());
            };
            tokio::join!(main, ports);
        });
        TestServer {
            base,
            state,
            data_dir,
            catalog_dir,
            label,
            keys: TokenKeys::from_secret(SECRET),
            ports_addr,
            data_mounted: opts.data_tmpfs.is_some(),
            docker: opts.docker.clone(),
            shutdown: Some(tx),
            server: Some(server),
            _tmp: tmp,
        }
    }

    /// A candidate's token.
    pub fn candidate(&self, user: &str) -> String {
        self.token(user, Role::Candidate, Duration::from_secs(3600))
    }

    /// A proctor's token.
    pub fn proctor(&self, user: &str) -> String {
        self.token(user, Role::Proctor, Duration::from_secs(3600))
    }

    pub fn token(&self, user: &str, role: Role, ttl: Duration) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.keys.mint(&UserId::parse(user).unwrap(), role, ttl, now)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Another runtime on this server's sandbox (the same state directory and label), to act inside environments as
    /// an exam's setup would.
    pub fn runtime(&self) -> SandboxRuntime {
        SandboxRuntime::new(sandbox_config(&self.data_dir, &self.catalog_dir, &self.label, &Options::default()))
            .unwrap()
    }

    /// The sandbox state directory of this server (for leak checks).
    pub fn sandbox_dir(&self) -> PathBuf {
        self.data_dir.join("sandbox")
    }

    /// Stops the HTTP server (environments keep running, as in production).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    /// Stops the server and destroys every environment of its label, then checks nothing is left.
    pub async fn teardown(mut self) {
        self.stop().await;
        // No pool fill may make an environment after the destroy below.
        self.state.svc.stop_pools().await;
        let rt =
            SandboxRuntime::new(sandbox_config(&self.data_dir, &self.catalog_dir, &self.label, &Options::default()))
                .unwrap();
        rt.destroy_all_blocking().unwrap();
        crate::common::assert_no_leaks(&self.label, &self.sandbox_dir()).await;
        if let Some(sock) = &self.docker {
            let left = crate::docker_engine::objects_of(sock, &self.label);
            crate::docker_engine::remove_all(sock, &self.label);
            assert!(left.is_empty(), "Docker objects left by the sessions: {left:?}");
        }
    }

    /// The Docker objects (containers, volumes, networks) of this server's label.
    pub fn docker_objects(&self) -> Vec<String> {
        self.docker.as_ref().map(|sock| crate::docker_engine::objects_of(sock, &self.label)).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failed test must not leave environments behind.
        if let Ok(rt) =
            SandboxRuntime::new(sandbox_config(&self.data_dir, &self.catalog_dir, &self.label, &Options::default()))
        {
            let _ = rt.destroy_all_blocking();
        }
        if let Some(sock) = &self.docker {
            crate::docker_engine::remove_all(sock, &self.label);
        }
        if self.data_mounted {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.data_dir).status();
        }
    }
}

fn sandbox_config(data_dir: &Path, catalog_dir: &Path, label: &str, opts: &Options) -> SandboxConfig {
    let mut c = SandboxConfig::new(data_dir.join("sandbox"), label);
    c.shim_program = opts.shim_program.clone().unwrap_or_else(shim_program);
    c.hidden = vec![data_dir.to_path_buf(), catalog_dir.to_path_buf()];
    c.create_timeout = opts.create_timeout;
    c
}

/// The same wiring as `examroom serve`, on the given directories.
pub async fn build_state(data_dir: &Path, catalog_dir: &Path, label: &str, opts: &Options) -> AppState {
    let catalog = Catalog::load(catalog_dir);
    assert!(catalog.problems().is_empty(), "test exams have problems: {:?}", catalog.problems());
    let store = match &opts.database {
        Some(url) => Store::Postgres(examroom_store::postgres::PgStore::connect(url).await.unwrap()),
        None => Store::Sqlite(SqliteStore::open(&data_dir.join("examroom.db")).await.unwrap()),
    };
    let sandbox = Runtime::Sandbox(SandboxRuntime::new(sandbox_config(data_dir, catalog_dir, label, opts)).unwrap());
    let docker = opts.docker.as_ref().map(|sock| {
        let shim = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/shim/examroom-shim");
        let mut cfg = examroom_runtime::docker::DockerConfig::new(sock, label, shim);
        // The tests' Engine keeps its data on ext4, which cannot bound a writable layer.
        cfg.accept_unbounded_disk = true;
        Runtime::Docker(examroom_runtime::docker::DockerRuntime::new(cfg).expect("the docker backend (make shim)"))
    });
    let runtime = Backends::new(Some(sandbox), docker).unwrap();
    let svc = SessionService::start(store, runtime, catalog, opts.service.clone(), Clock::system()).await.unwrap();
    let config = ApiConfig { limits: opts.limits.clone(), tls: opts.tls.clone(), ..ApiConfig::default() };
    AppState::new(svc, TokenKeys::from_secret(SECRET), config, None)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

/// A small client over reqwest.
pub struct Client {
    pub http: reqwest::Client,
}

impl Default for Client {
    fn default() -> Self {
        Client { http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap() }
    }
}

impl Client {
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, headers, body, text }
    }

    pub async fn get(&self, url: &str, token: &str) -> Answer {
        self.send(self.http.get(url).bearer_auth(token)).await
    }

    pub async fn post(&self, url: &str, token: &str, body: serde_json::Value) -> Answer {
        self.send(self.http.post(url).bearer_auth(token).json(&body)).await
    }
}

/// Polls a session until `pred` holds (bounded), returning the last view.
pub async fn wait_for(
    c: &Client,
    s: &TestServer,
    token: &str,
    id: &str,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let a = c.get(&s.url(&format!("/api/v1/sessions/{id}")), token).await;
        if a.status == 200 && pred(&a.body) {
            return a.body;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("session {id} did not reach the expected state within {within:?}; last: {}", a.text);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The state field of a view.
pub fn state(v: &serde_json::Value) -> &str {
    v["state"].as_str().unwrap_or("")
}

/// The real `examroom serve`, as a child process; killed on drop, and its environments destroyed.
pub struct RealServer {
    pub child: Option<std::process::Child>,
    pub data: PathBuf,
    pub exams: PathBuf,
    pub logs: PathBuf,
    pub label: String,
    pub secret: String,
    pub base: String,
    pub runs: u32,
}

impl RealServer {
    pub fn sandbox_dir(&self) -> PathBuf {
        self.data.join("sandbox")
    }

    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Starts the server on a fresh port and waits for /healthz.
    pub async fn start(&mut self) {
        self.start_with_env(&[]).await
    }

    /// The same, with extra environment variables (`EXAMROOM_*` settings).
    pub async fn start_with_env(&mut self, vars: &[(&str, &str)]) {
        assert!(self.child.is_none());
        self.runs += 1;
        let port = Self::free_port();
        let out = std::fs::File::create(self.logs.join(format!("stdout-{}", self.runs))).unwrap();
        let err = std::fs::File::create(self.logs.join(format!("stderr-{}", self.runs))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_examroom"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--exams")
            .arg(&self.exams)
            .env("EXAMROOM_TOKEN_SECRET", &self.secret)
            .env("EXAMROOM_LABEL", &self.label)
            .env_remove("EXAMROOM_CONFIG")
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start examroom serve");
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the server exited ({st}) at start: {}", self.stderr_tail());
            }
            assert!(Instant::now() < deadline, "no /healthz within 30 s: {}", self.stderr_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's whole stderr (its JSON logs) of the current run.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.join(format!("stderr-{}", self.runs))).unwrap_or_default()
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.logs.join(format!("stderr-{}", self.runs))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut ch) = self.child.take() {
            let _ = ch.kill();
            let _ = ch.wait();
        }
    }

    /// SIGTERM, and wait (bounded) for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid();
        // SAFETY: kill has no memory preconditions; the pid is our child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "the server did not stop within 15 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn token(&self, user: &str, role: Role) -> String {
        let keys = examroom_api::auth::TokenKeys::from_secret(self.secret.as_bytes());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        keys.mint(&UserId::parse(user).unwrap(), role, Duration::from_secs(3600), now)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn destroy_all(&self) {
        if let Ok(rt) = SandboxRuntime::new(SandboxConfig::new(self.sandbox_dir(), &self.label)) {
            if let Err(e) = rt.destroy_all_blocking() {
                eprintln!("cleanup of {}: {e}", self.label);
            }
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
        self.destroy_all();
    }
}

// Session helpers shared by the API tests.

/// The sessions collection.
pub const SESSIONS: &str = "/api/v1/sessions";

pub fn session_path(id: &str) -> String {
    format!("{SESSIONS}/{id}")
}

pub fn sid(v: &Value) -> String {
    v["exam_session_id"].as_str().unwrap_or_else(|| panic!("no exam_session_id in {v}")).to_string()
}

pub fn is_final(v: &Value) -> bool {
    matches!(state(v), "terminated" | "failed")
}

/// POST /api/v1/sessions that must answer 201; returns the view.
pub async fn create(c: &Client, s: &TestServer, token: &str, exam: &str) -> Value {
    let a = c.post(&s.url(SESSIONS), token, json!({ "exam_id": exam })).await;
    assert_eq!(a.status, 201, "create {exam}: {}", a.text);
    a.body
}

/// Waits until the session is in `want`; panics if it ends in another final state first (with the view).
pub async fn wait_state(c: &Client, s: &TestServer, token: &str, id: &str, within: Duration, want: &str) -> Value {
    let v = wait_for(c, s, token, id, within, |v| state(v) == want || is_final(v)).await;
    assert_eq!(state(&v), want, "session {id} ended up {}: {v}", state(&v));
    v
}

pub async fn events(c: &Client, s: &TestServer, token: &str, id: &str) -> Vec<Value> {
    let a = c.get(&s.url(&format!("{}/events", session_path(id))), token).await;
    assert_eq!(a.status, 200, "events: {}", a.text);
    a.body["events"].as_array().unwrap_or_else(|| panic!("no events list: {}", a.text)).clone()
}

pub async fn real_get(c: &Client, srv: &RealServer, token: &str, id: &str) -> Value {
    let a = c.get(&srv.url(&session_path(id)), token).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}
