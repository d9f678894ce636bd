//! [`PoolStore`] on PostgreSQL: the tables `pool_environments` and `pool_schedules`
//! (`migrations-postgres/0005_pools.sql`).
//!
//! A claim runs in one transaction: it locks the oldest matching `ready` entry (`FOR UPDATE SKIP LOCKED`, so replicas
//! claiming at once take different entries instead of waiting on each other), inserts the session with that
//! environment, then moves the entry `ready` → `claimed` with a compare-and-swap on its state.

use examroom_core::{EnvironmentId, ExamId, ExamSessionId};
use sqlx::postgres::PgRow;

use super::{backend, column, corrupt, rollback, PgStore};
use crate::pool::{Claim, NewPoolSchedule, PoolEntry, PoolSchedule, PoolState, PoolStore};
use crate::{NewEvent, SessionRecord, StoreError};

/// The columns of `pool_environments`, in the order [`entry_from_row`] reads them.
const ENTRY_COLUMNS: &str =
    "environment_id, owner, exam_id, exam_digest, state, created_at, ready_at, claimed_at, session_id";

/// The columns of `pool_schedules`.
const SCHEDULE_COLUMNS: &str = "id, exam_id, candidates, at, fill_from, until, created_at, actor, cancelled_at";

impl PoolStore for PgStore {
    async fn insert_pool_entry(&self, entry: &PoolEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pool_environments (environment_id, owner, exam_id, exam_digest, state, created_at, ready_at, \
             claimed_at, session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.environment_id.to_string())
        .bind(entry.owner.as_str())
        .bind(entry.exam_id.as_str())
        .bind(entry.exam_digest.as_str())
        .bind(entry.state.as_str())
        .bind(entry.created_at)
        .bind(entry.ready_at)
        .bind(entry.claimed_at)
        .bind(entry.session_id.map(|s| s.to_string()))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn pool_entry_ready(&self, env: &EnvironmentId, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pool_environments SET state = 'ready', ready_at = $1 WHERE environment_id = $2 AND state = 'filling'",
        )
        .bind(at)
        .bind(env.to_string())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_claiming(
        &self,
        session: &SessionRecord,
        event: &NewEvent,
        claim: &Claim<'_>,
    ) -> Result<Option<EnvironmentId>, StoreError> {
        let mut tx = self.begin().await?;
        let done = async {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT environment_id FROM pool_environments \
                 WHERE owner = $1 AND exam_id = $2 AND state = 'ready' AND exam_digest = $3 AND created_at > $4 \
                 ORDER BY created_at, environment_id LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(claim.owner)
            .bind(session.exam_id.as_str())
            .bind(claim.exam_digest)
            .bind(claim.made_after)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let Some(env) = found else { return Ok(None) };
            let env = EnvironmentId::parse(&env).map_err(|e| corrupt("environment_id", e))?;
            let rec = SessionRecord { environment_id: env, ..session.clone() };
            self.insert_session(&mut tx, &rec, event).await?;
            let claimed = sqlx::query(
                "UPDATE pool_environments SET state = 'claimed', claimed_at = $1, session_id = $2 \
                 WHERE environment_id = $3 AND state = 'ready'",
            )
            .bind(claim.at)
            .bind(session.id.to_string())
            .bind(env.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if claimed.rows_affected() != 1 {
                // Unreachable while the row lock is held; refuse rather than hand out an environment twice.
                return Err(StoreError::Backend(format!("pooled environment {env} was claimed by another session")));
            }
            Ok(Some(env))
        }
        .await;
        match done {
            Ok(Some(env)) => {
                tx.commit().await.map_err(backend)?;
                Ok(Some(env))
            }
            other => {
                rollback(tx).await;
                other
            }
        }
    }

    async fn retire_pool_entry(
        &self,
        env: &EnvironmentId,
        owner: &str,
        from: &[PoolState],
    ) -> Result<Option<PoolState>, StoreError> {
        let mut tx = self.begin().await?;
        let done = async {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM pool_environments WHERE environment_id = $1 AND owner = $2 FOR UPDATE",
            )
            .bind(env.to_string())
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let Some(state) = state else { return Ok(None) };
            let state =
                PoolState::parse(&state).ok_or_else(|| corrupt("state", format!("unknown pool state {state:?}")))?;
            if !from.contains(&state) {
                return Ok(None);
            }
            if state != PoolState::Retiring {
                sqlx::query("UPDATE pool_environments SET state = 'retiring' WHERE environment_id = $1 AND state = $2")
                    .bind(env.to_string())
                    .bind(state.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            Ok(Some(state))
        }
        .await;
        match done {
            Ok(Some(state)) => {
                tx.commit().await.map_err(backend)?;
                Ok(Some(state))
            }
            other => {
                rollback(tx).await;
                other
            }
        }
    }

    async fn delete_pool_entry(&self, env: &EnvironmentId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM pool_environments WHERE environment_id = $1 AND state <> 'claimed'")
            .bind(env.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn pool_entries(&self, owner: Option<&str>) -> Result<Vec<PoolEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM pool_environments \
             WHERE state <> 'claimed' AND ($1::text IS NULL OR owner = $1) ORDER BY created_at, environment_id"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn pool_claim_of(&self, session: &ExamSessionId) -> Result<Option<PoolEntry>, StoreError> {
        sqlx::query(&format!("SELECT {ENTRY_COLUMNS} FROM pool_environments WHERE session_id = $1"))
            .bind(session.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|row| entry_from_row(&row))
            .transpose()
    }

    async fn pool_claims_since(&self, owner: &str, exam: &ExamId, since: i64) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pool_environments \
             WHERE owner = $1 AND exam_id = $2 AND state = 'claimed' AND claimed_at >= $3",
        )
        .bind(owner)
        .bind(exam.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn insert_pool_schedule(&self, s: &NewPoolSchedule) -> Result<PoolSchedule, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO pool_schedules (exam_id, candidates, at, fill_from, until, created_at, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(s.exam_id.as_str())
        .bind(i64::from(s.candidates))
        .bind(s.at)
        .bind(s.fill_from)
        .bind(s.until)
        .bind(s.created_at)
        .bind(s.actor.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        schedule_from_row(&row)
    }

    async fn pool_schedules(&self, after: i64) -> Result<Vec<PoolSchedule>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM pool_schedules WHERE cancelled_at IS NULL AND until > $1 ORDER BY at, id"
        ))
        .bind(after)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn cancel_pool_schedule(&self, exam: &ExamId, id: i64, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE pool_schedules SET cancelled_at = $1 WHERE id = $2 AND exam_id = $3 AND cancelled_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .bind(exam.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}

/// A row of `pool_environments` (selected as [`ENTRY_COLUMNS`]).
fn entry_from_row(row: &PgRow) -> Result<PoolEntry, StoreError> {
    let env: String = column(row, "environment_id")?;
    let exam: String = column(row, "exam_id")?;
    let state: String = column(row, "state")?;
    let session: Option<String> = column(row, "session_id")?;
    Ok(PoolEntry {
        environment_id: EnvironmentId::parse(&env).map_err(|e| corrupt("environment_id", e))?,
        owner: column(row, "owner")?,
        exam_id: ExamId::parse(&exam).map_err(|e| corrupt("exam_id", e))?,
        exam_digest: column(row, "exam_digest")?,
        state: PoolState::parse(&state).ok_or_else(|| corrupt("state", format!("unknown pool state {state:?}")))?,
        created_at: column(row, "created_at")?,
        ready_at: column(row, "ready_at")?,
        claimed_at: column(row, "claimed_at")?,
        session_id: session.as_deref().map(ExamSessionId::parse).transpose().map_err(|e| corrupt("session_id", e))?,
    })
}

/// A row of `pool_schedules` (selected as [`SCHEDULE_COLUMNS`]).
fn schedule_from_row(row: &PgRow) -> Result<PoolSchedule, StoreError> {
    let exam: String = column(row, "exam_id")?;
    let candidates: i64 = column(row, "candidates")?;
    Ok(PoolSchedule {
        id: column(row, "id")?,
        schedule: NewPoolSchedule {
            exam_id: ExamId::parse(&exam).map_err(|e| corrupt("exam_id", e))?,
            candidates: u32::try_from(candidates).map_err(|e| corrupt("candidates", e))?,
            at: column(row, "at")?,
            fill_from: column(row, "fill_from")?,
            until: column(row, "until")?,
            created_at: column(row, "created_at")?,
            actor: column(row, "actor")?,
        },
        cancelled_at: column(row, "cancelled_at")?,
    })
}
