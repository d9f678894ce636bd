//! The end of a session: `terminating` (access has stopped; teardown is retried until it is verified) then
//! `terminated`; and the release of a failing session's environment.

use std::time::Duration;

use examroom_core::{Progress, SessionState, Trigger};
use examroom_runtime::{ExecutionRuntime, RuntimeError};
use examroom_store::{SessionChanges, SessionRecord, SessionStore};

use crate::service::SessionService;

/// Drives a terminating session to `terminated` in a background task (once).
pub(crate) fn spawn(svc: SessionService, rec: SessionRecord) {
    svc.drive(rec, |svc, rec| async move { run(&svc, rec).await });
}

async fn step(svc: &SessionService, rec: &SessionRecord, step: u32, total: u32, message: &str) {
    let p = Progress::new(step, total, message);
    match svc.inner.store.set_progress(&rec.id, SessionState::Terminating, &p, svc.now_ms()).await {
        Ok(new) => svc.publish(&new),
        Err(e) => tracing::warn!(session_id = %rec.id, error = %e, "ending progress"),
    }
}

async fn run(svc: &SessionService, rec: SessionRecord) {
    if rec.state != SessionState::Terminating {
        return;
    }
    // Access stopped when the session entered `terminating`: every entry point refuses a terminating session.
    step(svc, &rec, 1, 2, "Access to your environment has stopped").await;
    step(svc, &rec, 2, 2, "Releasing your environment").await;
    let released = release(svc, &rec, Duration::MAX).await;
    let latest = match svc.inner.store.get(&rec.id).await {
        Ok(Some(r)) => r,
        _ => rec.clone(),
    };
    let changes = SessionChanges { resources_released_at: released, progress: Some(None), ..SessionChanges::default() };
    if let Err(e) = svc.apply(&latest, Trigger::TeardownVerified, changes, "system").await {
        tracing::warn!(session_id = %rec.id, error = %e, "could not record the end");
    }
}

/// Destroys a session's environment and waits for the runtime's verification, retrying with backoff within
/// `budget`. Returns when it was released (unix ms), or `None` if the budget ran out first.
pub(crate) async fn release(svc: &SessionService, rec: &SessionRecord, budget: Duration) -> Option<i64> {
    let start = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        match svc.inner.runtime.destroy(&rec.environment_id).await {
            Ok(report) if report.verified => return Some(svc.now_ms()),
            // Nothing of it exists: released.
            Err(RuntimeError::NotFound) => return Some(svc.now_ms()),
            Ok(_) => tracing::warn!(session_id = %rec.id, "teardown not verified yet; retrying"),
            Err(e) => tracing::warn!(session_id = %rec.id, error = %e, "teardown failed; retrying"),
        }
        if start.elapsed() + wait > budget {
            return None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}
