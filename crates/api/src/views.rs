//! Sessions and events as the API shows them. Times are RFC 3339 (UTC, milliseconds); `remaining_seconds` comes
//! from the server's clock.

use examroom_core::{Deadline, EndReason, Failure, Progress, Role, SessionState};
use examroom_store::{EventRecord, SessionRecord};
use serde::Serialize;

/// RFC 3339 in UTC, from unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&f).unwrap_or_default()
}

/// A session, as the contract names its fields.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionView {
    /// `exam_session_id`.
    pub exam_session_id: String,
    /// The same, as `id`.
    pub id: String,
    /// The candidate.
    pub user_id: String,
    /// `execution_environment_id`.
    pub execution_environment_id: String,
    /// The exam.
    pub exam_id: String,
    /// Lifecycle state.
    pub state: SessionState,
    /// Provisioning or teardown progress.
    pub progress: Option<Progress>,
    /// Times.
    pub created_at: String,
    /// Became ready.
    pub ready_at: Option<String>,
    /// Clock started.
    pub started_at: Option<String>,
    /// Clock ends.
    pub deadline: Option<String>,
    /// Seconds left by the server's clock (the full duration before the clock starts; 0 once ended).
    pub remaining_seconds: u64,
    /// The exam's duration in seconds.
    pub duration_seconds: u64,
    /// Ended.
    pub ended_at: Option<String>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// Why it failed (`detail` for proctors only).
    pub failure: Option<Failure>,
    /// Environment destroyed and verified.
    pub resources_released_at: Option<String>,
    /// The version of the exam definition the session started on (and keeps).
    pub exam_version: Option<String>,
}

/// Seconds left by the server's clock.
pub fn remaining_seconds(rec: &SessionRecord, now_ms: i64) -> u64 {
    match rec.state {
        SessionState::Active => match (rec.started_at, rec.deadline) {
            (Some(s), Some(d)) => {
                Deadline::new(s.max(0) as u64, (d - s).max(0) as u64).remaining_seconds(now_ms.max(0) as u64)
            }
            _ => 0,
        },
        SessionState::Created | SessionState::Provisioning | SessionState::Ready => {
            (rec.duration_ms.max(0) as u64).div_ceil(1000)
        }
        _ => 0,
    }
}

impl SessionView {
    /// The view of `rec` for a caller of `role` at `now_ms`.
    pub fn of(rec: &SessionRecord, now_ms: i64, role: Role) -> SessionView {
        SessionView {
            exam_session_id: rec.id.to_string(),
            id: rec.id.to_string(),
            user_id: rec.user_id.to_string(),
            execution_environment_id: rec.environment_id.to_string(),
            exam_id: rec.exam_id.to_string(),
            state: rec.state,
            progress: rec.progress.clone(),
            created_at: rfc3339(rec.created_at),
            ready_at: rec.ready_at.map(rfc3339),
            started_at: rec.started_at.map(rfc3339),
            deadline: rec.deadline.map(rfc3339),
            remaining_seconds: remaining_seconds(rec, now_ms),
            duration_seconds: (rec.duration_ms.max(0) as u64).div_ceil(1000),
            ended_at: rec.ended_at.map(rfc3339),
            end_reason: rec.end_reason,
            failure: rec.failure.as_ref().map(|f| if role == Role::Proctor { f.clone() } else { f.for_candidate() }),
            resources_released_at: rec.resources_released_at.map(rfc3339),
            exam_version: rec.exam_version.clone(),
        }
    }
}

/// An audit event.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Order.
    pub seq: i64,
    /// When.
    pub at: String,
    /// What kind.
    pub kind: &'static str,
    /// Transition from.
    pub from: Option<SessionState>,
    /// Transition to.
    pub to: Option<SessionState>,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
    /// More.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl EventView {
    /// The view of a stored event.
    pub fn of(e: &EventRecord) -> EventView {
        EventView {
            seq: e.seq,
            at: rfc3339(e.event.at),
            kind: e.event.kind.as_str(),
            from: e.event.from,
            to: e.event.to,
            reason: e.event.reason.clone(),
            actor: e.event.actor.clone(),
            data: e.event.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_400_000_123), "2025-11-29T07:06:40.123Z");
    }
}
