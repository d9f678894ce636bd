//! `examroom backup`: a consistent copy of the store while the server runs.
//!
//! SQLite: `VACUUM INTO` a new file (mode 0600), checked with `PRAGMA integrity_check` before it is reported. To
//! restore, stop the server and put the copy in place of `<data>/examroom.db` (removing `examroom.db-wal` and
//! `-shm`). PostgreSQL: `pg_dump`, as docs/DEPLOY.md shows; this command prints the line to run and does nothing else
//! (a dump needs the client of the server's major version, which examroom does not bundle).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use examroom_store::sqlite::SqliteStore;
use examroom_store::DatabaseUrl;

/// Backs up the store of the server with `data_dir` (or `database`) into `out`.
pub async fn run(data_dir: &Path, database: Option<&str>, out: &Path) -> Result<()> {
    let url = match database {
        Some(db) => DatabaseUrl::parse(db).map_err(|e| anyhow::anyhow!("--database: {e}"))?,
        None => DatabaseUrl::Sqlite(data_dir.join("examroom.db")),
    };
    match url {
        DatabaseUrl::Postgres(_) => anyhow::bail!(
            "a PostgreSQL store is backed up with PostgreSQL's own tool: \
             pg_dump --format=custom --file {} \"$EXAMROOM_DATABASE\" (see docs/DEPLOY.md)",
            out.display()
        ),
        DatabaseUrl::Sqlite(path) => {
            if !path.is_file() {
                anyhow::bail!("no store at {} (is --data-dir the server's?)", path.display());
            }
            if out.exists() {
                anyhow::bail!("{} exists; a backup never overwrites a file", out.display());
            }
            let store = SqliteStore::open(&path).await.with_context(|| format!("open {}", path.display()))?;
            let sessions = store.backup_to(out).await.with_context(|| format!("back up into {}", out.display()));
            store.close().await;
            let sessions = sessions?;
            println!("backed up {} into {} ({sessions} sessions; integrity check ok)", path.display(), out.display());
            Ok(())
        }
    }
}

/// The default file of a backup: `examroom-<unix seconds>.db` in the current directory.
pub fn default_out() -> PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    PathBuf::from(format!("examroom-{now}.db"))
}
