//! `examroom serve`: the server. It never destroys environments on shutdown: a restarted server finds them again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use examroom_api::auth::TokenKeys;
use examroom_api::connections::{max_connections_for, EdgeLimits};
use examroom_api::{ApiConfig, AppState};
use examroom_exams::Catalog;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{BackendKind, Backends, Runtime};
use examroom_sessions::{Clock, PoolSettings, ServiceConfig, SessionService};
use examroom_store::Store;
use serde::Deserialize;

use crate::capacity::{self, Demand, Fit};
use crate::doctor::{self, Verdict, Wanted};

/// The configuration file read when no `--config` (or `EXAMROOM_CONFIG`) names one, if it exists (the .deb installs
/// it). `--config /dev/null` reads none.
pub const DEFAULT_CONFIG: &str = "/etc/examroom/config.toml";

/// The configuration file to read: the one given, else `default` when it exists, else none.
pub fn config_path(given: Option<&Path>, default: &Path) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| default.is_file().then(|| default.to_path_buf()))
}

/// Settings from `--config FILE` (TOML; [`DEFAULT_CONFIG`] when none is given and it exists); `EXAMROOM_*` variables
/// and flags override them.
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
    /// The share of the host's memory that environments may have (admission), in (0, 1].
    pub memory_share: Option<f64>,
    /// The host's memory as admission sees it (`"1536M"`), instead of `MemTotal` (for tests).
    pub host_memory: Option<String>,
    /// HTTP connections at once (default: the descriptor limit less a reserve for shims and the database).
    pub max_connections: Option<usize>,
    /// HTTP connections at once from one address (default 1000).
    pub max_connections_per_address: Option<usize>,
    /// The most a client may take to send a request's headers, and the keep-alive idle timeout (default "10s").
    pub header_read_timeout: Option<String>,
    /// A connection that moves no byte for this long is closed (default "60s").
    pub idle_timeout: Option<String>,
    /// Status streams one user may hold open (default 8).
    pub max_streams_per_user: Option<usize>,
    /// Sessions one candidate may start per minute (default 10; 0: no limit).
    pub max_creates_per_minute: Option<u32>,
    /// Pooled environments for all exams together (default: half of max_live_sessions; 0 turns pools off).
    pub pool_max: Option<usize>,
    /// Pooled environments made at once, at most (default 2).
    pub pool_fill_concurrency: Option<usize>,
    /// Filling for announced candidates begins at least this long before their start (default "15m").
    pub pool_lead: Option<String>,
    /// Environments being made at once; more wait their turn (default: twice the CPUs).
    pub concurrent_creates: Option<usize>,
    /// Whether exams may use `profile = "system"` (systemd inside, `CAP_SYS_ADMIN` in the environment's own user
    /// namespace; default true). See docs/SECURITY.md for what it opens.
    pub system_profile: Option<bool>,
    /// Where the ports origin listens (what candidates serve inside, for their own browser); unset: no ports.
    pub ports_listen: Option<SocketAddr>,
    /// The URL of a port's host, with `{name}` as the first label (default `http://{name}.localhost:PORT` with the
    /// ports listener's port). Never a subdomain of examroom's own host: see docs/SECURITY.md.
    pub ports_url: Option<String>,
    /// The store: `postgres://…` (PostgreSQL) or a file path (SQLite); default SQLite in the data directory.
    pub database: Option<String>,
    /// HTTPS: the certificate chain (PEM); with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the private key (PEM); with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The backends this server runs, comma-separated: `sandbox` (default), `docker`, or `sandbox,docker`. Exams on
    /// a backend that is not enabled are listed as unavailable, with the reason.
    pub backends: Option<String>,
    /// The Docker Engine's socket (default /var/run/docker.sock).
    pub docker_socket: Option<PathBuf>,
    /// The static shim that Docker environments run as their init (default: `examroom-shim` beside this binary,
    /// else /usr/lib/examroom/examroom-shim).
    pub docker_shim: Option<PathBuf>,
    /// Start Docker environments although the Docker Engine cannot bound their writable layer (overlay2 on a data
    /// root without project quotas): one candidate could then fill the host's disk. Default false: refused.
    pub docker_unbounded_disk: Option<bool>,
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
    pub memory_share: f64,
    pub host_memory: Option<u64>,
    /// Connection caps and timeouts, status streams per user.
    pub limits: EdgeLimits,
    /// Sessions one candidate may start per minute (0: no limit).
    pub max_creates_per_minute: u32,
    /// Pooled environments for all exams together (0: no pools).
    pub pool_max: usize,
    /// Pooled environments made at once, at most.
    pub pool_fill_concurrency: usize,
    /// Filling for announced candidates begins at least this long before their start.
    pub pool_lead: Duration,
    /// Environments being made at once (`None`: the runtime's default).
    pub concurrent_creates: Option<usize>,
    /// Whether `system` environments may be made.
    pub system_profile: bool,
    /// Where the ports origin listens.
    pub ports_listen: Option<SocketAddr>,
    /// The ports origin's URL template (see `FileConfig::ports_url`); resolved at start when only the listener is set.
    pub ports_url: Option<String>,
    /// The store (`--database`): `postgres://…` for PostgreSQL shared by replicas; `None` for SQLite in the data
    /// directory.
    pub database: Option<String>,
    /// HTTPS: the certificate chain and its key (PEM), `--tls-cert`/`--tls-key`; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The backends this server runs (at least one).
    pub backends: Vec<examroom_runtime::BackendKind>,
    /// The Docker Engine's socket.
    pub docker_socket: PathBuf,
    /// The static shim of Docker environments (`None`: found beside this binary or in /usr/lib/examroom).
    pub docker_shim: Option<PathBuf>,
    /// Whether Docker environments may have an unbounded writable layer.
    pub docker_unbounded_disk: bool,
}

impl Settings {
    /// Flags (already merged with `EXAMROOM_*` by clap) over the file over defaults.
    pub fn resolve(
        listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        exams: Option<PathBuf>,
        config: Option<&Path>,
        memory_share: Option<f64>,
    ) -> Result<Settings> {
        let config = config_path(config, Path::new(DEFAULT_CONFIG));
        let file: FileConfig = match config.as_deref() {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("{}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let memory_share =
            capacity::validate_share(memory_share.or(file.memory_share).unwrap_or(capacity::DEFAULT_MEMORY_SHARE))
                .map_err(|e| anyhow::anyhow!("--memory-share: {e}"))?;
        let host_memory = match env("EXAMROOM_HOST_MEMORY").or(file.host_memory) {
            Some(v) => Some(examroom_exams::parse_size(&v).map_err(|e| anyhow::anyhow!("host_memory: {e}"))?),
            None => None,
        };
        let max_live_sessions =
            env("EXAMROOM_MAX_LIVE_SESSIONS").and_then(|v| v.parse().ok()).or(file.max_live_sessions).unwrap_or(200);
        let defaults = EdgeLimits::default();
        let max_connections = match number("EXAMROOM_MAX_CONNECTIONS", 1)?.or(file.max_connections) {
            Some(n) => n,
            None => max_connections_for(descriptor_limit(), max_live_sessions),
        };
        let limits = EdgeLimits {
            max_connections,
            max_connections_per_address: number("EXAMROOM_MAX_CONNECTIONS_PER_ADDRESS", 1)?
                .or(file.max_connections_per_address)
                .unwrap_or(defaults.max_connections_per_address),
            header_read_timeout: duration("EXAMROOM_HEADER_READ_TIMEOUT", file.header_read_timeout.as_deref())?
                .unwrap_or(defaults.header_read_timeout),
            idle_timeout: duration("EXAMROOM_IDLE_TIMEOUT", file.idle_timeout.as_deref())?
                .unwrap_or(defaults.idle_timeout),
            max_streams_per_user: number("EXAMROOM_MAX_STREAMS_PER_USER", 1)?
                .or(file.max_streams_per_user)
                .unwrap_or(defaults.max_streams_per_user),
            retry_after_secs: defaults.retry_after_secs,
        };
        // Status streams send a heartbeat every 2 s; an idle timeout must leave them room.
        if limits.idle_timeout < Duration::from_secs(5) {
            anyhow::bail!(
                "the idle timeout of {} is too short: status streams send a heartbeat every 2 s; use at least \"5s\"",
                examroom_core::format_duration(limits.idle_timeout)
            );
        }
        for (name, n) in [
            ("max_connections", limits.max_connections),
            ("max_connections_per_address", limits.max_connections_per_address),
            ("max_streams_per_user", limits.max_streams_per_user),
        ] {
            if n == 0 {
                anyhow::bail!("{name} = 0 in the config file would refuse everyone; use at least 1");
            }
        }
        let max_creates_per_minute =
            number::<u32>("EXAMROOM_MAX_CREATES_PER_MINUTE", 0)?.or(file.max_creates_per_minute).unwrap_or(10);
        let pool_max = number::<usize>("EXAMROOM_POOL_MAX", 0)?.or(file.pool_max).unwrap_or(max_live_sessions / 2);
        if pool_max > max_live_sessions {
            anyhow::bail!(
                "pool_max = {pool_max} is more than max_live_sessions = {max_live_sessions}: pooled environments count \
                 toward max_live_sessions; use at most {max_live_sessions}"
            );
        }
        let pool_fill_concurrency =
            number::<usize>("EXAMROOM_POOL_FILL_CONCURRENCY", 1)?.or(file.pool_fill_concurrency).unwrap_or(2);
        if pool_fill_concurrency == 0 {
            anyhow::bail!("pool_fill_concurrency = 0 in the config file would never fill a pool; use at least 1");
        }
        let pool_lead =
            duration("EXAMROOM_POOL_LEAD", file.pool_lead.as_deref())?.unwrap_or(Duration::from_secs(15 * 60));
        Ok(Settings {
            listen: listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("/var/lib/examroom")),
            exams: exams.or(file.exams).unwrap_or_else(|| PathBuf::from("exams")),
            public_origin: env("EXAMROOM_PUBLIC_ORIGIN").or(file.public_origin),
            secure_cookies: env("EXAMROOM_SECURE_COOKIES")
                .map(|v| v == "1" || v == "true")
                .or(file.secure_cookies)
                .unwrap_or(false),
            max_live_sessions,
            rs256_public_key: env("EXAMROOM_RS256_PUBLIC_KEY").map(PathBuf::from).or(file.rs256_public_key),
            label: env("EXAMROOM_LABEL").or(file.label).unwrap_or_else(|| "main".into()),
            token_secret: env("EXAMROOM_TOKEN_SECRET"),
            memory_share,
            host_memory,
            limits,
            max_creates_per_minute,
            pool_max,
            pool_fill_concurrency,
            pool_lead,
            concurrent_creates: number::<usize>("EXAMROOM_CONCURRENT_CREATES", 1)?.or(file.concurrent_creates),
            system_profile: switch("EXAMROOM_SYSTEM_PROFILE")?.or(file.system_profile).unwrap_or(true),
            ports_listen: match env("EXAMROOM_PORTS_LISTEN") {
                Some(v) => Some(v.parse().map_err(|e| anyhow::anyhow!("EXAMROOM_PORTS_LISTEN={v:?}: {e}"))?),
                None => file.ports_listen,
            },
            ports_url: env("EXAMROOM_PORTS_URL").or(file.ports_url),
            database: env("EXAMROOM_DATABASE").or(file.database),
            tls_cert: env("EXAMROOM_TLS_CERT").map(PathBuf::from).or(file.tls_cert),
            tls_key: env("EXAMROOM_TLS_KEY").map(PathBuf::from).or(file.tls_key),
            backends: backends(env("EXAMROOM_BACKENDS").or(file.backends).as_deref().unwrap_or("sandbox"))?,
            docker_socket: env("EXAMROOM_DOCKER_SOCKET")
                .map(PathBuf::from)
                .or(file.docker_socket)
                .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock")),
            docker_shim: env("EXAMROOM_DOCKER_SHIM").map(PathBuf::from).or(file.docker_shim),
            docker_unbounded_disk: switch("EXAMROOM_DOCKER_UNBOUNDED_DISK")?
                .or(file.docker_unbounded_disk)
                .unwrap_or(false),
        })
    }
}

/// The backends a server runs, from `sandbox,docker` (each at most once, at least one).
fn backends(list: &str) -> Result<Vec<examroom_runtime::BackendKind>> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind =
            examroom_runtime::BackendKind::parse(name).map_err(|e| anyhow::anyhow!("backends = {list:?}: {e}"))?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    if out.is_empty() {
        anyhow::bail!("backends = {list:?} enables no backend; use sandbox, docker, or sandbox,docker");
    }
    Ok(out)
}

/// A whole number from the environment variable `name`, at least `min`; `None` when it is unset or empty, an error
/// naming the variable when it does not parse.
fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + From<u8>>(name: &str, min: u8) -> Result<Option<T>> {
    let Some(v) = std::env::var(name).ok().filter(|v| !v.is_empty()) else { return Ok(None) };
    match v.trim().parse::<T>() {
        Ok(n) if n >= T::from(min) => Ok(Some(n)),
        _ => anyhow::bail!("{name}={v:?} is not valid; it must be a whole number of at least {min}"),
    }
}

/// An on/off switch from the environment variable `name` (`on`/`off`, `true`/`false`, `1`/`0`, `yes`/`no`); `None`
/// when it is unset or empty.
fn switch(name: &str) -> Result<Option<bool>> {
    let Some(v) = std::env::var(name).ok().filter(|v| !v.is_empty()) else { return Ok(None) };
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Ok(Some(true)),
        "0" | "off" | "false" | "no" => Ok(Some(false)),
        _ => anyhow::bail!("{name}={v:?} is not valid; write on or off"),
    }
}

/// A duration (`"10s"`, `"2m"`) from the environment variable `name`, else from the config file's `file` value.
fn duration(name: &str, file: Option<&str>) -> Result<Option<Duration>> {
    let (what, value) = match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        Some(v) => (name.to_string(), v),
        None => match file {
            Some(v) => {
                (format!("{} in the config file", name.trim_start_matches("EXAMROOM_").to_lowercase()), v.into())
            }
            None => return Ok(None),
        },
    };
    examroom_core::parse_duration(&value)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{what} = {value:?} is not valid: {e}; write a duration such as \"10s\""))
}

/// The soft limit on open descriptors of this process.
fn descriptor_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

/// The Docker backend, as the settings configure it.
#[cfg(feature = "docker")]
pub fn docker_runtime(s: &Settings) -> Result<Runtime> {
    use examroom_runtime::docker::{DockerConfig, DockerRuntime};
    let shim = s.docker_shim.clone().unwrap_or_else(default_shim);
    let mut cfg = DockerConfig::new(&s.docker_socket, &s.label, shim);
    cfg.accept_unbounded_disk = s.docker_unbounded_disk;
    Ok(Runtime::Docker(DockerRuntime::new(cfg).context("start the docker backend")?))
}

/// Where the static container shim is when the settings name none: the package's
/// (/usr/lib/examroom/examroom-shim), else a build's (`make shim`: target/shim/ beside target/debug/).
pub fn default_shim() -> PathBuf {
    let installed = PathBuf::from("/usr/lib/examroom/examroom-shim");
    if installed.exists() {
        return installed;
    }
    let built = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("../shim/examroom-shim")));
    built.filter(|p| p.exists()).unwrap_or(installed)
}

/// The Docker backend, as the settings configure it.
#[cfg(not(feature = "docker"))]
pub fn docker_runtime(_: &Settings) -> Result<Runtime> {
    anyhow::bail!("this examroom was built without the docker backend (Cargo feature `docker`)")
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
    let fit = prepare_host(&wanted(s, &catalog), &data_dir)?;
    let store = open_store(s.database.as_deref(), &data_dir).await?;
    let mut rcfg = SandboxConfig::new(data_dir.join("sandbox"), &s.label);
    rcfg.hidden = vec![data_dir.clone(), exams_dir.canonicalize().unwrap_or(exams_dir.clone())];
    rcfg.create_timeout = Duration::from_secs(55);
    if let Some(n) = s.concurrent_creates {
        rcfg.concurrent_creates = n;
    }
    rcfg.allow_system_profile = s.system_profile;
    if !s.system_profile {
        for exam in catalog.exams().filter(|e| e.environment.profile == examroom_exams::PROFILE_SYSTEM) {
            tracing::warn!(
                exam = %exam.id,
                "this exam uses profile = \"system\", which this server's operator turned off \
                 (EXAMROOM_SYSTEM_PROFILE / system_profile); its sessions will fail to start with that reason"
            );
        }
    }
    let sandbox = match s.backends.contains(&BackendKind::Sandbox) {
        true => Some(Runtime::Sandbox(SandboxRuntime::new(rcfg).context("start the sandbox runtime")?)),
        false => None,
    };
    let docker = match s.backends.contains(&BackendKind::Docker) {
        true => Some(docker_runtime(s)?),
        false => None,
    };
    let runtime = Backends::new(sandbox, docker)?;
    tracing::info!(backends = %runtime.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","), "backends");
    let metrics = match examroom_api::telemetry::install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "no metrics recorder; /metrics answers 404");
            None
        }
    };
    let config = ServiceConfig {
        max_live_sessions: fit.max_live_sessions,
        memory_budget: Some(fit.memory_budget),
        max_creates_per_minute: s.max_creates_per_minute,
        pool: PoolSettings {
            owner: s.label.clone(),
            max_environments: s.pool_max.min(fit.max_live_sessions),
            fill_concurrency: s.pool_fill_concurrency,
            lead: s.pool_lead,
            ..PoolSettings::default()
        },
        ports_enabled: s.ports_url.is_some(),
        ..ServiceConfig::default()
    };
    let ports = match &s.ports_url {
        Some(url) => Some(examroom_api::ports::PortsConfig::new(url).map_err(|e| anyhow::anyhow!("ports_url: {e}"))?),
        None => None,
    };
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => Some(examroom_api::tls::Tls::load(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both, or neither"),
    };
    let svc = SessionService::start(store, runtime, catalog, config, Clock::system())
        .await
        .map_err(|e| anyhow::anyhow!("start the session service: {e}"))?;
    let keys = TokenKeys::load(&data_dir, s.token_secret.as_deref(), s.rs256_public_key.as_deref())
        .map_err(|e| anyhow::anyhow!("token keys: {e}"))?;
    Ok(AppState::new(
        svc,
        keys,
        ApiConfig {
            public_origin: s.public_origin.clone(),
            // Served over TLS: the cookie is `Secure`.
            secure_cookies: s.secure_cookies || tls.is_some(),
            limits: s.limits.clone(),
            ports,
            tls,
        },
        metrics,
    ))
}

/// The store: `database` (`--database`), else SQLite in the data directory.
pub async fn open_store(database: Option<&str>, data_dir: &Path) -> Result<Store> {
    let url = match database {
        Some(db) => examroom_store::DatabaseUrl::parse(db).map_err(|e| anyhow::anyhow!("--database: {e}"))?,
        None => examroom_store::DatabaseUrl::Sqlite(data_dir.join("examroom.db")),
    };
    tracing::info!(database = %url.describe(), "store");
    Store::open(&url).await.with_context(|| format!("open the store ({})", url.describe()))
}

/// What the configuration and the catalog ask of the host.
pub fn wanted(s: &Settings, catalog: &Catalog) -> Wanted {
    use examroom_exams::definition::{DEFAULT_MEMORY_BYTES, DEFAULT_PIDS};
    let envs = || catalog.exams().map(|e| &e.environment);
    Wanted {
        demand: Demand {
            memory_share: s.memory_share,
            host_memory: s.host_memory,
            max_live_sessions: s.max_live_sessions,
            max_exam_pids: envs().map(|e| e.pids).max().unwrap_or(DEFAULT_PIDS),
            min_exam_memory: envs().map(|e| e.memory_bytes).min().unwrap_or(DEFAULT_MEMORY_BYTES),
        },
        largest_exam: catalog
            .exams()
            .max_by_key(|e| e.environment.memory_bytes)
            .map(|e| (e.id.to_string(), e.environment.memory_bytes)),
    }
}

/// Makes the host fit what `serve` may admit: raises `fs.file-max`, `kernel.pid_max` and `kernel.threads-max` where
/// they are too small and this process may (never lowering one), else admits only what fits (see `capacity`). Then
/// runs the doctor's checks, logs them, and refuses to start on a fatal one. Returns what to admit.
fn prepare_host(w: &Wanted, data_dir: &Path) -> Result<Fit> {
    let mut host = capacity::read_host().context("read the host's memory and kernel tables")?;
    let sizing = capacity::size(&host, &w.demand);
    for sf in capacity::shortfalls(&host, &sizing) {
        if !capacity::writable(sf.table) {
            continue;
        }
        match capacity::raise(sf.table, sf.target()) {
            Ok(now) => {
                tracing::info!(
                    sysctl = sf.table.name(),
                    from = sf.current,
                    to = now,
                    needed = sf.needed,
                    "raised a kernel table for the environments admission allows"
                );
                sf.table.set(&mut host, now.max(sf.current));
            }
            Err(e) => tracing::warn!(sysctl = sf.table.name(), error = %e, "could not raise a kernel table"),
        }
    }
    let fit = capacity::fit(&host, &w.demand, &sizing);
    if fit.degraded() {
        let fix: Vec<String> = fit.limited_by.iter().map(|sf| sf.command()).collect();
        tracing::warn!(memory_budget_bytes = fit.memory_budget, configured_memory_budget_bytes = sizing.memory_budget,
            max_live_sessions = fit.max_live_sessions, configured_max_live_sessions = w.demand.max_live_sessions,
            fix = %fix.join("; "), "degraded: the kernel's tables are too small for the configuration, so only what \
            fits them is admitted; run the fix as root to lift this");
    }
    tracing::info!(
        memory_budget_bytes = fit.memory_budget,
        host_memory_bytes = sizing.host_memory,
        memory_share = w.demand.memory_share,
        max_live_sessions = fit.max_live_sessions,
        "admission"
    );
    let mut readings = doctor::read(data_dir);
    readings.host = Ok(host);
    let checks = doctor::checks(&readings, w);
    for c in &checks {
        let fix = c.fix.as_deref().unwrap_or("");
        match c.verdict {
            Verdict::Ok => tracing::info!(check = c.name, summary = %c.summary, "doctor: ok"),
            Verdict::Warn => tracing::warn!(check = c.name, summary = %c.summary, fix, "doctor: warn"),
            Verdict::Fail => tracing::error!(check = c.name, summary = %c.summary, fix, "doctor: fail"),
        }
    }
    let fatal: Vec<String> = checks
        .iter()
        .filter(|c| c.fatal && c.verdict == Verdict::Fail)
        .map(|c| format!("{}: {} (fix: {})", c.name, c.summary, c.fix.as_deref().unwrap_or("-")))
        .collect();
    if !fatal.is_empty() {
        anyhow::bail!("this host cannot run environments:\n  {}", fatal.join("\n  "));
    }
    Ok(fit)
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

pub async fn run(mut s: Settings) -> Result<()> {
    init_logs();
    // The ports origin first: its URL names the port it listens on.
    let ports_listener = match s.ports_listen {
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at).await.with_context(|| format!("listen on {at} (ports)"))?;
            let port = l.local_addr()?.port();
            s.ports_url.get_or_insert_with(|| format!("http://{{name}}.localhost:{port}"));
            Some(l)
        }
        None if s.ports_url.is_some() => anyhow::bail!("ports_url is set but ports_listen is not: set both"),
        None => None,
    };
    let state = build(&s).await?;
    // The catalog reloads on SIGHUP and when its directory changes; live sessions keep their versions.
    crate::catalog_reload::spawn(state.svc.clone(), absolute(&s.exams)?);
    let listener = tokio::net::TcpListener::bind(s.listen).await.with_context(|| format!("listen on {}", s.listen))?;
    let addr = listener.local_addr()?;
    let nofile = descriptor_limit();
    let budget = max_connections_for(nofile, s.max_live_sessions);
    if s.limits.max_connections > budget {
        tracing::warn!(
            nofile,
            max_connections = s.limits.max_connections,
            max_live_sessions = s.max_live_sessions,
            "max_connections leaves too few descriptors for shims and the database; raise the descriptor limit \
             (LimitNOFILE in the service) or lower max_connections"
        );
    }
    tracing::info!(%addr, max_connections = s.limits.max_connections,
        max_connections_per_address = s.limits.max_connections_per_address,
        header_read_timeout_s = s.limits.header_read_timeout.as_secs_f64(),
        idle_timeout_s = s.limits.idle_timeout.as_secs_f64(), max_streams_per_user = s.limits.max_streams_per_user,
        max_creates_per_minute = s.max_creates_per_minute, pool_max = s.pool_max,
        pool_fill_concurrency = s.pool_fill_concurrency, nofile, "listening");
    let scheme = if s.tls_cert.is_some() { "https" } else { "http" };
    println!("examroom listening on {scheme}://{addr}");
    if let Some(l) = ports_listener {
        let url = s.ports_url.clone().unwrap_or_default();
        tracing::info!(addr = %l.local_addr()?, %url, "serving ports");
        println!("examroom serving candidates' ports at {url}");
        let st = state.clone();
        tokio::spawn(async move {
            if let Err(e) = examroom_api::ports::serve(l, st, shutdown_signal()).await {
                tracing::error!(error = %e, "the ports origin stopped");
            }
        });
    }
    examroom_api::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_file_is_read_only_when_none_is_given_and_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("config.toml");
        let given = dir.path().join("other.toml");
        assert_eq!(config_path(None, &default), None, "no default file: no config");
        std::fs::write(&default, "label = \"x\"\n").unwrap();
        assert_eq!(config_path(None, &default), Some(default.clone()));
        assert_eq!(config_path(Some(&given), &default), Some(given), "--config wins over the default");
        std::fs::create_dir(dir.path().join("adir")).unwrap();
        assert_eq!(config_path(None, &dir.path().join("adir")), None, "a directory is not a config file");
    }

    #[test]
    fn flags_override_the_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/examroom\"\nlabel = \"east\"\n")
            .unwrap();
        let s =
            Settings::resolve(Some("127.0.0.1:7000".parse().unwrap()), None, None, Some(file.path()), None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap(), "the flag");
        assert_eq!(s.data_dir, PathBuf::from("/srv/examroom"), "the file");
    }
}

#[cfg(test)]
mod packaged_config {
    use super::*;

    const PACKAGED: &str = include_str!("../../../dist/config.toml");

    #[test]
    fn the_packaged_config_sets_the_package_paths() {
        let file: FileConfig = toml::from_str(PACKAGED).unwrap();
        assert_eq!(file.data_dir, Some(PathBuf::from("/var/lib/examroom")));
        assert_eq!(file.exams, Some(PathBuf::from("/usr/share/examroom/exams")));
        assert_eq!(file.listen, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
    }

    #[test]
    fn every_commented_setting_of_the_packaged_config_is_a_valid_key() {
        let uncommented: String = PACKAGED
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) && rest.contains(" = ") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let keys = uncommented.lines().filter(|l| l.contains(" = ") && !l.starts_with('#')).count();
        assert!(keys >= 20, "{keys} settings: {uncommented}");
        let file: FileConfig = toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(file.pool_lead.as_deref(), Some("15m"));
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), &uncommented).unwrap();
        Settings::resolve(None, None, None, Some(path.path()), None).expect("every commented value is accepted");
    }
}
