//! The end of a session: `terminating` (access has stopped; teardown is retried until it is verified) then
//! `terminated`; and the release of a failing session's environment.

use std::time::Duration;

use examroom_core::{CheckResult, EndReason, ExamResult, Progress, SessionState, Trigger};
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
    let graded = rec.graded == Some(true);
    let total = if graded { 3 } else { 2 };
    step(svc, &rec, 1, total, "Access to your environment has stopped").await;
    let result = if graded {
        step(svc, &rec, 2, total, "Grading your work").await;
        grade(svc, &rec).await
    } else {
        let max = svc.exam_of(&rec).map(|e| e.max_score()).unwrap_or(0);
        let why = match rec.end_reason {
            Some(EndReason::NotStarted) => "the exam was not started",
            Some(EndReason::TerminatedByProctor) => "a proctor ended the exam without grading",
            _ => "this end is not graded",
        };
        ExamResult::not_graded(max, why)
    };
    if let Err(e) = svc.inner.store.set_result(&rec.id, &result, svc.now_ms()).await {
        tracing::error!(session_id = %rec.id, error = %e, "could not store the result");
    }
    tracing::info!(session_id = %rec.id, status = result.status.as_str(), score = result.score, max = result.max_score, "result");
    step(svc, &rec, total, total, "Releasing your environment").await;
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
            // Its backend cannot be reached (Docker down): retrying now is no use; the reconciler releases it once
            // the backend answers again.
            Err(e @ RuntimeError::Unavailable(_)) => {
                tracing::warn!(session_id = %rec.id, error = %e, "teardown postponed: the backend is unavailable");
                return None;
            }
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

/// Grading as a whole must finish within this; a check that would run past it fails without running.
pub const GRADING_BUDGET: Duration = Duration::from_secs(300);

/// Grades a session: freezes the environment (nothing of the candidate's runs from here on), then runs every check
/// with a trusted view of the environment, each within its timeout and all within [`GRADING_BUDGET`]. A check that
/// hangs, crashes or cannot run counts as failed; an environment lost during grading gives `not_graded`.
pub(crate) async fn grade(svc: &SessionService, rec: &SessionRecord) -> ExamResult {
    let Some(exam) = svc.exam_of(rec) else {
        return ExamResult::not_graded(0, "the exam is no longer in the catalog");
    };
    let max = exam.max_score();
    let _ = svc.inner.store.set_result(&rec.id, &ExamResult::pending(max), svc.now_ms()).await;
    let rt = &svc.inner.runtime;
    match rt.freeze(&rec.environment_id).await {
        Ok(()) => {}
        Err(RuntimeError::Lost(_)) | Err(RuntimeError::NotFound) => {
            return ExamResult::not_graded(max, "the environment was lost before grading")
        }
        // A shell environment is frozen; a machine is booted again from its disk (and may fail to boot).
        Err(e) => {
            return ExamResult::not_graded(max, format!("the environment could not be prepared for grading: {e}"))
        }
    }
    let start = tokio::time::Instant::now();
    let mut checks = Vec::new();
    for task in &exam.tasks {
        for check in &task.checks {
            let left = GRADING_BUDGET.saturating_sub(start.elapsed());
            let mut result = CheckResult {
                task_id: task.id.clone(),
                check_id: check.id.clone(),
                description: check.description.clone(),
                passed: false,
                weight: check.weight,
                duration_ms: 0,
                error: None,
                output_tail: None,
            };
            if left.is_zero() {
                result.error = Some("grading ran out of time before this check".into());
                checks.push(result);
                continue;
            }
            let req = crate::provision::script_request(&check.script, check.timeout.min(left), 16 * 1024);
            match rt.exec_trusted(&rec.environment_id, req).await {
                Ok(out) => {
                    result.passed = out.exit_code == Some(0) && !out.timed_out;
                    result.duration_ms = out.duration.as_millis() as u64;
                    result.error = if out.timed_out {
                        Some(format!("timed out after {} s", check.timeout.as_secs()))
                    } else if out.exit_code.is_none() {
                        Some(format!("killed by signal {}", out.signal.unwrap_or(0)))
                    } else {
                        None
                    };
                    let mut text = out.stdout;
                    text.extend_from_slice(&out.stderr);
                    let from = text.len().saturating_sub(2048);
                    result.output_tail = Some(String::from_utf8_lossy(&text[from..]).into_owned());
                }
                Err(RuntimeError::Lost(_)) | Err(RuntimeError::NotFound) => {
                    return ExamResult::not_graded(max, "the environment was lost during grading")
                }
                Err(e) => result.error = Some(format!("could not run: {e}")),
            }
            checks.push(result);
        }
    }
    ExamResult::graded(max, checks, svc.now_ms())
}
