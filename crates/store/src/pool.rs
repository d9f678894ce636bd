//! Warm pools in the store: environments made ahead of demand ([`PoolEntry`]), claims, and proctors' announcements
//! ([`PoolSchedule`]), behind the [`PoolStore`] boundary.
//!
//! Rules every backend keeps:
//! - **a claim is a compare-and-swap** (`ready` → `claimed`) in the same transaction as the insert of the session that
//!   takes the environment: either both are stored or neither;
//! - **a claimed environment never returns to the pool**: a claimed entry never changes and is never deleted, and
//!   the only transitions are `filling` → `ready` | `retiring` and `ready` → `claimed` | `retiring`;
//! - **two sessions never share an environment** (a unique index on the sessions' environment ids).

use examroom_core::{EnvironmentId, ExamId, ExamSessionId};
use serde::{Deserialize, Serialize};

use crate::{NewEvent, SessionRecord, Store, StoreError};

/// Where a pooled environment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    /// Being made and set up.
    Filling,
    /// Made and set up; a candidate's session may claim it.
    Ready,
    /// A session took it (for good).
    Claimed,
    /// Being destroyed (expired, out of date, lost, evicted or surplus); deleted once it is gone.
    Retiring,
}

impl PoolState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolState::Filling => "filling",
            PoolState::Ready => "ready",
            PoolState::Claimed => "claimed",
            PoolState::Retiring => "retiring",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<PoolState> {
        Some(match s {
            "filling" => PoolState::Filling,
            "ready" => PoolState::Ready,
            "claimed" => PoolState::Claimed,
            "retiring" => PoolState::Retiring,
            _ => return None,
        })
    }
}

/// One pooled environment. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    /// The environment (a session that claims it gets this `execution_environment_id`).
    pub environment_id: EnvironmentId,
    /// The label of the server whose runtime holds it; a server claims and retires only its own.
    pub owner: String,
    /// The exam it was prepared for.
    pub exam_id: ExamId,
    /// The exam's digest when it was prepared (`Exam::digest`); another digest means it is out of date.
    pub exam_digest: String,
    /// Its state.
    pub state: PoolState,
    /// Its making began.
    pub created_at: i64,
    /// It became ready.
    pub ready_at: Option<i64>,
    /// A session claimed it.
    pub claimed_at: Option<i64>,
    /// The session that claimed it.
    pub session_id: Option<ExamSessionId>,
}

impl PoolEntry {
    /// A new entry, `filling`.
    pub fn filling(
        environment_id: EnvironmentId,
        owner: &str,
        exam_id: ExamId,
        exam_digest: &str,
        created_at: i64,
    ) -> PoolEntry {
        PoolEntry {
            environment_id,
            owner: owner.to_string(),
            exam_id,
            exam_digest: exam_digest.to_string(),
            state: PoolState::Filling,
            created_at,
            ready_at: None,
            claimed_at: None,
            session_id: None,
        }
    }
}

/// What a claim may take: a `ready` environment of `owner`, prepared for the session's exam under `exam_digest`,
/// made after `made_after` (older ones passed their maximum age).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    /// This server's label.
    pub owner: &'a str,
    /// The exam's digest now.
    pub exam_digest: &'a str,
    /// Entries made at or before this (unix ms) are too old to be claimed.
    pub made_after: i64,
    /// When the claim happens (unix ms).
    pub at: i64,
}

/// A proctor's announcement, to store: `candidates` will start `exam_id` at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPoolSchedule {
    /// The exam.
    pub exam_id: ExamId,
    /// How many candidates (1 to 10000).
    pub candidates: u32,
    /// When they start (unix ms).
    pub at: i64,
    /// When the pool starts filling for them (unix ms), at most `at`.
    pub fill_from: i64,
    /// Until when the announcement holds (unix ms), after `at`.
    pub until: i64,
    /// When it was made (unix ms).
    pub created_at: i64,
    /// Who made it: `proctor:<id>`.
    pub actor: String,
}

/// A stored announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSchedule {
    /// Its id.
    pub id: i64,
    /// What was announced.
    #[serde(flatten)]
    pub schedule: NewPoolSchedule,
    /// A proctor cancelled it (unix ms).
    pub cancelled_at: Option<i64>,
}

/// The boundary between the pools and their storage.
#[allow(async_fn_in_trait)]
pub trait PoolStore {
    /// Records a new pooled environment (`filling`), before it is made.
    async fn insert_pool_entry(&self, entry: &PoolEntry) -> Result<(), StoreError>;
    /// `filling` → `ready` at `at`. False when the entry is no longer `filling` (it was retired meanwhile) or gone.
    async fn pool_entry_ready(&self, env: &EnvironmentId, at: i64) -> Result<bool, StoreError>;
    /// Claims the oldest matching `ready` environment of `session`'s exam and stores the session with that
    /// environment, and its first event, in one transaction. `None` (and nothing stored) when there is none. Fails like
    /// [`SessionStore::insert`](crate::SessionStore::insert), storing nothing (the environment stays in the pool).
    async fn insert_claiming(
        &self,
        session: &SessionRecord,
        event: &NewEvent,
        claim: &Claim<'_>,
    ) -> Result<Option<EnvironmentId>, StoreError>;
    /// Moves an entry of `owner` that is in one of `from` to `retiring`; returns the state it was in, or `None` when
    /// it was in none of them (claimed meanwhile, say) or does not exist.
    async fn retire_pool_entry(
        &self,
        env: &EnvironmentId,
        owner: &str,
        from: &[PoolState],
    ) -> Result<Option<PoolState>, StoreError>;
    /// Deletes an entry whose environment is gone. A claimed entry is never deleted; false when there was none to
    /// delete.
    async fn delete_pool_entry(&self, env: &EnvironmentId) -> Result<bool, StoreError>;
    /// The entries not claimed (`filling`, `ready`, `retiring`): of one owner, or of all. Oldest first.
    async fn pool_entries(&self, owner: Option<&str>) -> Result<Vec<PoolEntry>, StoreError>;
    /// The entry a session claimed, if it took one.
    async fn pool_claim_of(&self, session: &ExamSessionId) -> Result<Option<PoolEntry>, StoreError>;
    /// Claims of `exam`'s environments of `owner` at or after `since` (unix ms).
    async fn pool_claims_since(&self, owner: &str, exam: &ExamId, since: i64) -> Result<u32, StoreError>;
    /// Stores an announcement.
    async fn insert_pool_schedule(&self, schedule: &NewPoolSchedule) -> Result<PoolSchedule, StoreError>;
    /// The announcements not cancelled that hold after `after` (unix ms), by `at`.
    async fn pool_schedules(&self, after: i64) -> Result<Vec<PoolSchedule>, StoreError>;
    /// Cancels an announcement of `exam` at `at`; false when there is no such announcement not yet cancelled.
    async fn cancel_pool_schedule(&self, exam: &ExamId, id: i64, at: i64) -> Result<bool, StoreError>;
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

impl PoolStore for Store {
    async fn insert_pool_entry(&self, entry: &PoolEntry) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_pool_entry(entry).await)
    }
    async fn pool_entry_ready(&self, env: &EnvironmentId, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.pool_entry_ready(env, at).await)
    }
    async fn insert_claiming(
        &self,
        session: &SessionRecord,
        event: &NewEvent,
        claim: &Claim<'_>,
    ) -> Result<Option<EnvironmentId>, StoreError> {
        dispatch!(self, s => s.insert_claiming(session, event, claim).await)
    }
    async fn retire_pool_entry(
        &self,
        env: &EnvironmentId,
        owner: &str,
        from: &[PoolState],
    ) -> Result<Option<PoolState>, StoreError> {
        dispatch!(self, s => s.retire_pool_entry(env, owner, from).await)
    }
    async fn delete_pool_entry(&self, env: &EnvironmentId) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_pool_entry(env).await)
    }
    async fn pool_entries(&self, owner: Option<&str>) -> Result<Vec<PoolEntry>, StoreError> {
        dispatch!(self, s => s.pool_entries(owner).await)
    }
    async fn pool_claim_of(&self, session: &ExamSessionId) -> Result<Option<PoolEntry>, StoreError> {
        dispatch!(self, s => s.pool_claim_of(session).await)
    }
    async fn pool_claims_since(&self, owner: &str, exam: &ExamId, since: i64) -> Result<u32, StoreError> {
        dispatch!(self, s => s.pool_claims_since(owner, exam, since).await)
    }
    async fn insert_pool_schedule(&self, schedule: &NewPoolSchedule) -> Result<PoolSchedule, StoreError> {
        dispatch!(self, s => s.insert_pool_schedule(schedule).await)
    }
    async fn pool_schedules(&self, after: i64) -> Result<Vec<PoolSchedule>, StoreError> {
        dispatch!(self, s => s.pool_schedules(after).await)
    }
    async fn cancel_pool_schedule(&self, exam: &ExamId, id: i64, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.cancel_pool_schedule(exam, id, at).await)
    }
}
