//! A throwaway PostgreSQL cluster for tests (Cargo feature `test-cluster`): Debian's `postgresql` binaries, `initdb`
//! and `pg_ctl` in a temporary directory, listening only on a unix socket in that directory, with trust
//! authentication for the socket's users. `initdb` refuses to run as root, so as root the cluster runs as the
//! `postgres` user (which the `postgresql` package creates).
//!
//! One cluster per test process ([`cluster`]), and a fresh database per test ([`TestCluster::fresh_database`]). A
//! watchdog process (a shell loop in its own process group) stops the cluster and removes its directory once the test
//! process is gone, however it ended.
//!
//! The binaries are looked up in `$EXAMROOM_PG_BIN`, then in `/usr/lib/postgresql/<newest>/bin`, then on `PATH`.
//!
//! Test support: a failure panics, failing the test that asked.

#![allow(clippy::panic, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use sqlx::Connection;

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TestCluster {
    /// The cluster's directory: `data/` (the cluster), `log`, and the socket.
    dir: PathBuf,
    next: AtomicU32,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();

/// This test process's cluster, started on first use. Panics (failing the test) when PostgreSQL cannot be started:
/// install it with `scripts/install-deps.sh`.
pub fn cluster() -> &'static TestCluster {
    match CLUSTER.get_or_init(TestCluster::start) {
        Ok(c) => c,
        Err(e) => panic!("starting a throwaway PostgreSQL: {e} (scripts/install-deps.sh installs postgresql)"),
    }
}

/// The user a non-root caller runs the cluster as (itself), or `postgres` as root: (uid, gid, name).
fn cluster_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            let uid = f[2].parse().map_err(|_| "/etc/passwd: bad uid of postgres".to_owned())?;
            let gid = f[3].parse().map_err(|_| "/etc/passwd: bad gid of postgres".to_owned())?;
            return Ok(Some((uid, gid)));
        }
    }
    Err("running as root and there is no `postgres` user to run the cluster as".to_owned())
}

/// The directory with `initdb`, `pg_ctl` and `postgres`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("EXAMROOM_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists());
    on_path.ok_or_else(|| "initdb and pg_ctl not found (no /usr/lib/postgresql/*/bin)".to_owned())
}

impl TestCluster {
    fn start() -> Result<TestCluster, String> {
        let bin = bin_dir()?;
        let user = cluster_user()?;
        let dir = tempfile::Builder::new()
            .prefix("examroom-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temporary directory: {e}"))?
            .keep();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let command = |program: &str| {
            let mut c = Command::new(bin.join(program));
            c.current_dir(&dir).stdin(Stdio::null());
            if let Some((uid, gid)) = user {
                c.uid(uid).gid(gid).env("HOME", &dir);
            }
            c
        };
        let data = dir.join("data");
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        // The watchdog first: whatever happens next, the cluster goes when this process does.
        spawn_watchdog(&bin, &dir, &data, user)?;
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=400 -c shared_buffers=32MB",
            dir.display()
        );
        let out = command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .output()
            .map_err(|e| format!("running pg_ctl: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("pg_ctl start failed: {}\n{log}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(TestCluster { dir, next: AtomicU32::new(0) })
    }

    /// The directory of the cluster's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@localhost/{db}?host={}", self.dir.display())
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut conn =
            sqlx::PgConnection::connect(&self.url("postgres")).await.expect("connecting to the test cluster");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("CREATE DATABASE");
        let _ = conn.close().await;
        self.url(&name)
    }

    /// Cuts every connection that listens for change notifications on the database at `url` (as a network failure
    /// would); returns how many were cut.
    pub async fn cut_listeners(&self, url: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connecting to the test cluster");
        let cut: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%') t",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_terminate_backend");
        let _ = conn.close().await;
        cut
    }

    /// Stops the cluster now, as a crash would (`pg_ctl stop -m immediate`), and does not restart it.
    pub fn crash(&self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Runs `pg_ctl -D data <args>` as the cluster's user.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let bin = bin_dir()?;
        let mut c = Command::new(bin.join("pg_ctl"));
        c.current_dir(&self.dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
        if let Some((uid, gid)) = cluster_user()? {
            c.uid(uid).gid(gid);
        }
        let status = c.arg("-D").arg(self.dir.join("data")).args(args).status().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("pg_ctl {args:?}: {status}"))
        }
    }
}

/// A shell loop, in its own process group, that waits for this process to end, then stops the cluster and removes
/// its directory. It is never waited for: it outlives this process on purpose.
#[allow(clippy::zombie_processes)]
fn spawn_watchdog(bin: &Path, dir: &Path, data: &Path, user: Option<(u32, u32)>) -> Result<(), String> {
    let script = r#"while [ -d "/proc/$1" ]; do sleep 0.5; done; "$2/pg_ctl" -D "$3" stop -m immediate >/dev/null 2>&1; rm -rf "$4""#;
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(bin)
        .arg(data)
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c.spawn().map_err(|e| format!("starting the cluster's watchdog: {e}"))?;
    Ok(())
}
