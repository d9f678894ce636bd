//! # examroom-store
//!
//! Sessions and their audit trail, behind the [`SessionStore`] boundary. SQLite ([`sqlite::SqliteStore`]) is the
//! default, embedded backend; PostgreSQL ([`postgres::PgStore`], Cargo feature `postgres`) is the one several replicas
//! share. [`Store`] dispatches to either.
//!
//! # Layout
//! - this file: the records (sessions, events, attempt grants, browser sign-ins), the trait, the dispatch enum;
//! - [`pool`]: warm pools (pooled environments, claims, announcements) and their [`PoolStore`] trait;
//! - [`sqlite`]: the SQLite backend, with its migrations in `migrations/`;
//! - [`postgres`]: the PostgreSQL backend, with its migrations in `migrations-postgres/` (one per SQLite migration),
//!   and change notifications between replicas ([`Changes`]).
//!
//! Rules every backend keeps:
//! - **a transition is a compare-and-swap on the state, stored in the same transaction as its event;**
//! - **a user has at most one live (not final) session**, enforced by the database itself;
//! - **a candidate's lookup is one query keyed by (session id, user id).**

pub mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

pub use pool::{Claim, NewPoolSchedule, PoolEntry, PoolSchedule, PoolState, PoolStore};

use examroom_core::{
    EndReason, EnvironmentId, ExamId, ExamResult, ExamSessionId, Failure, Progress, Role, SessionState, Transition,
    UserId,
};
use serde::{Deserialize, Serialize};

/// One exam session as stored. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// `exam_session_id`.
    pub id: ExamSessionId,
    /// The candidate.
    pub user_id: UserId,
    /// The exam.
    pub exam_id: ExamId,
    /// `execution_environment_id`.
    pub environment_id: EnvironmentId,
    /// Lifecycle state.
    pub state: SessionState,
    /// Provisioning or teardown progress.
    pub progress: Option<Progress>,
    /// Accepted.
    pub created_at: i64,
    /// Became ready.
    pub ready_at: Option<i64>,
    /// The clock started (became active).
    pub started_at: Option<i64>,
    /// When the clock runs out.
    pub deadline: Option<i64>,
    /// The exam's duration, as it was when the session was created.
    pub duration_ms: i64,
    /// Start grace: a ready session that is not started by `ready_at + start_grace_ms` ends as `not_started`.
    pub start_grace_ms: i64,
    /// Provisioning must finish within this.
    pub provisioning_timeout_ms: i64,
    /// Entered `terminating` (or `failed`).
    pub ended_at: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The environment was destroyed and verified.
    pub resources_released_at: Option<i64>,
    /// This end is graded (see the contract's Grading).
    pub graded: Option<bool>,
    /// Last change.
    pub updated_at: i64,
    /// The version of the exam definition the session started on (`Exam::version`, hex); `None` for sessions stored
    /// before versions were recorded.
    #[serde(default)]
    pub exam_version: Option<String>,
}

/// Fields that change together with a transition. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChanges {
    /// `Some(None)` clears the progress.
    pub progress: Option<Option<Progress>>,
    /// Set `ready_at`.
    pub ready_at: Option<i64>,
    /// Set `started_at`.
    pub started_at: Option<i64>,
    /// Set `deadline`.
    pub deadline: Option<i64>,
    /// Set `ended_at`.
    pub ended_at: Option<i64>,
    /// Set `end_reason`.
    pub end_reason: Option<EndReason>,
    /// Set `failure`.
    pub failure: Option<Failure>,
    /// Set `resources_released_at`.
    pub resources_released_at: Option<i64>,
    /// Set `graded`.
    pub graded: Option<bool>,
}

/// A session's workspace on the exam page, kept on the server: what the candidate flagged and visited, their
/// notepad, and the terminals they opened besides "main". The service bounds every field before it stores one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Task ids flagged for review.
    #[serde(default)]
    pub flagged: Vec<String>,
    /// Task ids the candidate opened.
    #[serde(default)]
    pub visited: Vec<String>,
    /// The notepad's text.
    #[serde(default)]
    pub notepad: String,
    /// Terminals opened besides "main", in order, that were not closed.
    #[serde(default)]
    pub terminals: Vec<String>,
    /// Terminals the candidate closed: never attached again.
    #[serde(default)]
    pub closed: Vec<String>,
}

/// What kind of event the trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A lifecycle transition.
    Transition,
    /// A provisioning or teardown step.
    Progress,
    /// A terminal or desktop attach.
    Attach,
    /// A newer attach replaced an older one.
    Takeover,
    /// A proctor acted on the session.
    ProctorAction,
    /// The reconciler found and fixed something.
    Reconcile,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Transition => "transition",
            EventKind::Progress => "progress",
            EventKind::Attach => "attach",
            EventKind::Takeover => "takeover",
            EventKind::ProctorAction => "proctor_action",
            EventKind::Reconcile => "reconcile",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "transition" => EventKind::Transition,
            "progress" => EventKind::Progress,
            "attach" => EventKind::Attach,
            "takeover" => EventKind::Takeover,
            "proctor_action" => EventKind::ProctorAction,
            "reconcile" => EventKind::Reconcile,
            _ => return None,
        })
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// When (unix ms).
    pub at: i64,
    /// What kind.
    pub kind: EventKind,
    /// For transitions: from.
    pub from: Option<SessionState>,
    /// For transitions: to.
    pub to: Option<SessionState>,
    /// Why, for a person.
    pub reason: String,
    /// Who caused it: `system`, `candidate:<id>`, `proctor:<id>`.
    pub actor: String,
    /// Anything else (JSON object).
    pub data: Option<serde_json::Value>,
}

impl NewEvent {
    /// The event that records a transition.
    pub fn transition(t: &Transition, at: i64, actor: &str) -> Self {
        NewEvent {
            at,
            kind: EventKind::Transition,
            from: Some(t.from),
            to: Some(t.to),
            reason: t.reason.clone(),
            actor: actor.to_string(),
            data: serde_json::to_value(t.trigger).ok().map(|t| serde_json::json!({ "trigger": t })),
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Order within the whole store (increasing).
    pub seq: i64,
    /// The session.
    pub session_id: ExamSessionId,
    /// The event.
    #[serde(flatten)]
    pub event: NewEvent,
}

/// Which sessions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this user's.
    pub user: Option<UserId>,
    /// Only in this state.
    pub state: Option<SessionState>,
    /// Only live ones.
    pub live_only: bool,
}

/// Extra attempts at an exam that a proctor granted to a candidate. Grants are append-only: they are their own audit
/// trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptGrant {
    /// The candidate.
    pub user_id: UserId,
    /// The exam.
    pub exam_id: ExamId,
    /// How many attempts are added (1 to 100).
    pub extra: u32,
    /// Why, for the record.
    pub reason: String,
    /// Who granted them: `proctor:<id>`.
    pub actor: String,
    /// When (unix ms).
    pub at: i64,
}

/// A browser sign-in: what the `examroom_session` cookie stands for. The cookie holds a random id; the store keeps
/// only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInRecord {
    /// The SHA-256 of the cookie's id, in hex.
    pub id_hash: String,
    /// Who signed in (the token's `sub`).
    pub user_id: UserId,
    /// Their role (the token's `role`).
    pub role: Role,
    /// Which token keys verified the token; a sign-in made under other keys is not valid.
    pub key_fingerprint: String,
    /// Signed in (unix ms).
    pub created_at: i64,
    /// The token's `exp` (unix ms): the sign-in is not valid from then on.
    pub expires_at: i64,
    /// Signed out (unix ms): the sign-in is not valid from then on.
    pub signed_out_at: Option<i64>,
}

impl SignInRecord {
    /// Whether the sign-in is valid at `now` (unix ms) under keys with `key_fingerprint`.
    pub fn is_valid(&self, now: i64, key_fingerprint: &str) -> bool {
        self.signed_out_at.is_none() && now < self.expires_at && self.key_fingerprint == key_fingerprint
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such session.
    #[error("session not found")]
    NotFound,
    /// The user already has a live session.
    #[error("the user already has a live session {session_id}")]
    LiveSessionExists {
        /// The live session.
        session_id: ExamSessionId,
    },
    /// The session was not in the state the transition starts from (another change won the race).
    #[error("session is {actual}, not {expected}")]
    StateConflict {
        /// The state the transition expected.
        expected: SessionState,
        /// The state it is in.
        actual: SessionState,
    },
    /// The database failed.
    #[error("store: {0}")]
    Backend(String),
}

/// The boundary between the session service and its storage.
#[allow(async_fn_in_trait)]
pub trait SessionStore {
    /// Stores a new session and its first event. Fails with `LiveSessionExists` if the user has a live session
    /// (enforced by the database, so it holds under racing requests).
    async fn insert(&self, rec: &SessionRecord, event: &NewEvent) -> Result<(), StoreError>;
    /// One session by id (proctors, the service itself).
    async fn get(&self, id: &ExamSessionId) -> Result<Option<SessionRecord>, StoreError>;
    /// One session by (id, user), in one query: a session of another user is exactly as absent as a random id.
    async fn get_owned(&self, id: &ExamSessionId, user: &UserId) -> Result<Option<SessionRecord>, StoreError>;
    /// The user's live session, if any.
    async fn live_for_user(&self, user: &UserId) -> Result<Option<SessionRecord>, StoreError>;
    /// Sessions matching a filter, newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<SessionRecord>, StoreError>;
    /// Applies a transition: in one transaction, sets `state = t.to` and the `changes` where the state is still
    /// `t.from` (else `StateConflict`), and appends `event`. Returns the updated record.
    async fn apply(
        &self,
        id: &ExamSessionId,
        t: &Transition,
        changes: &SessionChanges,
        event: &NewEvent,
    ) -> Result<SessionRecord, StoreError>;
    /// Applies consecutive transitions of one session (each `from` the previous `to`) in one transaction, each a
    /// compare-and-swap stored with its event, as [`SessionStore::apply`] would one by one; all or none. Returns the
    /// record after each.
    async fn apply_chain(
        &self,
        id: &ExamSessionId,
        steps: &[(Transition, SessionChanges, NewEvent)],
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Sets the progress while the session is in `expected` (else `StateConflict`), with a `Progress` event.
    async fn set_progress(
        &self,
        id: &ExamSessionId,
        expected: SessionState,
        progress: &Progress,
        at: i64,
    ) -> Result<SessionRecord, StoreError>;
    /// Records that a `failed` session's environment was released after the failure (its teardown ran out of budget
    /// then and the reconciler finished it), with a `Reconcile` event. `StateConflict` if it is not a failed session
    /// still waiting for its release.
    async fn mark_released(&self, id: &ExamSessionId, at: i64, event: &NewEvent) -> Result<SessionRecord, StoreError>;
    /// Stores (or replaces) a session's result.
    async fn set_result(&self, id: &ExamSessionId, result: &ExamResult, at: i64) -> Result<(), StoreError>;
    /// A session's result, if one was stored.
    async fn result(&self, id: &ExamSessionId) -> Result<Option<ExamResult>, StoreError>;
    /// Stores a session's workspace (flags, visited tasks, notepad, terminals), replacing the previous one.
    /// `NotFound` for an unknown session.
    async fn set_workspace(&self, id: &ExamSessionId, workspace: &Workspace, at: i64) -> Result<(), StoreError>;
    /// A session's workspace; `None` before anything was stored.
    async fn workspace(&self, id: &ExamSessionId) -> Result<Option<Workspace>, StoreError>;
    /// Appends an event (attach, takeover, proctor action...).
    async fn append_event(&self, id: &ExamSessionId, event: &NewEvent) -> Result<(), StoreError>;
    /// A session's events, oldest first.
    async fn events(&self, id: &ExamSessionId) -> Result<Vec<EventRecord>, StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The user's attempts at an exam: their sessions of it that reached `active` (`started_at` is set) and did not
    /// end `failed`.
    async fn attempts_used(&self, user: &UserId, exam: &ExamId) -> Result<u32, StoreError>;
    /// Appends a grant of extra attempts.
    async fn grant_attempts(&self, grant: &AttemptGrant) -> Result<(), StoreError>;
    /// The grants for (user, exam), oldest first.
    async fn attempt_grants(&self, user: &UserId, exam: &ExamId) -> Result<Vec<AttemptGrant>, StoreError>;
    /// Stores a new browser sign-in, and deletes the sign-ins that expired before it was made.
    async fn insert_sign_in(&self, rec: &SignInRecord) -> Result<(), StoreError>;
    /// A browser sign-in by the hash of its id, valid or not.
    async fn sign_in(&self, id_hash: &str) -> Result<Option<SignInRecord>, StoreError>;
    /// Marks a sign-in signed out at `at`. True when it was signed in until now; false when it is unknown or was
    /// already signed out.
    async fn sign_out(&self, id_hash: &str, at: i64) -> Result<bool, StoreError>;
}

/// The backends, for dispatch without trait objects. Cheap to clone (clones share the connections).
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite in the data directory.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL, shared by every replica.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStore),
}

/// Where the store is: `--database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// SQLite, in a file.
    Sqlite(std::path::PathBuf),
    /// PostgreSQL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `--database`: `postgres://…`/`postgresql://…`, `sqlite://PATH` or a plain path (SQLite).
    pub fn parse(s: &str) -> Result<DatabaseUrl, StoreError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(s.to_owned()));
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if s.is_empty() || s.contains("://") {
            return Err(StoreError::Backend(format!(
                "database {:?}: expected postgres://…, postgresql://…, sqlite://PATH or a file path",
                s.split_once('@').map_or(s, |(_, host)| host)
            )));
        }
        Ok(DatabaseUrl::Sqlite(s.into()))
    }

    /// A description for logs (no password).
    pub fn describe(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite {}", p.display()),
            DatabaseUrl::Postgres(url) => match url.split_once("://").and_then(|(_, r)| r.rsplit_once('@')) {
                Some((_, host)) => format!("postgres {host}"),
                None => format!("postgres {}", url.split_once("://").map_or("", |(_, r)| r)),
            },
        }
    }
}

impl Store {
    /// Opens the store at `url`.
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        match url {
            DatabaseUrl::Sqlite(path) => Ok(Store::Sqlite(sqlite::SqliteStore::open(path).await?)),
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(url) => Ok(Store::Postgres(postgres::PgStore::connect(url).await?)),
            #[cfg(not(feature = "postgres"))]
            DatabaseUrl::Postgres(_) => {
                Err(StoreError::Backend("this build has no PostgreSQL support (Cargo feature `postgres`)".to_owned()))
            }
        }
    }

    /// Which backend (`sqlite` or `postgres`).
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
        }
    }

    /// Session changes made by other replicas, for a backend that several replicas share (PostgreSQL); `None` for
    /// one that only this process uses (SQLite).
    pub async fn changes(&self) -> Result<Option<Changes>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.changes().await.map(Some),
        }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// A change another replica made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This session changed: read it from the store.
    Session(ExamSessionId),
    /// The notifications were interrupted (the listener reconnected) and some may be lost: read every open session
    /// again.
    Resync,
}

/// The feed of [`Change`]s (see [`Store::changes`]).
#[derive(Debug)]
pub struct Changes {
    rx: tokio::sync::mpsc::Receiver<Change>,
}

impl Changes {
    /// The next change; `None` when the feed ended.
    pub async fn next(&mut self) -> Option<Change> {
        self.rx.recv().await
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $e,
        }
    };
}

impl SessionStore for Store {
    async fn insert(&self, rec: &SessionRecord, event: &NewEvent) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert(rec, event).await)
    }
    async fn get(&self, id: &ExamSessionId) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self, s => s.get(id).await)
    }
    async fn get_owned(&self, id: &ExamSessionId, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self, s => s.get_owned(id, user).await)
    }
    async fn live_for_user(&self, user: &UserId) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(self, s => s.live_for_user(user).await)
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<SessionRecord>, StoreError> {
        dispatch!(self, s => s.list(filter).await)
    }
    async fn apply(
        &self,
        id: &ExamSessionId,
        t: &Transition,
        changes: &SessionChanges,
        event: &NewEvent,
    ) -> Result<SessionRecord, StoreError> {
        dispatch!(self, s => s.apply(id, t, changes, event).await)
    }
    async fn apply_chain(
        &self,
        id: &ExamSessionId,
        steps: &[(Transition, SessionChanges, NewEvent)],
    ) -> Result<Vec<SessionRecord>, StoreError> {
        dispatch!(self, s => s.apply_chain(id, steps).await)
    }
    async fn set_progress(
        &self,
        id: &ExamSessionId,
        expected: SessionState,
        progress: &Progress,
        at: i64,
    ) -> Result<SessionRecord, StoreError> {
        dispatch!(self, s => s.set_progress(id, expected, progress, at).await)
    }
    async fn mark_released(&self, id: &ExamSessionId, at: i64, event: &NewEvent) -> Result<SessionRecord, StoreError> {
        dispatch!(self, s => s.mark_released(id, at, event).await)
    }
    async fn set_result(&self, id: &ExamSessionId, result: &ExamResult, at: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_result(id, result, at).await)
    }
    async fn result(&self, id: &ExamSessionId) -> Result<Option<ExamResult>, StoreError> {
        dispatch!(self, s => s.result(id).await)
    }
    async fn set_workspace(&self, id: &ExamSessionId, workspace: &Workspace, at: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_workspace(id, workspace, at).await)
    }
    async fn workspace(&self, id: &ExamSessionId) -> Result<Option<Workspace>, StoreError> {
        dispatch!(self, s => s.workspace(id).await)
    }
    async fn append_event(&self, id: &ExamSessionId, event: &NewEvent) -> Result<(), StoreError> {
        dispatch!(self, s => s.append_event(id, event).await)
    }
    async fn events(&self, id: &ExamSessionId) -> Result<Vec<EventRecord>, StoreError> {
        dispatch!(self, s => s.events(id).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
    async fn attempts_used(&self, user: &UserId, exam: &ExamId) -> Result<u32, StoreError> {
        dispatch!(self, s => s.attempts_used(user, exam).await)
    }
    async fn grant_attempts(&self, grant: &AttemptGrant) -> Result<(), StoreError> {
        dispatch!(self, s => s.grant_attempts(grant).await)
    }
    async fn attempt_grants(&self, user: &UserId, exam: &ExamId) -> Result<Vec<AttemptGrant>, StoreError> {
        dispatch!(self, s => s.attempt_grants(user, exam).await)
    }
    async fn insert_sign_in(&self, rec: &SignInRecord) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_sign_in(rec).await)
    }
    async fn sign_in(&self, id_hash: &str) -> Result<Option<SignInRecord>, StoreError> {
        dispatch!(self, s => s.sign_in(id_hash).await)
    }
    async fn sign_out(&self, id_hash: &str, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.sign_out(id_hash, at).await)
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn database_urls_parse_and_describe_without_their_password() {
        let pg = DatabaseUrl::parse("postgres://examroom:s3cret@db.example.org:5432/examroom").unwrap();
        assert_eq!(pg, DatabaseUrl::Postgres("postgres://examroom:s3cret@db.example.org:5432/examroom".into()));
        assert_eq!(pg.describe(), "postgres db.example.org:5432/examroom");
        assert!(matches!(
            DatabaseUrl::parse("postgresql:///examroom?host=/run/postgresql"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(
            DatabaseUrl::parse("/var/lib/examroom/x.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/examroom/x.db".into())
        );
        assert_eq!(DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(), DatabaseUrl::Sqlite("/tmp/x.db".into()));
        for bad in ["", "mysql://u:s3cret@h/db"] {
            let e = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
