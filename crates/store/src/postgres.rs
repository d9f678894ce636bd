//! The PostgreSQL backend: [`PgStore`] (Cargo feature `postgres`).
//!
//! Several replicas share one PostgreSQL database: it holds the truth and coordinates them, with no consensus code of
//! examroom's own. The schema lives in `migrations-postgres/` (one file per SQLite migration, same numbers, same
//! rules) and is applied on [`PgStore::connect`]; sqlx's migrator takes an advisory lock, so replicas starting together
//! migrate once.
//!
//! # How the rules of the crate are kept
//!
//! - **One live session per candidate**: the partial unique index `one_live_session_per_user`; a racing second insert
//!   (on any replica) waits for the first one's transaction and then fails with a unique violation on that index,
//!   which becomes [`StoreError::LiveSessionExists`].
//! - **A transition is a compare-and-swap**: `UPDATE … WHERE id = $ AND state = <from>` in the same transaction as
//!   its event. Under READ COMMITTED a concurrent update of the row makes the second one wait and re-check its
//!   WHERE clause on the new row, so exactly one of two racing transitions matches.
//! - **The audit trail is append-only**: triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on `events` (and on
//!   `attempt_grants`).
//!
//! # Change notifications
//!
//! Every write that changes a session (insert, transition, progress, release) sends `NOTIFY examroom_sessions` with
//! the payload `<origin> <session id>` in the same transaction, so it is delivered on commit and never for a change
//! that rolled back. `origin` is random per [`PgStore`]: a replica ignores its own notifications (it already
//! published the change). [`PgStore::changes`] listens; see [`crate::Changes`].
//!
//! # Stored forms
//!
//! Ids and enum values are TEXT (serde snake_case forms); `progress`, `failure`, event `data` and results are JSONB
//! (written from JSON text with `::jsonb`, read back with `::text`); times are BIGINT unix milliseconds; `graded` is
//! BOOLEAN.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod pool;
#[cfg(feature = "test-cluster")]
pub mod test_cluster;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use examroom_core::{
    EndReason, EnvironmentId, ExamId, ExamResult, ExamSessionId, Failure, Progress, Role, SessionState, Transition,
    UserId,
};
use sqlx::error::{BoxDynError, ErrorKind};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use crate::{
    AttemptGrant, Change, EventKind, EventRecord, ListFilter, NewEvent, SessionChanges, SessionRecord, SessionStore,
    SignInRecord, StoreError, Workspace,
};

/// The migrations, in order: (version, description, SQL). Keep in step with `migrations-postgres/`, and with the
/// SQLite migrations (same numbers).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "sessions", include_str!("../migrations-postgres/0001_sessions.sql")),
    (2, "results", include_str!("../migrations-postgres/0002_results.sql")),
    (3, "attempt grants", include_str!("../migrations-postgres/0003_attempt_grants.sql")),
    (4, "sign ins", include_str!("../migrations-postgres/0004_sign_ins.sql")),
    (5, "pools", include_str!("../migrations-postgres/0005_pools.sql")),
    (6, "exam versions", include_str!("../migrations-postgres/0006_exam_versions.sql")),
    (7, "workspaces", include_str!("../migrations-postgres/0007_workspaces.sql")),
];

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;

/// How long acquiring a connection may take before the operation fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The channel of session change notifications.
pub const CHANNEL: &str = "examroom_sessions";

/// The columns of `sessions`, in the order [`session_from_row`] reads them (JSONB read back as text).
const SESSION_COLUMNS: &str = "id, user_id, exam_id, environment_id, state, progress::text AS progress, created_at, \
     ready_at, started_at, deadline, duration_ms, start_grace_ms, provisioning_timeout_ms, ended_at, end_reason, \
     failure::text AS failure, resources_released_at, graded, updated_at, exam_version";

/// The columns of `events`, in the order [`event_from_row`] reads them.
const EVENT_COLUMNS: &str = "seq, session_id, at, kind, from_state, to_state, reason, actor, data::text AS data";

/// The "live" condition; identical to the WHERE clause of the index `one_live_session_per_user`.
const LIVE: &str = "state NOT IN ('terminated', 'failed')";

/// The actor recorded on events the store writes on its own behalf (progress).
const SYSTEM_ACTOR: &str = "system";

/// Sessions and events in one PostgreSQL database, shared by every replica.
///
/// Cheap to clone: clones share the connection pool (and the origin of their notifications).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// For the listener's own connections.
    options: std::sync::Arc<PgConnectOptions>,
    /// This store's name in its change notifications (random).
    origin: String,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`, or `postgres:///db?host=/run/sock`
    /// for a unix socket) and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("database URL: {}", redact(&e.to_string(), url))))?
            .application_name("examroom");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {}", redact(&e.to_string(), url))))?;
        let origin = format!("{:016x}", rand_u64());
        let store = PgStore { pool, options: std::sync::Arc::new(options), origin };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection, waiting for those in use to be returned. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the migrations that have not run yet.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator =
            Migrator::new(EmbeddedMigrations).await.map_err(|e| StoreError::Backend(format!("migrations: {e}")))?;
        migrator.run(&self.pool).await.map_err(|e| StoreError::Backend(format!("migrations: {e}")))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(backend)
    }

    /// Sends the change notification of session `id` inside `conn`'s transaction (delivered on commit).
    async fn notify(&self, conn: &mut PgConnection, id: &ExamSessionId) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{} {id}", self.origin))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Session changes made by other replicas (other [`PgStore`]s), as they are committed. Connects a listener
    /// first: an error here means no notifications can be received.
    pub async fn changes(&self) -> Result<crate::Changes, StoreError> {
        let listener = listen(&self.options).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(forward_changes(listener, std::sync::Arc::clone(&self.options), self.origin.clone(), tx));
        Ok(crate::Changes { rx })
    }

    /// The row of `id` after a compare-and-swap updated nothing: `NotFound`, or the state it is really in.
    async fn conflict(
        conn: &mut PgConnection,
        id: &ExamSessionId,
        expected: SessionState,
    ) -> Result<StoreError, StoreError> {
        let actual: Option<String> = sqlx::query_scalar("SELECT state FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(match actual {
            None => StoreError::NotFound,
            Some(actual) => StoreError::StateConflict { expected, actual: parse_state(&actual)? },
        })
    }

    /// The end of `apply`, `set_progress` and `mark_released`: the compare-and-swap has run in `tx`. If it updated the
    /// row, appends `event`, notifies and commits; otherwise rolls back and says why.
    async fn finish_cas(
        &self,
        mut tx: Transaction<'static, Postgres>,
        id: &ExamSessionId,
        expected: SessionState,
        updated: Result<Option<PgRow>, StoreError>,
        event: &NewEvent,
    ) -> Result<SessionRecord, StoreError> {
        let done = async {
            let row = match updated? {
                Some(row) => row,
                None => return Err(PgStore::conflict(&mut tx, id, expected).await?),
            };
            let rec = session_from_row(&row)?;
            insert_event(&mut tx, id, event).await?;
            self.notify(&mut tx, id).await?;
            Ok(rec)
        }
        .await;
        match done {
            Ok(rec) => {
                tx.commit().await.map_err(backend)?;
                Ok(rec)
            }
            Err(e) => {
                rollback(tx).await;
                Err(e)
            }
        }
    }

    /// Inserts a session and its first event inside `tx` and notifies. A live session of the same user is
    /// [`StoreError::LiveSessionExists`] (the transaction stays usable: the insert runs under a savepoint).
    pub(crate) async fn insert_session(
        &self,
        conn: &mut PgConnection,
        rec: &SessionRecord,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let progress = rec.progress.as_ref().map(to_json).transpose()?;
        let failure = rec.failure.as_ref().map(to_json).transpose()?;
        sqlx::query("SAVEPOINT insert_session").execute(&mut *conn).await.map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, user_id, exam_id, environment_id, state, progress, created_at, ready_at, \
             started_at, deadline, duration_ms, start_grace_ms, provisioning_timeout_ms, ended_at, end_reason, \
             failure, resources_released_at, graded, updated_at, exam_version) \
             VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17, $18, \
             $19, $20)",
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
            Err(e) if is_violation_of(&e, "one_live_session_per_user") => {
                sqlx::query("ROLLBACK TO SAVEPOINT insert_session").execute(&mut *conn).await.map_err(backend)?;
                // The winner committed before the violation was raised (PostgreSQL waits for it), so a new statement
                // sees it.
                return match live_for_user_on(conn, &rec.user_id).await? {
                    Some(live) => Err(StoreError::LiveSessionExists { session_id: live.id }),
                    None => Err(backend(e)),
                };
            }
            Err(e) => return Err(backend(e)),
        }
        insert_event(conn, &rec.id, event).await?;
        self.notify(conn, &rec.id).await
    }
}

/// A random 64-bit number (for the origin of notifications), from the standard library's randomly seeded hasher.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

/// The URL's password, if any, replaced in a message about it.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_owned(),
    }
}

/// A listener on [`CHANNEL`].
async fn listen(options: &PgConnectOptions) -> Result<PgListener, StoreError> {
    let pool =
        PgPoolOptions::new().max_connections(1).acquire_timeout(ACQUIRE_TIMEOUT).connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await.map_err(backend)?;
    listener.listen(CHANNEL).await.map_err(backend)?;
    Ok(listener)
}

/// Forwards notifications of other origins as [`Change::Session`]; after a lost connection, reconnects (retrying
/// every 200 ms) and sends [`Change::Resync`]: notifications sent meanwhile are lost. Ends when the receiver is
/// dropped.
async fn forward_changes(
    mut listener: PgListener,
    options: std::sync::Arc<PgConnectOptions>,
    origin: String,
    tx: tokio::sync::mpsc::Sender<Change>,
) {
    loop {
        let lost = match listener.try_recv().await {
            Ok(Some(n)) => {
                let Some((from, id)) = n.payload().split_once(' ') else { continue };
                if from == origin {
                    continue;
                }
                let Ok(id) = ExamSessionId::parse(id) else { continue };
                if tx.send(Change::Session(id)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => "connection lost".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %lost, "PostgreSQL change notifications: reconnecting");
        loop {
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            match listen(&options).await {
                Ok(l) => {
                    listener = l;
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "PostgreSQL change notifications: still reconnecting"),
            }
        }
        tracing::info!("PostgreSQL change notifications: reconnected; resyncing");
        if tx.send(Change::Resync).await.is_err() {
            return;
        }
    }
}

impl PgStore {
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
        let done = sqlx::query(&format!(
            "INSERT INTO {table} (session_id, {column}, updated_at) VALUES ($1, $2::jsonb, $3) \
             ON CONFLICT (session_id) DO UPDATE SET {column} = excluded.{column}, updated_at = excluded.updated_at"
        ))
        .bind(id.to_string())
        .bind(json)
        .bind(at)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound),
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
        let row: Option<String> =
            sqlx::query_scalar(&format!("SELECT {column}::text FROM {table} WHERE session_id = $1"))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        row.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Backend(format!("decoding {table}: {e}"))))
            .transpose()
    }
}

impl SessionStore for PgStore {
    async fn insert(&self, rec: &SessionRecord, event: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        if let Err(e) = self.insert_session(&mut tx, rec, event).await {
            rollback(tx).await;
            return Err(e);
        }
        tx.commit().await.map_err(backend)
    }

    async fn get(&self, id: &ExamSessionId) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|row| session_from_row(&row))
            .transpose()
    }

    async fn get_owned(&self, id: &ExamSessionId, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 AND user_id = $2"))
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
        let mut query = QueryBuilder::<Postgres>::new(format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE 1 = 1"));
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
        let mut tx = self.begin().await?;
        let updated = cas_transition(&mut tx, id, t, changes, event.at).await;
        self.finish_cas(tx, id, t.from, updated, event).await
    }

    async fn apply_chain(
        &self,
        id: &ExamSessionId,
        steps: &[(Transition, SessionChanges, NewEvent)],
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut tx = self.begin().await?;
        let done = async {
            let mut records = Vec::with_capacity(steps.len());
            for (t, changes, event) in steps {
                let rec = match cas_transition(&mut tx, id, t, changes, event.at).await? {
                    Some(row) => session_from_row(&row)?,
                    None => return Err(PgStore::conflict(&mut tx, id, t.from).await?),
                };
                insert_event(&mut tx, id, event).await?;
                records.push(rec);
            }
            if !records.is_empty() {
                self.notify(&mut tx, id).await?;
            }
            Ok(records)
        }
        .await;
        match done {
            Ok(records) => {
                tx.commit().await.map_err(backend)?;
                Ok(records)
            }
            Err(e) => {
                rollback(tx).await;
                Err(e)
            }
        }
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
        let mut tx = self.begin().await?;
        let updated = sqlx::query(&format!(
            "UPDATE sessions SET progress = $1::jsonb, updated_at = $2 WHERE id = $3 AND state = $4 \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(data.to_string())
        .bind(at)
        .bind(id.to_string())
        .bind(expected.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend);
        self.finish_cas(tx, id, expected, updated, &event).await
    }

    async fn mark_released(&self, id: &ExamSessionId, at: i64, event: &NewEvent) -> Result<SessionRecord, StoreError> {
        let state = SessionState::Failed;
        let mut tx = self.begin().await?;
        let updated = sqlx::query(&format!(
            "UPDATE sessions SET resources_released_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = $3 AND resources_released_at IS NULL RETURNING {SESSION_COLUMNS}"
        ))
        .bind(at)
        .bind(id.to_string())
        .bind(state.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend);
        self.finish_cas(tx, id, state, updated, event).await
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
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_event(&mut conn, id, event).await
    }

    async fn events(&self, id: &ExamSessionId) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE session_id = $1 ORDER BY seq"))
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
             WHERE user_id = $1 AND exam_id = $2 AND started_at IS NOT NULL AND state <> 'failed'",
        )
        .bind(user.as_str())
        .bind(exam.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn grant_attempts(&self, grant: &AttemptGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attempt_grants (user_id, exam_id, extra, reason, actor, at) VALUES ($1, $2, $3, $4, $5, $6)",
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
             WHERE user_id = $1 AND exam_id = $2 ORDER BY seq",
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
        let mut tx = self.begin().await?;
        let done = async {
            sqlx::query("DELETE FROM sign_ins WHERE expires_at <= $1").bind(rec.created_at).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO sign_ins (id_hash, user_id, role, key_fingerprint, created_at, expires_at, \
                 signed_out_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
             WHERE id_hash = $1",
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
        let done = sqlx::query("UPDATE sign_ins SET signed_out_at = $1 WHERE id_hash = $2 AND signed_out_at IS NULL")
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

/// The compare-and-swap of a transition inside a transaction (see the SQLite backend's twin).
async fn cas_transition(
    conn: &mut PgConnection,
    id: &ExamSessionId,
    t: &Transition,
    changes: &SessionChanges,
    at: i64,
) -> Result<Option<PgRow>, StoreError> {
    let set_progress = changes.progress.is_some();
    let progress = match &changes.progress {
        Some(Some(p)) => Some(to_json(p)?),
        _ => None,
    };
    let failure = changes.failure.as_ref().map(to_json).transpose()?;
    sqlx::query(&format!(
        "UPDATE sessions SET \
             state = $1, \
             progress = CASE WHEN $2 THEN $3::jsonb ELSE progress END, \
             ready_at = COALESCE($4, ready_at), \
             started_at = COALESCE($5, started_at), \
             deadline = COALESCE($6, deadline), \
             ended_at = COALESCE($7, ended_at), \
             end_reason = COALESCE($8, end_reason), \
             failure = COALESCE($9::jsonb, failure), \
             resources_released_at = COALESCE($10, resources_released_at), \
             graded = COALESCE($11, graded), \
             updated_at = $12 \
         WHERE id = $13 AND state = $14 \
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

/// The user's live session, on a given connection (inside a transaction, or not).
async fn live_for_user_on(conn: &mut PgConnection, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
    sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND {LIVE}"))
        .bind(user.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .map(|row| session_from_row(&row))
        .transpose()
}

/// Appends an event to session `id`'s trail. A session that does not exist is `NotFound` (the foreign key).
async fn insert_event(conn: &mut PgConnection, id: &ExamSessionId, event: &NewEvent) -> Result<(), StoreError> {
    let data = event.data.as_ref().map(to_json).transpose()?;
    sqlx::query(
        "INSERT INTO events (session_id, at, kind, from_state, to_state, reason, actor, data) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
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
    .map_err(|e| if is_foreign_key_violation(&e) { StoreError::NotFound } else { backend(e) })?;
    Ok(())
}

/// Rolls back, logging (not returning) a failure.
pub(crate) async fn rollback(tx: Transaction<'static, Postgres>) {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "postgres rollback failed");
    }
}

/// Whether `e` is a unique violation of the index (or constraint) `name`.
fn is_violation_of(e: &sqlx::Error, name: &str) -> bool {
    e.as_database_error().is_some_and(|d| d.kind() == ErrorKind::UniqueViolation && d.constraint() == Some(name))
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.kind() == ErrorKind::ForeignKeyViolation)
}

/// A database error as a [`StoreError::Backend`].
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A value as JSON text.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// A stored value that does not parse: the database was changed behind the store's back.
pub(crate) fn corrupt(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unreadable value in column {column}: {e}"))
}

fn parse_state(s: &str) -> Result<SessionState, StoreError> {
    s.parse().map_err(|e| corrupt("state", e))
}

/// Reads column `column` of `row`.
pub(crate) fn column<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(|e| corrupt(column, e))
}

/// Reads a JSONB column selected as text.
fn json_column<T: serde::de::DeserializeOwned>(row: &PgRow, name: &str) -> Result<Option<T>, StoreError> {
    column::<Option<String>>(row, name)?.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(name, e))).transpose()
}

/// A row of `sessions` (selected as [`SESSION_COLUMNS`]).
fn session_from_row(row: &PgRow) -> Result<SessionRecord, StoreError> {
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
fn event_from_row(row: &PgRow) -> Result<EventRecord, StoreError> {
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

    /// The embedded migrations are exactly the files in `migrations-postgres/`, and they have the same numbers and
    /// descriptions as the SQLite ones (each SQLite migration has its PostgreSQL twin).
    #[tokio::test]
    async fn embedded_migrations_match_the_directory_and_sqlite() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let from_dir = Migrator::new(root.join("migrations-postgres")).await.unwrap();
        let embedded = Migrator::new(EmbeddedMigrations).await.unwrap();
        let key = |m: &Migration| (m.version, m.description.to_string(), m.checksum.to_vec());
        let a: Vec<_> = from_dir.iter().map(key).collect();
        let b: Vec<_> = embedded.iter().map(key).collect();
        assert_eq!(a, b, "MIGRATIONS in postgres.rs is out of step with crates/store/migrations-postgres/");
        let sqlite = Migrator::new(root.join("migrations")).await.unwrap();
        let names = |m: &Migrator| m.iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>();
        assert_eq!(names(&sqlite), names(&embedded), "every SQLite migration needs its PostgreSQL twin");
    }

    #[test]
    fn passwords_are_redacted_from_messages() {
        let url = "postgres://examroom:s3cret@db.example.org/examroom";
        assert_eq!(
            redact(&format!("cannot reach {url}"), url),
            "cannot reach postgres://examroom:***@db.example.org/examroom"
        );
        assert_eq!(redact("no password here", "postgres://examroom@db/examroom"), "no password here");
    }
}
