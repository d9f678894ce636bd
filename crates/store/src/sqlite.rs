//! The SQLite backend: [`SqliteStore`].
//!
//! One database file in the data directory, opened in WAL mode with `synchronous=NORMAL`, foreign keys on and a
//! busy timeout of 5 s, behind a small connection pool. The schema lives in `migrations/` and is applied on
//! [`SqliteStore::open`].
//!
//! # How the rules of the crate are kept
//!
//! - **One live session per candidate**: the partial unique index `one_live_session_per_user` on
//!   `sessions(user_id) WHERE state NOT IN ('terminated', 'failed')`. A racing second insert fails inside SQLite
//!   and becomes [`StoreError::LiveSessionExists`].
//! - **A transition is a compare-and-swap**: `UPDATE … WHERE id = ? AND state = <from>`, in the same
//!   transaction as the event it appends. Zero rows updated means another change won
//!   ([`StoreError::StateConflict`]) or the session does not exist ([`StoreError::NotFound`]).
//! - **Not yours is not found**: [`SessionStore::get_owned`] is one query keyed by `(id, user_id)`.
//! - **The audit trail is append-only**: triggers abort any `UPDATE` or `DELETE` on `events`.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`: it takes SQLite's write lock up front (waiting up to
//! the busy timeout), so two writers never both hold a read snapshot and then fail to upgrade it with
//! `SQLITE_BUSY`. Before that, every write of this process (transaction or single statement) waits for its turn on
//! an in-process lock (see [`SqliteStore`]), holding no pooled connection meanwhile.
//!
//! # Stored forms
//!
//! Ids and enum values are TEXT in their serde (snake_case) forms; `progress`, `failure` and event `data` are
//! JSON TEXT; times are INTEGER unix milliseconds; `graded` is INTEGER 0/1 or NULL.
//!
//! # Migrations
//!
//! The migration files are embedded with `include_str!` and run by sqlx's [`Migrator`], with the same version,
//! description and checksum that `sqlx::migrate!("./migrations")` would produce (a test checks this). The macro
//! itself is not used because it needs sqlx's `macros` feature, which the workspace does not enable.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod pool;

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use examroom_core::{
    EndReason, EnvironmentId, ExamId, ExamResult, ExamSessionId, Failure, Progress, Role, SessionState, Transition,
    UserId,
};
use sqlx::error::{BoxDynError, ErrorKind};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use crate::{
    AttemptGrant, EventKind, EventRecord, ListFilter, NewEvent, SessionChanges, SessionRecord, SessionStore,
    SignInRecord, StoreError, Workspace,
};

/// A writer's turn in this process (see [`SqliteStore`]).
type WriterTurn = tokio::sync::OwnedMutexGuard<()>;

/// How long a connection waits for another one's lock before it gives up with `database is locked`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool of a file-backed store.
const MAX_CONNECTIONS: u32 = 8;

/// The migrations, in order: (version, description, SQL). Keep in step with the files in `migrations/`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "sessions", include_str!("../migrations/0001_sessions.sql")),
    (2, "results", include_str!("../migrations/0002_results.sql")),
    (3, "attempt grants", include_str!("../migrations/0003_attempt_grants.sql")),
    (4, "sign ins", include_str!("../migrations/0004_sign_ins.sql")),
    (5, "pools", include_str!("../migrations/0005_pools.sql")),
    (6, "exam versions", include_str!("../migrations/0006_exam_versions.sql")),
    (7, "workspaces", include_str!("../migrations/0007_workspaces.sql")),
];

/// The columns of `sessions`, in the order [`session_from_row`] reads them.
const SESSION_COLUMNS: &str = "id, user_id, exam_id, environment_id, state, progress, created_at, ready_at, \
     started_at, deadline, duration_ms, start_grace_ms, provisioning_timeout_ms, ended_at, end_reason, failure, \
     resources_released_at, graded, updated_at, exam_version";

/// The columns of `events`, in the order [`event_from_row`] reads them.
const EVENT_COLUMNS: &str = "seq, session_id, at, kind, from_state, to_state, reason, actor, data";

/// The "live" condition. It must stay identical to the WHERE clause of the index `one_live_session_per_user`
/// so that SQLite can use that index.
const LIVE: &str = "state NOT IN ('terminated', 'failed')";

/// The actor recorded on events the store writes on its own behalf (progress).
const SYSTEM_ACTOR: &str = "system";

/// Sessions and events in one SQLite database.
///
/// Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One writer at a time in this process. SQLite takes one writer at a time anyway; without this, writers that
    /// find the lock taken wait in SQLite's busy handler, which sleeps in growing steps (up to 100 ms) instead of
    /// waking when the lock frees, so a burst of writes (fifty sessions starting, each recording its steps)
    /// collapsed into seconds of sleeping and "database is locked" after the 5 s busy timeout. Waiting here is a
    /// FIFO queue that wakes at once; reads never wait (WAL).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file (mode 0600) if it is missing, and brings its schema up to
    /// date.
    ///
    /// The connections use WAL, `synchronous=NORMAL`, `foreign_keys=ON` and a busy timeout of 5 s; the pool holds
    /// at most 8 of them. The parent directory must exist.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        create_private_file(path).await?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // No checkpoint inside a commit (it would fsync while this process's writers wait their turn): a
            // background task checkpoints instead (PASSIVE: it never blocks a writer).
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // A connection to a local file does not go stale; a ping before every use is a round trip for nothing.
            .test_before_acquire(false)
            // A connection whose transaction did not end cleanly goes, never back into the pool: when a commit fails
            // because the disk is full, SQLite rolls the transaction back itself, sqlx's own rollback then fails and
            // the connection would still count a transaction, refusing every later one ("non-zero transaction
            // depth") after the disk has room again.
            .after_release(|conn, _| Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) }))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
        let store = SqliteStore { pool, writer: Default::default() };
        store.migrate().await?;
        tokio::spawn(checkpoints(store.pool.clone()));
        Ok(store)
    }

    /// A fresh, empty database in memory, for tests.
    ///
    /// The pool holds exactly one connection that is never closed, so every query sees the same database; it
    /// vanishes when the store is dropped or closed.
    pub async fn open_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("opening an in-memory database: {e}")))?;
        let store = SqliteStore { pool, writer: Default::default() };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection, waiting for those in use to be returned. With WAL, the last connection to close
    /// checkpoints the log into the database file. Later calls on this store (or its clones) fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a consistent copy of the database to `to` (`VACUUM INTO`: an online backup that readers and writers of
    /// the live database never wait for, taken inside one read transaction) with mode 0600, then checks the copy
    /// (`PRAGMA integrity_check`) and returns how many sessions it holds. `to` must not exist.
    pub async fn backup_to(&self, to: &Path) -> Result<i64, StoreError> {
        let to_str = to.to_str().ok_or_else(|| StoreError::Backend(format!("{}: not UTF-8", to.display())))?;
        {
            // Made first, empty and private: VACUUM INTO writes into an existing empty file.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(to).map_err(|e| StoreError::Backend(format!("creating {}: {e}", to.display())))?;
        }
        if let Err(e) = sqlx::query("VACUUM INTO ?1").bind(to_str).execute(&self.pool).await {
            let _ = std::fs::remove_file(to);
            return Err(backend(e));
        }
        let copy = SqliteStore::open(to).await?;
        let check: String =
            sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&copy.pool).await.map_err(backend)?;
        let sessions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(&copy.pool).await.map_err(backend)?;
        copy.close().await;
        if check != "ok" {
            return Err(StoreError::Backend(format!("the backup {} fails its integrity check: {check}", to.display())));
        }
        Ok(sessions)
    }

    /// Applies the migrations that have not run yet.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator =
            Migrator::new(EmbeddedMigrations).await.map_err(|e| StoreError::Backend(format!("migrations: {e}")))?;
        migrator.run(&self.pool).await.map_err(|e| StoreError::Backend(format!("migrations: {e}")))
    }

    /// Starts a write transaction that holds SQLite's write lock from the start, and this process's writer turn
    /// (released when the returned guard drops, after the commit).
    async fn begin_write(&self) -> Result<(WriterTurn, Transaction<'static, Sqlite>), StoreError> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        Ok((turn, tx))
    }

    /// This process's writer turn, for a write outside a transaction (one statement).
    async fn writer_turn(&self) -> WriterTurn {
        self.writer.clone().lock_owned().await
    }

    /// The row of `id` after a compare-and-swap updated nothing: `NotFound`, or the state it is really in.
    async fn conflict(
        conn: &mut SqliteConnection,
        id: &ExamSessionId,
        expected: SessionState,
    ) -> Result<StoreError, StoreError> {
        let actual: Option<String> = sqlx::query_scalar("SELECT state FROM sessions WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(match actual {
            None => StoreError::NotFound,
            Some(actual) => StoreError::StateConflict { expected, actual: parse_state(&actual)? },
        })
    }
}

/// Copies the write-ahead log into the database file every [`CHECKPOINT_EVERY`], in the background, until the pool
/// is closed. With `synchronous=NORMAL` a commit writes the log without syncing it; only checkpoints sync, and here
/// they never sit inside a writer's turn.
async fn checkpoints(pool: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint");
        }
    }
}

/// How often the background task checkpoints the write-ahead log.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl SqliteStore {
    /// Stores a session's JSON document (its result, its workspace) in `table`'s `column`, replacing the previous
    /// one. `NotFound` for an unknown session (the foreign key). `table` and `column` are names of ours.
    async fn put_document<T: serde::Serialize>(
        &self,
        table: &'static str,
        column: &'static str,
        id: &ExamSessionId,
        doc: &T,
        at: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(doc).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))?;
        let _turn = self.writer_turn().await;
        let done = sqlx::query(&format!(
            "INSERT INTO {table} (session_id, {column}, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT(session_id) DO UPDATE SET {column} = excluded.{column}, updated_at = excluded.updated_at"
        ))
        .bind(id.to_string())
        .bind(json)
        .bind(at)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("FOREIGN KEY") => Err(StoreError::NotFound),
            Err(e) => Err(backend(e)),
        }
    }

    /// A session's JSON document from `table`'s `column`, if one was stored.
    async fn get_document<T: serde::de::DeserializeOwned>(
        &self,
        table: &'static str,
        column: &'static str,
        id: &ExamSessionId,
    ) -> Result<Option<T>, StoreError> {
        let row: Option<String> = sqlx::query_scalar(&format!("SELECT {column} FROM {table} WHERE session_id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Backend(format!("decoding {table}: {e}"))))
            .transpose()
    }
}

impl SessionStore for SqliteStore {
    async fn insert(&self, rec: &SessionRecord, event: &NewEvent) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        if let Err(e) = insert_session(&mut tx, rec, event).await {
            rollback(tx).await;
            return Err(e);
        }
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, id: &ExamSessionId) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|row| session_from_row(&row))
            .transpose()
    }

    async fn get_owned(&self, id: &ExamSessionId, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1 AND user_id = ?2"))
            .bind(id.to_string())
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|row| session_from_row(&row))
            .transpose()
    }

    async fn live_for_user(&self, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        live_for_user_on(&mut conn, user).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<SessionRecord>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"));
        if let Some(user) = &filter.user {
            query.push(" AND user_id = ").push_bind(user.as_str().to_owned());
        }
        if let Some(state) = filter.state {
            query.push(" AND state = ").push_bind(state.as_str());
        }
        if filter.live_only {
            query.push(" AND ").push(LIVE);
        }
        query.push(" ORDER BY created_at DESC, id");
        let rows = query.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn apply(
        &self,
        id: &ExamSessionId,
        t: &Transition,
        changes: &SessionChanges,
        event: &NewEvent,
    ) -> Result<SessionRecord, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let updated = cas_transition(&mut tx, id, t, changes, event.at).await;
        finish_cas(tx, id, t.from, updated, event).await
    }

    async fn apply_chain(
        &self,
        id: &ExamSessionId,
        steps: &[(Transition, SessionChanges, NewEvent)],
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let mut records = Vec::with_capacity(steps.len());
        for (t, changes, event) in steps {
            let rec = match cas_transition(&mut tx, id, t, changes, event.at).await {
                Ok(Some(row)) => session_from_row(&row),
                Ok(None) => Err(match SqliteStore::conflict(&mut tx, id, t.from).await {
                    Ok(why) | Err(why) => why,
                }),
                Err(e) => Err(e),
            };
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    rollback(tx).await;
                    return Err(e);
                }
            };
            if let Err(e) = insert_event(&mut tx, id, event).await {
                rollback(tx).await;
                return Err(e);
            }
            records.push(rec);
        }
        tx.commit().await.map_err(backend)?;
        Ok(records)
    }

    async fn set_progress(
        &self,
        id: &ExamSessionId,
        expected: SessionState,
        progress: &Progress,
        at: i64,
    ) -> Result<SessionRecord, StoreError> {
        let data = serde_json::to_value(progress).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))?;
        let event = NewEvent {
            at,
            kind: EventKind::Progress,
            from: None,
            to: None,
            reason: progress.message.clone(),
            actor: SYSTEM_ACTOR.to_owned(),
            data: Some(data.clone()),
        };
        let (_turn, mut tx) = self.begin_write().await?;
        let updated = sqlx::query(&format!(
            "UPDATE sessions SET progress = ?1, updated_at = ?2 WHERE id = ?3 AND state = ?4 \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(data.to_string())
        .bind(at)
        .bind(id.to_string())
        .bind(expected.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend);
        finish_cas(tx, id, expected, updated, &event).await
    }

    async fn mark_released(&self, id: &ExamSessionId, at: i64, event: &NewEvent) -> Result<SessionRecord, StoreError> {
        let state = SessionState::Failed;
        let (_turn, mut tx) = self.begin_write().await?;
        let updated = sqlx::query(&format!(
            "UPDATE sessions SET resources_released_at = ?1, updated_at = ?1 \
             WHERE id = ?2 AND state = ?3 AND resources_released_at IS NULL RETURNING {SESSION_COLUMNS}"
        ))
        .bind(at)
        .bind(id.to_string())
        .bind(state.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend);
        finish_cas(tx, id, state, updated, event).await
    }

    async fn set_result(&self, id: &ExamSessionId, result: &ExamResult, at: i64) -> Result<(), StoreError> {
        self.put_document("results", "result", id, result, at).await
    }

    async fn result(&self, id: &ExamSessionId) -> Result<Option<ExamResult>, StoreError> {
        self.get_document("results", "result", id).await
    }

    async fn set_workspace(&self, id: &ExamSessionId, workspace: &Workspace, at: i64) -> Result<(), StoreError> {
        self.put_document("workspaces", "workspace", id, workspace, at).await
    }

    async fn workspace(&self, id: &ExamSessionId) -> Result<Option<Workspace>, StoreError> {
        self.get_document("workspaces", "workspace", id).await
    }

    async fn append_event(&self, id: &ExamSessionId, event: &NewEvent) -> Result<(), StoreError> {
        let _turn = self.writer_turn().await;
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_event(&mut conn, id, event).await
    }

    async fn events(&self, id: &ExamSessionId) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ?1 ORDER BY seq"))
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }

    async fn attempts_used(&self, user: &UserId, exam: &ExamId) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions \
             WHERE user_id = ?1 AND exam_id = ?2 AND started_at IS NOT NULL AND state <> 'failed'",
        )
        .bind(user.as_str())
        .bind(exam.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn grant_attempts(&self, grant: &AttemptGrant) -> Result<(), StoreError> {
        let _turn = self.writer_turn().await;
        sqlx::query(
            "INSERT INTO attempt_grants (user_id, exam_id, extra, reason, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(grant.user_id.as_str())
        .bind(grant.exam_id.as_str())
        .bind(i64::from(grant.extra))
        .bind(grant.reason.as_str())
        .bind(grant.actor.as_str())
        .bind(grant.at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn attempt_grants(&self, user: &UserId, exam: &ExamId) -> Result<Vec<AttemptGrant>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, exam_id, extra, reason, actor, at FROM attempt_grants \
             WHERE user_id = ?1 AND exam_id = ?2 ORDER BY seq",
        )
        .bind(user.as_str())
        .bind(exam.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let user_id: String = column(row, "user_id")?;
                let exam_id: String = column(row, "exam_id")?;
                let extra: i64 = column(row, "extra")?;
                Ok(AttemptGrant {
                    user_id: UserId::parse(&user_id).map_err(|e| corrupt("user_id", e))?,
                    exam_id: ExamId::parse(&exam_id).map_err(|e| corrupt("exam_id", e))?,
                    extra: u32::try_from(extra).map_err(|e| corrupt("extra", e))?,
                    reason: column(row, "reason")?,
                    actor: column(row, "actor")?,
                    at: column(row, "at")?,
                })
            })
            .collect()
    }

    async fn insert_sign_in(&self, rec: &SignInRecord) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let done = async {
            sqlx::query("DELETE FROM sign_ins WHERE expires_at <= ?1").bind(rec.created_at).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO sign_ins (id_hash, user_id, role, key_fingerprint, created_at, expires_at, \
                 signed_out_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(rec.id_hash.as_str())
            .bind(rec.user_id.as_str())
            .bind(rec.role.as_str())
            .bind(rec.key_fingerprint.as_str())
            .bind(rec.created_at)
            .bind(rec.expires_at)
            .bind(rec.signed_out_at)
            .execute(&mut *tx)
            .await
        }
        .await;
        match done {
            Ok(_) => tx.commit().await.map_err(backend),
            Err(e) => {
                rollback(tx).await;
                Err(backend(e))
            }
        }
    }

    async fn sign_in(&self, id_hash: &str) -> Result<Option<SignInRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, role, key_fingerprint, created_at, expires_at, signed_out_at FROM sign_ins \
             WHERE id_hash = ?1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = column(&row, "user_id")?;
        let role: String = column(&row, "role")?;
        Ok(Some(SignInRecord {
            id_hash: column(&row, "id_hash")?,
            user_id: UserId::parse(&user_id).map_err(|e| corrupt("user_id", e))?,
            role: role.parse::<Role>().map_err(|e| corrupt("role", e))?,
            key_fingerprint: column(&row, "key_fingerprint")?,
            created_at: column(&row, "created_at")?,
            expires_at: column(&row, "expires_at")?,
            signed_out_at: column(&row, "signed_out_at")?,
        }))
    }

    async fn sign_out(&self, id_hash: &str, at: i64) -> Result<bool, StoreError> {
        let _turn = self.writer_turn().await;
        let done = sqlx::query("UPDATE sign_ins SET signed_out_at = ?1 WHERE id_hash = ?2 AND signed_out_at IS NULL")
            .bind(at)
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}

/// The migrations compiled into the binary, for sqlx's [`Migrator`].
#[derive(Debug)]
struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async { Ok(embedded_migrations()) })
    }
}

/// [`MIGRATIONS`] as sqlx migrations.
fn embedded_migrations() -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
        })
        .collect()
}

/// Creates `path` with mode 0600 if it does not exist, so that the database never exists with wider permissions.
/// (SQLite gives its `-wal` and `-shm` files the permissions of the database file.) An existing file is left as
/// it is.
async fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await.map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
    Ok(())
}

/// The compare-and-swap of a transition inside a write transaction: `UPDATE … WHERE id = ? AND state = <from>
/// RETURNING …`, setting the state and the `changes` (`updated_at` = `at`). `None` when no row matched.
async fn cas_transition(
    conn: &mut SqliteConnection,
    id: &ExamSessionId,
    t: &Transition,
    changes: &SessionChanges,
    at: i64,
) -> Result<Option<SqliteRow>, StoreError> {
    let set_progress = changes.progress.is_some();
    let progress = match &changes.progress {
        Some(Some(p)) => Some(to_json(p)?),
        _ => None,
    };
    let failure = changes.failure.as_ref().map(to_json).transpose()?;
    // `COALESCE(?, col)` keeps the column when the change is `None`; the progress has an explicit flag because
    // `Some(None)` clears it.
    sqlx::query(&format!(
        "UPDATE sessions SET \
             state = ?1, \
             progress = CASE WHEN ?2 THEN ?3 ELSE progress END, \
             ready_at = COALESCE(?4, ready_at), \
             started_at = COALESCE(?5, started_at), \
             deadline = COALESCE(?6, deadline), \
             ended_at = COALESCE(?7, ended_at), \
             end_reason = COALESCE(?8, end_reason), \
             failure = COALESCE(?9, failure), \
             resources_released_at = COALESCE(?10, resources_released_at), \
             graded = COALESCE(?11, graded), \
             updated_at = ?12 \
         WHERE id = ?13 AND state = ?14 \
         RETURNING {SESSION_COLUMNS}"
    ))
    .bind(t.to.as_str())
    .bind(set_progress)
    .bind(progress)
    .bind(changes.ready_at)
    .bind(changes.started_at)
    .bind(changes.deadline)
    .bind(changes.ended_at)
    .bind(changes.end_reason.map(EndReason::as_str))
    .bind(failure)
    .bind(changes.resources_released_at)
    .bind(changes.graded)
    .bind(at)
    .bind(id.to_string())
    .bind(t.from.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)
}

/// The end of `apply` and `set_progress`: the compare-and-swap `UPDATE … RETURNING` has run in `tx`. If it
/// updated the row, appends `event` and commits; otherwise rolls back and says why.
async fn finish_cas(
    mut tx: Transaction<'static, Sqlite>,
    id: &ExamSessionId,
    expected: SessionState,
    updated: Result<Option<SqliteRow>, StoreError>,
    event: &NewEvent,
) -> Result<SessionRecord, StoreError> {
    let row = match updated {
        Ok(Some(row)) => row,
        Ok(None) => {
            let why = SqliteStore::conflict(&mut tx, id, expected).await;
            rollback(tx).await;
            return Err(why?);
        }
        Err(e) => {
            rollback(tx).await;
            return Err(e);
        }
    };
    let rec = match session_from_row(&row) {
        Ok(rec) => rec,
        Err(e) => {
            rollback(tx).await;
            return Err(e);
        }
    };
    if let Err(e) = insert_event(&mut tx, id, event).await {
        rollback(tx).await;
        return Err(e);
    }
    tx.commit().await.map_err(backend)?;
    Ok(rec)
}

/// Inserts a session and its first event inside the write transaction `tx` (the caller commits or rolls back). A live
/// session of the same user is [`StoreError::LiveSessionExists`].
async fn insert_session(conn: &mut SqliteConnection, rec: &SessionRecord, event: &NewEvent) -> Result<(), StoreError> {
    let progress = rec.progress.as_ref().map(to_json).transpose()?;
    let failure = rec.failure.as_ref().map(to_json).transpose()?;
    let inserted = sqlx::query(
        "INSERT INTO sessions (id, user_id, exam_id, environment_id, state, progress, created_at, ready_at, \
         started_at, deadline, duration_ms, start_grace_ms, provisioning_timeout_ms, ended_at, end_reason, \
         failure, resources_released_at, graded, updated_at, exam_version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )
    .bind(rec.id.to_string())
    .bind(rec.user_id.as_str())
    .bind(rec.exam_id.as_str())
    .bind(rec.environment_id.to_string())
    .bind(rec.state.as_str())
    .bind(progress)
    .bind(rec.created_at)
    .bind(rec.ready_at)
    .bind(rec.started_at)
    .bind(rec.deadline)
    .bind(rec.duration_ms)
    .bind(rec.start_grace_ms)
    .bind(rec.provisioning_timeout_ms)
    .bind(rec.ended_at)
    .bind(rec.end_reason.map(EndReason::as_str))
    .bind(failure)
    .bind(rec.resources_released_at)
    .bind(rec.graded)
    .bind(rec.updated_at)
    .bind(rec.exam_version.as_deref())
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_live_session_violation(&e) => {
            // Still inside the write transaction: the live session that blocked the insert cannot end between the
            // failure and this lookup.
            return match live_for_user_on(conn, &rec.user_id).await? {
                Some(live) => Err(StoreError::LiveSessionExists { session_id: live.id }),
                None => Err(backend(e)),
            };
        }
        Err(e) => return Err(backend(e)),
    }
    insert_event(conn, &rec.id, event).await
}

/// The user's live session, on a given connection (inside a transaction, or not).
async fn live_for_user_on(conn: &mut SqliteConnection, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
    sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND {LIVE}"))
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .map(|row| session_from_row(&row))
        .transpose()
}

/// Appends an event to session `id`'s trail. A session that does not exist is `NotFound` (the foreign key).
async fn insert_event(conn: &mut SqliteConnection, id: &ExamSessionId, event: &NewEvent) -> Result<(), StoreError> {
    let data = event.data.as_ref().map(to_json).transpose()?;
    sqlx::query(
        "INSERT INTO events (session_id, at, kind, from_state, to_state, reason, actor, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(id.to_string())
    .bind(event.at)
    .bind(event.kind.as_str())
    .bind(event.from.map(SessionState::as_str))
    .bind(event.to.map(SessionState::as_str))
    .bind(event.reason.as_str())
    .bind(event.actor.as_str())
    .bind(data)
    .execute(&mut *conn)
    .await
    .map_err(|e| match e.as_database_error().map(|d| d.kind()) {
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound,
        _ => backend(e),
    })?;
    Ok(())
}

/// Rolls back, logging (not returning) a failure: the caller already has the error to report, and a
/// transaction that fails to roll back is rolled back when its connection is reused or closed.
async fn rollback(tx: Transaction<'static, Sqlite>) {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "sqlite rollback failed");
    }
}

/// Whether `e` is a violation of `one_live_session_per_user` (and not, say, of the primary key).
fn is_live_session_violation(e: &sqlx::Error) -> bool {
    // SQLite names the columns of the violated index, not the index: "UNIQUE constraint failed: sessions.user_id".
    e.as_database_error()
        .is_some_and(|d| d.kind() == ErrorKind::UniqueViolation && d.message().ends_with("sessions.user_id"))
}

/// A database error as a [`StoreError::Backend`].
fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A value as JSON text.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// A stored value that does not parse: the database was changed behind the store's back.
fn corrupt(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unreadable value in column {column}: {e}"))
}

/// A stored session state.
fn parse_state(s: &str) -> Result<SessionState, StoreError> {
    s.parse().map_err(|e| corrupt("state", e))
}

/// Reads column `column` of `row`.
fn column<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(|e| corrupt(column, e))
}

/// Reads a JSON TEXT column.
fn json_column<T: serde::de::DeserializeOwned>(row: &SqliteRow, name: &str) -> Result<Option<T>, StoreError> {
    column::<Option<String>>(row, name)?.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(name, e))).transpose()
}

/// A row of `sessions` (selected as [`SESSION_COLUMNS`]).
fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let id: String = column(row, "id")?;
    let user_id: String = column(row, "user_id")?;
    let exam_id: String = column(row, "exam_id")?;
    let environment_id: String = column(row, "environment_id")?;
    let state: String = column(row, "state")?;
    let end_reason: Option<String> = column(row, "end_reason")?;
    Ok(SessionRecord {
        id: ExamSessionId::parse(&id).map_err(|e| corrupt("id", e))?,
        user_id: UserId::parse(&user_id).map_err(|e| corrupt("user_id", e))?,
        exam_id: ExamId::parse(&exam_id).map_err(|e| corrupt("exam_id", e))?,
        environment_id: EnvironmentId::parse(&environment_id).map_err(|e| corrupt("environment_id", e))?,
        state: parse_state(&state)?,
        progress: json_column::<Progress>(row, "progress")?,
        created_at: column(row, "created_at")?,
        ready_at: column(row, "ready_at")?,
        started_at: column(row, "started_at")?,
        deadline: column(row, "deadline")?,
        duration_ms: column(row, "duration_ms")?,
        start_grace_ms: column(row, "start_grace_ms")?,
        provisioning_timeout_ms: column(row, "provisioning_timeout_ms")?,
        ended_at: column(row, "ended_at")?,
        end_reason: end_reason.map(|s| s.parse::<EndReason>().map_err(|e| corrupt("end_reason", e))).transpose()?,
        failure: json_column::<Failure>(row, "failure")?,
        resources_released_at: column(row, "resources_released_at")?,
        graded: column(row, "graded")?,
        updated_at: column(row, "updated_at")?,
        exam_version: column(row, "exam_version")?,
    })
}

/// A row of `events` (selected as [`EVENT_COLUMNS`]).
fn event_from_row(row: &SqliteRow) -> Result<EventRecord, StoreError> {
    let session_id: String = column(row, "session_id")?;
    let kind: String = column(row, "kind")?;
    let from: Option<String> = column(row, "from_state")?;
    let to: Option<String> = column(row, "to_state")?;
    Ok(EventRecord {
        seq: column(row, "seq")?,
        session_id: ExamSessionId::parse(&session_id).map_err(|e| corrupt("session_id", e))?,
        event: NewEvent {
            at: column(row, "at")?,
            kind: EventKind::parse(&kind).ok_or_else(|| corrupt("kind", format!("unknown event kind {kind:?}")))?,
            from: from.as_deref().map(parse_state).transpose()?,
            to: to.as_deref().map(parse_state).transpose()?,
            reason: column(row, "reason")?,
            actor: column(row, "actor")?,
            data: json_column(row, "data")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded migrations are exactly the files in `migrations/`, with the version, description and
    /// checksum that sqlx gives them when it reads the directory (as `sqlx::migrate!` would).
    #[tokio::test]
    async fn embedded_migrations_match_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let from_dir = Migrator::new(dir).await.unwrap();
        let embedded = Migrator::new(EmbeddedMigrations).await.unwrap();
        let key = |m: &Migration| (m.version, m.description.to_string(), m.checksum.to_vec(), m.no_tx);
        let a: Vec<_> = from_dir.iter().map(key).collect();
        let b: Vec<_> = embedded.iter().map(key).collect();
        assert!(!a.is_empty());
        assert_eq!(a, b, "MIGRATIONS in sqlite.rs is out of step with crates/store/migrations/");
        assert!(embedded.iter().all(|m| matches!(m.migration_type, MigrationType::Simple)));
    }

    #[tokio::test]
    async fn memory_store_keeps_one_database() {
        let store = SqliteStore::open_memory().await.unwrap();
        store.ping().await.unwrap();
        // Several sequential uses of the pool all see the migrated schema.
        for _ in 0..3 {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(&store.pool).await.unwrap();
            assert_eq!(n, 0);
        }
    }
}
