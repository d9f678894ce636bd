//! The server's clock decides: the deadline of an active session and the start grace of a ready one fire on time
//! (to within the scheduler's resolution), whatever the client does.

use std::time::Duration;

use examroom_core::{SessionState, Trigger};
use examroom_store::{SessionChanges, SessionRecord, SessionStore};

use crate::service::SessionService;

/// The timer a session in its state needs: when (unix ms) and what fires then. `None` for states without one.
pub fn due(rec: &SessionRecord) -> Option<(i64, Trigger)> {
    match rec.state {
        SessionState::Ready => rec.ready_at.map(|r| (r + rec.start_grace_ms, Trigger::StartGraceExpired)),
        SessionState::Active => rec.deadline.map(|d| (d, Trigger::DeadlinePassed)),
        _ => None,
    }
}

/// Waits until the clock reads `due_ms` (at once if it has passed).
pub async fn wait_until(clock: crate::Clock, due_ms: i64) {
    tokio::time::sleep_until(clock.instant_at(due_ms)).await;
}

/// Arms the timer that a session in its state needs (none for other states). A timer that finds the session moved
/// on does nothing.
pub(crate) fn arm(svc: SessionService, rec: &SessionRecord) {
    let Some((due, trigger)) = due(rec) else { return };
    let (id, state) = (rec.id, rec.state);
    tokio::spawn(async move {
        wait_until(svc.clock(), due).await;
        loop {
            let cur = match svc.inner.store.get(&id).await {
                Ok(Some(cur)) => cur,
                Ok(None) => return,
                Err(e) => {
                    // The store is down: try again shortly rather than lose the deadline.
                    tracing::warn!(session_id = %id, error = %e, "timer could not read the session");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let still_due = cur.state == state
                && match state {
                    SessionState::Active => cur.deadline == Some(due),
                    _ => cur.ready_at.map(|r| r + cur.start_grace_ms) == Some(due),
                };
            if !still_due {
                return;
            }
            match svc.apply(&cur, trigger, SessionChanges::default(), "system").await {
                Ok(_) => return,
                Err(examroom_core::DomainError::IllegalTransition { .. }) => return,
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "timer transition failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use examroom_core::{EnvironmentId, ExamId, ExamSessionId, UserId};
    use std::time::Duration;

    fn record(state: SessionState, now: i64) -> SessionRecord {
        SessionRecord {
            id: ExamSessionId::new_v4(),
            user_id: UserId::parse("alice").unwrap(),
            exam_id: ExamId::parse("x").unwrap(),
            environment_id: EnvironmentId::new_v4(),
            state,
            progress: None,
            created_at: now,
            ready_at: Some(now),
            started_at: Some(now),
            deadline: Some(now + 90 * 60_000),
            duration_ms: 90 * 60_000,
            start_grace_ms: 10 * 60_000,
            provisioning_timeout_ms: 60_000,
            ended_at: None,
            end_reason: None,
            failure: None,
            resources_released_at: None,
            graded: None,
            updated_at: now,
            exam_version: None,
        }
    }

    #[test]
    fn each_state_has_its_timer() {
        let r = record(SessionState::Active, 1_000);
        assert_eq!(due(&r), Some((1_000 + 90 * 60_000, Trigger::DeadlinePassed)));
        let r = record(SessionState::Ready, 1_000);
        assert_eq!(due(&r), Some((1_000 + 10 * 60_000, Trigger::StartGraceExpired)));
        for s in
            [SessionState::Created, SessionState::Provisioning, SessionState::Terminating, SessionState::Terminated]
        {
            assert_eq!(due(&record(s, 0)), None);
        }
    }

    /// Under paused time: a 90-minute deadline fires at 90 minutes, not a millisecond before, and to the millisecond.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_fires_exactly_on_time() {
        let clock = crate::Clock::system();
        let rec = record(SessionState::Active, clock.now_ms());
        let (at, _) = due(&rec).unwrap();
        let fired = std::sync::Arc::new(std::sync::Mutex::new(None));
        let f = fired.clone();
        tokio::spawn(async move {
            wait_until(clock, at).await;
            *f.lock().unwrap() = Some(clock.now_ms());
        });
        tokio::time::sleep(Duration::from_millis(90 * 60_000 - 1)).await;
        assert_eq!(*fired.lock().unwrap(), None, "fired early");
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert_eq!(*fired.lock().unwrap(), Some(at));
        // A deadline already past (it fell due while the server was down) fires at once.
        let t0 = clock.now_ms();
        wait_until(clock, t0 - 60_000).await;
        assert_eq!(clock.now_ms(), t0);
    }
}
