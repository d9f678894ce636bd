//! The server's clock decides: the deadline of an active session and the start grace of a ready one fire on time
//! (to within the scheduler's resolution), whatever the client does.

use std::time::Duration;

use examroom_core::{SessionState, Trigger};
use examroom_store::{SessionChanges, SessionRecord, SessionStore};

use crate::service::SessionService;

/// Arms the timer that a session in its state needs (none for other states). A timer that finds the session moved
/// on does nothing.
pub(crate) fn arm(svc: SessionService, rec: &SessionRecord) {
    let (due, trigger) = match rec.state {
        SessionState::Ready => match rec.ready_at {
            Some(r) => (r + rec.start_grace_ms, Trigger::StartGraceExpired),
            None => return,
        },
        SessionState::Active => match rec.deadline {
            Some(d) => (d, Trigger::DeadlinePassed),
            None => return,
        },
        _ => return,
    };
    let (id, state) = (rec.id, rec.state);
    tokio::spawn(async move {
        tokio::time::sleep_until(svc.clock().instant_at(due)).await;
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
