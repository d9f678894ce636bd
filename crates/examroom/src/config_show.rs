//! `examroom config show`: the configuration `serve` would run with, and where each value comes from (a flag, an
//! `EXAMROOM_*` variable, the configuration file, or the default). Secrets are masked: the token secret is never
//! printed, and its file is never read.
//!
//! The output is TOML that the configuration file accepts (settings not in effect are comments), so an operator may
//! start a file from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Subcommand};

use crate::serve::{self, Settings};

/// What masked secrets print as.
pub const MASK: &str = "********";

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration `serve` would run with, each value with where it comes from; secrets masked.
    Show(ServerFlags),
}

/// The flags `serve` takes (the same names and variables).
#[derive(Args)]
pub struct ServerFlags {
    /// Address to listen on.
    #[arg(long, env = "EXAMROOM_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory (the store, the token secret, environment state).
    #[arg(long, env = "EXAMROOM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The exam catalog: one directory per exam.
    #[arg(long, env = "EXAMROOM_EXAMS")]
    pub exams: Option<PathBuf>,
    /// A TOML file with the same settings (default: /etc/examroom/config.toml when it exists).
    #[arg(long, env = "EXAMROOM_CONFIG")]
    pub config: Option<PathBuf>,
    /// The share of the host's memory that environments may have.
    #[arg(long, env = "EXAMROOM_MEMORY_SHARE")]
    pub memory_share: Option<f64>,
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(String),
    File(PathBuf),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag --{}", name.replace('_', "-")),
            Source::Env(name) => write!(f, "{name}"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Default => write!(f, "default"),
        }
    }
}

/// Reads an environment variable: its value when set and non-empty.
pub type EnvReader = Box<dyn Fn(&str) -> Option<String>>;

/// What decides each value's source: the flags given on the command line, the variables set, the file's keys.
pub struct Provenance {
    /// The flags (by their setting's name) given on the command line, not through a variable.
    pub flags: Vec<&'static str>,
    /// Reads an environment variable (set and non-empty).
    pub env: EnvReader,
    /// The configuration file read, and the keys it sets.
    pub file: Option<(PathBuf, toml::Table)>,
}

impl Provenance {
    fn source(&self, key: &'static str) -> Source {
        if self.flags.contains(&key) {
            return Source::Flag(key);
        }
        let var = format!("EXAMROOM_{}", key.to_ascii_uppercase());
        if (self.env)(&var).is_some() {
            return Source::Env(var);
        }
        match &self.file {
            Some((path, table)) if table.contains_key(key) => Source::File(path.clone()),
            _ => Source::Default,
        }
    }
}

pub fn run(what: ConfigCommand, matches: &ArgMatches) -> Result<()> {
    let ConfigCommand::Show(flags) = what;
    let given = matches.subcommand_matches("config").and_then(|m| m.subcommand_matches("show"));
    let on_command_line = |id: &str| given.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine);
    let settings =
        Settings::resolve(flags.listen, flags.data_dir, flags.exams, flags.config.as_deref(), flags.memory_share)?;
    let file = match serve::config_path(flags.config.as_deref(), Path::new(serve::DEFAULT_CONFIG)) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
            Some((path, table))
        }
        None => None,
    };
    let provenance = Provenance {
        flags: ["listen", "data_dir", "exams", "memory_share"].into_iter().filter(|id| on_command_line(id)).collect(),
        env: Box::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
        file,
    };
    print!("{}", render(&settings, &provenance));
    Ok(())
}

/// A database URL with its password (if any) masked.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{MASK}@{host}"),
        None => url.to_string(),
    }
}

fn string(s: impl Into<String>) -> String {
    toml::Value::String(s.into()).to_string()
}

fn path(p: &Path) -> String {
    string(p.display().to_string())
}

fn duration(d: std::time::Duration) -> String {
    string(examroom_core::format_duration(d))
}

/// The effective configuration as TOML, each line with its source; secrets masked.
pub fn render(s: &Settings, p: &Provenance) -> String {
    let mut out = String::from(
        "# The configuration `examroom serve` would run with here; each value says where it comes from.\n",
    );
    match &p.file {
        Some((path, _)) => out.push_str(&format!("# Configuration file: {}\n", path.display())),
        None => out.push_str(&format!("# Configuration file: none ({} does not exist)\n", serve::DEFAULT_CONFIG)),
    }
    let mut line = |key: &'static str, value: Option<String>, note: &str| {
        let source = p.source(key);
        match value {
            Some(v) => out.push_str(&format!("{key} = {v}  # {source}{note}\n")),
            None => out.push_str(&format!("# {key}: not set{note}\n")),
        }
    };
    line("listen", Some(string(s.listen.to_string())), "");
    line("data_dir", Some(path(&s.data_dir)), "");
    line("exams", Some(path(&s.exams)), "");
    line("public_origin", s.public_origin.clone().map(string), "");
    line("secure_cookies", Some(s.secure_cookies.to_string()), "");
    line("label", Some(string(&s.label)), "");
    line("max_live_sessions", Some(s.max_live_sessions.to_string()), "");
    line("memory_share", Some(s.memory_share.to_string()), "");
    line("host_memory", s.host_memory.map(|b| string(b.to_string())), " (the host's MemTotal is used)");
    line("rs256_public_key", s.rs256_public_key.as_deref().map(path), "");
    let computed = if p.source("max_connections") == Source::Default {
        " (from this process's open-file limit; the service's LimitNOFILE may differ)"
    } else {
        ""
    };
    line("max_connections", Some(s.limits.max_connections.to_string()), computed);
    line("max_connections_per_address", Some(s.limits.max_connections_per_address.to_string()), "");
    line("header_read_timeout", Some(duration(s.limits.header_read_timeout)), "");
    line("idle_timeout", Some(duration(s.limits.idle_timeout)), "");
    line("max_streams_per_user", Some(s.limits.max_streams_per_user.to_string()), "");
    line("max_creates_per_minute", Some(s.max_creates_per_minute.to_string()), "");
    line("pool_max", Some(s.pool_max.to_string()), "");
    line("pool_fill_concurrency", Some(s.pool_fill_concurrency.to_string()), "");
    line("pool_lead", Some(duration(s.pool_lead)), "");
    line("concurrent_creates", s.concurrent_creates.map(|n| n.to_string()), " (twice the CPUs)");
    line("system_profile", Some(s.system_profile.to_string()), "");
    line(
        "ports_listen",
        s.ports_listen.map(|a| string(a.to_string())),
        " (no ports: exams that list ports are unavailable)",
    );
    line("ports_url", s.ports_url.clone().map(string), " (http://{name}.localhost:PORT with ports_listen's port)");
    // Unset: SQLite (examroom.db in data_dir); plain HTTP.
    line("database", s.database.as_deref().map(|d| string(mask_password(d))), "");
    line("tls_cert", s.tls_cert.as_deref().map(path), "");
    line("tls_key", s.tls_key.as_deref().map(path), "");
    let backends: Vec<&str> = s.backends.iter().map(|k| k.as_str()).collect();
    line("backends", Some(string(backends.join(","))), "");
    line("docker_socket", Some(path(&s.docker_socket)), "");
    line("docker_shim", s.docker_shim.as_deref().map(path), &format!(" ({})", crate::serve::default_shim().display()));
    line("docker_unbounded_disk", Some(s.docker_unbounded_disk.to_string()), "");
    // The token secret: only from the environment or a file in the data directory, never from the config file
    // (a key the file refuses), and never printed.
    let secret_file = s.data_dir.join(examroom_api::auth::SECRET_FILE);
    match &s.token_secret {
        Some(_) => out.push_str(&format!("# token_secret = \"{MASK}\"  # EXAMROOM_TOKEN_SECRET\n")),
        None if secret_file.exists() => {
            out.push_str(&format!("# token_secret = \"{MASK}\"  # the file {}\n", secret_file.display()))
        }
        None => out.push_str(&format!(
            "# token_secret: not set; `serve` creates {} on its first start\n",
            secret_file.display()
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let dir = std::env::temp_dir().join("examroom-config-show-test-none");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "").unwrap();
        let mut s = Settings::resolve(None, Some(dir), None, Some(file.path()), None).unwrap();
        s.token_secret = None;
        s
    }

    fn no_env() -> EnvReader {
        Box::new(|_| None)
    }

    #[test]
    fn every_value_names_its_source_flag_variable_file_or_default() {
        let table: toml::Table = toml::from_str("label = \"east\"\npool_max = 3\n").unwrap();
        let p = Provenance {
            flags: vec!["listen"],
            env: Box::new(|k| (k == "EXAMROOM_POOL_MAX" || k == "EXAMROOM_LISTEN").then(|| "1".to_string())),
            file: Some((PathBuf::from("/etc/examroom/config.toml"), table)),
        };
        assert_eq!(p.source("listen"), Source::Flag("listen"), "a flag beats its variable");
        assert_eq!(p.source("pool_max"), Source::Env("EXAMROOM_POOL_MAX".into()), "a variable beats the file");
        assert_eq!(p.source("label"), Source::File("/etc/examroom/config.toml".into()));
        assert_eq!(p.source("idle_timeout"), Source::Default);
        let text = render(&settings(), &p);
        assert!(text.contains("listen = \"127.0.0.1:8080\"  # flag --listen\n"), "{text}");
        assert!(text.contains("pool_max = 100  # EXAMROOM_POOL_MAX\n"), "{text}");
        assert!(text.contains("idle_timeout = \"1m\"  # default\n"), "{text}");
        assert!(text.contains("# Configuration file: /etc/examroom/config.toml\n"), "{text}");
    }

    #[test]
    fn the_output_is_toml_the_config_file_accepts() {
        let p = Provenance { flags: vec![], env: no_env(), file: None };
        let text = render(&settings(), &p);
        let parsed: serve::FileConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(parsed.idle_timeout.as_deref(), Some("1m"));
        assert_eq!(parsed.system_profile, Some(true));
        assert!(text.contains("# public_origin: not set\n"), "{text}");
    }

    #[test]
    fn the_database_password_is_masked_and_tls_files_are_shown() {
        let mut s = settings();
        s.database = Some("postgres://examroom:db-s3cret@db.example.org/examroom".into());
        s.tls_cert = Some("/etc/examroom/tls/fullchain.pem".into());
        s.tls_key = Some("/etc/examroom/tls/privkey.pem".into());
        let env: EnvReader = Box::new(|k| (k == "EXAMROOM_DATABASE").then(|| "x".to_string()));
        let text = render(&s, &Provenance { flags: vec![], env, file: None });
        assert!(!text.contains("db-s3cret"), "{text}");
        assert!(
            text.contains(&format!(
                "database = \"postgres://examroom:{MASK}@db.example.org/examroom\"  # EXAMROOM_DATABASE\n"
            )),
            "{text}"
        );
        assert!(text.contains("tls_key = \"/etc/examroom/tls/privkey.pem\"  # default\n"), "{text}");
        assert_eq!(
            mask_password("postgres:///examroom?host=/run/postgresql"),
            "postgres:///examroom?host=/run/postgresql"
        );
        assert_eq!(mask_password("postgres://u@h/db"), "postgres://u@h/db");
        let plain = render(&settings(), &Provenance { flags: vec![], env: no_env(), file: None });
        assert!(plain.contains("# database: not set\n") && plain.contains("# tls_cert: not set\n"), "{plain}");
    }

    #[test]
    fn the_token_secret_is_masked_never_printed() {
        let mut s = settings();
        s.token_secret = Some("an-operator's-secret-0123456789abcdef".into());
        let p = Provenance { flags: vec![], env: no_env(), file: None };
        let text = render(&s, &p);
        assert!(!text.contains("operator's-secret"), "{text}");
        assert!(text.contains(&format!("# token_secret = \"{MASK}\"  # EXAMROOM_TOKEN_SECRET\n")), "{text}");
    }

    #[test]
    fn a_secret_file_is_named_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(examroom_api::auth::SECRET_FILE), "file-secret-do-not-print").unwrap();
        let mut s = settings();
        s.data_dir = dir.path().to_path_buf();
        let text = render(&s, &Provenance { flags: vec![], env: no_env(), file: None });
        assert!(!text.contains("file-secret-do-not-print"), "{text}");
        assert!(text.contains(&format!("{MASK}\"  # the file {}", dir.path().display())), "{text}");
    }
}
