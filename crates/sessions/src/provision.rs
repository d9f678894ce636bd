//! Provisioning: `created → provisioning → ready`, in the background, with real steps, bounded by the exam's
//! `provisioning_timeout`. A backend error fails the session at once, with a code, a message and guidance for the
//! candidate, and a detail for the proctor.

use examroom_core::{FailureCode, Progress, SessionState, Trigger};
use examroom_exams::{Exam, Script};
use std::time::Duration;

use examroom_runtime::{Base, EnvironmentSpec, EnvironmentState, ExecRequest, ExecutionRuntime, Limits, RuntimeError};
use examroom_store::{SessionChanges, SessionRecord, SessionStore};

use crate::service::SessionService;

/// Steps of provisioning: create the environment, one per setup script, check the terminal.
fn total_steps(svc: &SessionService, rec: &SessionRecord) -> u32 {
    let setups = svc.catalog().get(&rec.exam_id).map(|e| e.setup_steps().len()).unwrap_or(0);
    2 + setups as u32
}

/// How long one setup script may run at most (and never past the provisioning deadline).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Drives a session's provisioning in a background task (once: a session already being driven is left alone).
pub(crate) fn spawn(svc: SessionService, rec: SessionRecord) {
    svc.drive(rec, |svc, rec| async move { run(&svc, rec).await });
}

/// The environment an exam asks for.
pub fn environment_spec(exam: &Exam, rec: &SessionRecord) -> Result<EnvironmentSpec, String> {
    let env = &exam.environment;
    let base = Base::parse(&env.base).map_err(|e| format!("the exam's base {:?}: {e}", env.base))?;
    let memory = env.memory_bytes;
    let limits = Limits {
        memory_bytes: memory,
        pids: env.pids,
        cpu_millicores: env.cpu_millicores,
        disk_bytes: env.disk_bytes.unwrap_or(memory / 2),
    };
    let mut spec = EnvironmentSpec::new(rec.environment_id);
    spec.base = base;
    spec.limits = limits;
    Ok(spec)
}

fn classify(e: &RuntimeError) -> FailureCode {
    match e {
        RuntimeError::Timeout { .. } => FailureCode::ProvisioningTimeout,
        RuntimeError::Io { .. } | RuntimeError::OutOfResources { .. } | RuntimeError::Protocol(_) => {
            FailureCode::BackendUnavailable
        }
        _ => FailureCode::ProvisioningFailed,
    }
}

async fn progress(svc: &SessionService, rec: &SessionRecord, step: u32, message: &str) -> Option<SessionRecord> {
    let p = Progress::new(step, total_steps(svc, rec), message);
    match svc.inner.store.set_progress(&rec.id, SessionState::Provisioning, &p, svc.now_ms()).await {
        Ok(new) => {
            svc.publish(&new);
            Some(new)
        }
        Err(e) => {
            tracing::warn!(session_id = %rec.id, error = %e, "provisioning progress");
            None
        }
    }
}

async fn run(svc: &SessionService, rec: SessionRecord) {
    let rec = if rec.state == SessionState::Created {
        let first = Progress::new(1, total_steps(svc, &rec), "Creating your isolated environment");
        let changes = SessionChanges { progress: Some(Some(first)), ..SessionChanges::default() };
        match svc.apply(&rec, Trigger::ProvisioningStarted, changes, "system").await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(session_id = %rec.id, error = %e, "could not start provisioning");
                return;
            }
        }
    } else if rec.state == SessionState::Provisioning {
        rec
    } else {
        return;
    };
    let due = svc.clock().instant_at(rec.created_at + rec.provisioning_timeout_ms);
    let outcome = tokio::time::timeout_at(due, steps(svc, &rec)).await;
    // The latest stored record: steps change its progress.
    let latest = match svc.inner.store.get(&rec.id).await {
        Ok(Some(r)) => r,
        _ => rec.clone(),
    };
    let result = match outcome {
        Ok(Ok(())) => {
            let changes =
                SessionChanges { ready_at: Some(svc.now_ms()), progress: Some(None), ..SessionChanges::default() };
            svc.apply(&latest, Trigger::ProvisioningSucceeded, changes, "system").await
        }
        Ok(Err((code, detail))) => svc.fail(&latest, code, detail).await,
        Err(_) => {
            let secs = rec.provisioning_timeout_ms / 1000;
            let detail = format!(
                "provisioning did not finish within {secs} s (at: {})",
                latest.progress.as_ref().map(|p| p.message.as_str()).unwrap_or("start")
            );
            svc.fail(&latest, FailureCode::ProvisioningTimeout, detail).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(session_id = %rec.id, error = %e, "end of provisioning");
    }
}

/// Runs a script (a setup script, a check) as root inside the environment: its interpreter (from its `#!` line, else
/// `/bin/sh`) reads the script on standard input, so the script is never stored inside.
pub fn script_request(script: &Script, timeout: Duration, output_limit: u64) -> ExecRequest {
    ExecRequest {
        argv: script.interpreter().into_iter().map(String::from).collect(),
        env: vec![("HOME".into(), "/root".into()), ("LANG".into(), "C.UTF-8".into())],
        cwd: "/root".into(),
        stdin: script.body.as_bytes().to_vec(),
        timeout,
        output_limit,
    }
}

/// The last `max` bytes of a stream, as text.
fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

async fn steps(svc: &SessionService, rec: &SessionRecord) -> Result<(), (FailureCode, String)> {
    let exam = svc.catalog().get(&rec.exam_id).ok_or_else(|| {
        (FailureCode::ProvisioningFailed, format!("exam {} is no longer in the catalog", rec.exam_id))
    })?;
    let spec = environment_spec(exam, rec).map_err(|d| (FailureCode::ProvisioningFailed, d))?;
    let rt = &svc.inner.runtime;
    // A provisioning resumed after a restart may find the previous attempt's environment: start clean.
    match rt.destroy(&rec.environment_id).await {
        Ok(_) | Err(RuntimeError::NotFound) => {}
        Err(e) => return Err((FailureCode::BackendUnavailable, format!("clearing an earlier attempt: {e}"))),
    }
    rt.create(spec).await.map_err(|e| (classify(&e), format!("create environment: {e}")))?;
    let setups = exam.setup_steps();
    let n = setups.len();
    for (i, (task, script)) in setups.into_iter().enumerate() {
        progress(svc, rec, 2 + i as u32, &format!("Preparing task {} of {n}", i + 1)).await;
        let left = Duration::from_millis((rec.created_at + rec.provisioning_timeout_ms - svc.now_ms()).max(1) as u64);
        let req = script_request(script, SETUP_TIMEOUT.min(left), 64 * 1024);
        let out = rt.exec(&rec.environment_id, req).await.map_err(|e| {
            (classify(&e), format!("setup of task {} ({}, {}): {e}", i + 1, task.id, script.path.display()))
        })?;
        if out.exit_code != Some(0) {
            let how = match (out.exit_code, out.signal, out.timed_out) {
                (_, _, true) => "timed out".to_string(),
                (Some(c), _, _) => format!("exited with status {c}"),
                (None, Some(s), _) => format!("was killed by signal {s}"),
                _ => "failed".to_string(),
            };
            let tail = tail(&out.stderr, 2048);
            return Err((
                FailureCode::ProvisioningFailed,
                format!("setup of task {} ({}, {}) {how}; stderr: {tail}", i + 1, task.id, script.path.display()),
            ));
        }
    }
    progress(svc, rec, 2 + n as u32, "Checking that your terminal answers").await;
    match rt.status(&rec.environment_id).await {
        Ok(st) if st.state == EnvironmentState::Running => Ok(()),
        Ok(st) => Err((FailureCode::EnvironmentLost, format!("environment not running after create: {:?}", st.state))),
        Err(e) => Err((classify(&e), format!("environment status: {e}"))),
    }
}
