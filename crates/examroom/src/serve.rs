//! `examroom serve`: the server. It never destroys environments on shutdown: a restarted server finds them again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use examroom_api::auth::TokenKeys;
use examroom_api::{ApiConfig, AppState};
use examroom_exams::Catalog;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::Runtime;
use examroom_sessions::{Clock, ServiceConfig, SessionService};
use examroom_store::sqlite::SqliteStore;
use examroom_store::Store;
use serde::Deserialize;

/// Settings from `--config FILE` (TOML); `EXAMROOM_*` variables and flags override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub exams: Option<PathBuf>,
    pub public_origin: Option<String>,
    pub secure_cookies: Option<bool>,
    pub max_live_sessions: Option<usize>,
    pub rs256_public_key: Option<PathBuf>,
    pub label: Option<String>,
}

/// What `serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub exams: PathBuf,
    pub public_origin: Option<String>,
    pub secure_cookies: bool,
    pub max_live_sessions: usize,
    pub rs256_public_key: Option<PathBuf>,
    pub label: String,
    pub token_secret: Option<String>,
}

impl Settings {
    /// Flags (already merged with `EXAMROOM_*` by clap) over the file over defaults.
    pub fn resolve(
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        exams: Option<PathBuf>,
        config: Option<&Path>,
    ) -> Result<Settings> {
        let file: FileConfig = match config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("{}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Settings {
            listen: listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("/var/lib/examroom")),
            exams: exams.or(file.exams).unwrap_or_else(|| PathBuf::from("exams")),
            public_origin: env("EXAMROOM_PUBLIC_ORIGIN").or(file.public_origin),
            secure_cookies: env("EXAMROOM_SECURE_COOKIES")
                .map(|v| v == "1" || v == "true")
                .or(file.secure_cookies)
                .unwrap_or(false),
            max_live_sessions: env("EXAMROOM_MAX_LIVE_SESSIONS")
                .and_then(|v| v.parse().ok())
                .or(file.max_live_sessions)
                .unwrap_or(200),
            rs256_public_key: env("EXAMROOM_RS256_PUBLIC_KEY").map(PathBuf::from).or(file.rs256_public_key),
            label: env("EXAMROOM_LABEL").or(file.label).unwrap_or_else(|| "main".into()),
            token_secret: env("EXAMROOM_TOKEN_SECRET"),
        })
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

/// Installs JSON logs on stderr (once).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXAMROOM_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Builds everything `serve` needs and returns the app state (used by `serve` and by `bench sessions`).
pub async fn build(s: &Settings) -> Result<AppState> {
    let data_dir = absolute(&s.data_dir)?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let exams_dir = absolute(&s.exams)?;
    let catalog = Catalog::load(&exams_dir);
    for p in catalog.problems() {
        tracing::warn!(problem = %p, "exam skipped");
    }
    tracing::info!(exams = catalog.exams().count(), dir = %exams_dir.display(), "catalog loaded");
    let store = Store::Sqlite(SqliteStore::open(&data_dir.join("examroom.db")).await.context("open the store")?);
    let mut rcfg = SandboxConfig::new(data_dir.join("sandbox"), &s.label);
    rcfg.hidden = vec![data_dir.clone(), exams_dir.canonicalize().unwrap_or(exams_dir.clone())];
    rcfg.create_timeout = Duration::from_secs(55);
    let runtime = Runtime::Sandbox(SandboxRuntime::new(rcfg).context("start the sandbox runtime")?);
    let metrics = match examroom_api::telemetry::install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "no metrics recorder; /metrics answers 404");
            None
        }
    };
    let config = ServiceConfig { max_live_sessions: s.max_live_sessions, ..ServiceConfig::default() };
    let svc = SessionService::start(store, runtime, catalog, config, Clock::system())
        .await
        .map_err(|e| anyhow::anyhow!("start the session service: {e}"))?;
    let keys = TokenKeys::load(&data_dir, s.token_secret.as_deref(), s.rs256_public_key.as_deref())
        .map_err(|e| anyhow::anyhow!("token keys: {e}"))?;
    Ok(AppState::new(
        svc,
        keys,
        ApiConfig { public_origin: s.public_origin.clone(), secure_cookies: s.secure_cookies },
        metrics,
    ))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down; environments keep running");
}

pub async fn run(s: Settings) -> Result<()> {
    init_logs();
    let state = build(&s).await?;
    let listener = tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("listen on {}", s.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    println!("examroom listening on http://{addr}");
    examroom_api::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}
