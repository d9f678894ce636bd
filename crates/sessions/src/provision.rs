//! Provisioning: `created → provisioning → ready`, in the background, with real steps, bounded by the exam's
//! `provisioning_timeout`. A backend error fails the session at once, with a code, a message and guidance for the
//! candidate, and a detail for the proctor.
//!
//! Two paths, each a sequence of visible steps:
//! - **fresh**: create the environment, run every setup script (first the `prepare` ones, then the `claim` ones, which
//!   get the candidate's identity), check that the terminal answers;
//! - **claimed** (the session took a pooled environment, see [`crate::pool`]): check that the prepared environment
//!   answers, run only the `claim` setup scripts, done. Without `claim` scripts, `created → provisioning → ready` is
//!   stored in one transaction once the environment answered (each transition with its event, published in order).
//!   A prepared environment that no longer answers is destroyed and the session takes the fresh path with the same
//!   environment id: nothing fails because of a pool.

use examroom_core::{EnvironmentId, ExamSessionId, FailureCode, Progress, SessionState, Trigger, UserId};
use examroom_exams::{Exam, Script, Task};
use std::time::Duration;

use examroom_runtime::{
    BackendKind, Backends, Base, EnvironmentSpec, EnvironmentState, ExecRequest, ExecutionRuntime, Limits, Profile,
    RuntimeError,
};
use examroom_store::{EventKind, NewEvent, PoolStore, SessionChanges, SessionRecord, SessionStore};

use crate::metrics;
use crate::service::SessionService;

/// How one setup script may run at most (and never past the provisioning deadline).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Which way a session's environment comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Made for the session.
    Fresh,
    /// Taken from a pool when the session was created.
    Claimed,
    /// Not known (a session picked up after a restart): the store says.
    Unknown,
}

/// Drives a session's provisioning in a background task (once: a session already being driven is left alone).
pub(crate) fn spawn(svc: SessionService, rec: SessionRecord, path: Path) {
    svc.drive(rec, move |svc, rec| async move { run(&svc, rec, path).await });
}

/// The environment an exam asks for.
pub fn environment_spec(exam: &Exam, rec: &SessionRecord) -> Result<EnvironmentSpec, String> {
    spec_for(exam, rec.environment_id)
}

/// The environment an exam asks for, with the id `id`.
pub(crate) fn spec_for(exam: &Exam, id: EnvironmentId) -> Result<EnvironmentSpec, String> {
    let env = &exam.environment;
    // An image is resolved by the runtime at create (the base is its tree); see `steps` for the digest.
    let (base, image) = match env.base.strip_prefix("image:") {
        Some(reference) => (Base::Host, Some(reference.to_string())),
        None => (Base::parse(&env.base).map_err(|e| format!("the exam's base {:?}: {e}", env.base))?, None),
    };
    let memory = env.memory_bytes;
    let limits = Limits {
        memory_bytes: memory,
        pids: env.pids,
        cpu_millicores: env.cpu_millicores,
        disk_bytes: env.disk_bytes.unwrap_or(memory / 2),
    };
    let mut spec = EnvironmentSpec::new(id);
    spec.base = base;
    spec.image = image;
    spec.limits = limits;
    spec.profile = Profile::parse(&env.profile).map_err(|e| format!("the exam's profile {:?}: {e}", env.profile))?;
    spec.backend = backend_of(exam)?;
    Ok(spec)
}

pub(crate) fn classify(e: &RuntimeError) -> FailureCode {
    match e {
        RuntimeError::Timeout { .. } => FailureCode::ProvisioningTimeout,
        RuntimeError::Io { .. }
        | RuntimeError::OutOfResources { .. }
        | RuntimeError::Protocol(_)
        | RuntimeError::Unavailable(_) => FailureCode::BackendUnavailable,
        _ => FailureCode::ProvisioningFailed,
    }
}

async fn progress(svc: &SessionService, rec: &SessionRecord, step: u32, total: u32, message: &str) {
    let p = Progress::new(step, total, message);
    match svc.inner.store.set_progress(&rec.id, SessionState::Provisioning, &p, svc.now_ms()).await {
        Ok(new) => svc.publish(&new),
        Err(e) => tracing::warn!(session_id = %rec.id, error = %e, "provisioning progress"),
    }
}

/// The steps of the fresh path: create the environment, one per service (Docker), start its desktop (when the exam
/// has one), one per setup script, check the terminal.
fn fresh_steps(exam: Option<&Exam>) -> u32 {
    2 + exam.map_or(0, |e| {
        e.setup_steps().len() as u32 + u32::from(e.environment.desktop) + e.environment.services.len() as u32
    })
}

/// Starts one of the exam's services beside the environment and waits (bounded by the service's own readiness
/// timeout) until it is ready; `Err` names the service and carries the tail of its log, for the proctor.
async fn start_service(
    rt: &Backends,
    env: &EnvironmentId,
    service: &examroom_exams::ServiceSpec,
) -> Result<(), (FailureCode, String)> {
    let spec = service_spec(service);
    rt.start_service(env, &spec).await.map_err(|e| (classify(&e), format!("service {}: {e}", service.name)))
}

/// How long a service may take to become ready before its session fails.
pub const SERVICE_READY_TIMEOUT: Duration = Duration::from_secs(45);

/// The runtime's description of an exam's service: its limits are the exam's memory (default 256 MiB) with room for
/// a database's processes, one core.
fn service_spec(service: &examroom_exams::ServiceSpec) -> examroom_runtime::ServiceSpec {
    let memory_bytes = service.memory_bytes.unwrap_or(256 << 20);
    examroom_runtime::ServiceSpec {
        name: service.name.clone(),
        image: service.image.clone(),
        command: service.command.clone(),
        env: service.environment.clone(),
        limits: Limits { memory_bytes, pids: 256, cpu_millicores: 1000, disk_bytes: memory_bytes / 2 },
        ready: match (&service.ready_command, service.ready_port) {
            (c, _) if !c.is_empty() => examroom_runtime::Readiness::Command(c.clone()),
            (_, Some(port)) => examroom_runtime::Readiness::Tcp(port),
            _ => examroom_runtime::Readiness::None,
        },
        ready_timeout: SERVICE_READY_TIMEOUT,
    }
}

/// The progress message of the desktop's step.
pub const STARTING_DESKTOP: &str = "Starting your desktop";

/// Starts the environment's desktop when the exam has one, and waits (bounded) until it answers; `Err` says why it
/// did not, for the proctor.
pub(crate) async fn start_desktop(
    rt: &Backends,
    exam: &Exam,
    env: &EnvironmentId,
) -> Result<(), (FailureCode, String)> {
    if !exam.environment.desktop {
        return Ok(());
    }
    let (width, height) = exam.environment.resolution;
    let spec = examroom_runtime::DesktopSpec { width, height, port: examroom_exams::DESKTOP_VNC_PORT };
    match rt.start_desktop(env, spec).await {
        Ok(_) => Ok(()),
        Err(e) => Err((
            match e {
                RuntimeError::Timeout { .. } => FailureCode::ProvisioningTimeout,
                _ => FailureCode::ProvisioningFailed,
            },
            format!("the desktop did not start: {e}"),
        )),
    }
}

/// The steps of the claimed path: take the prepared environment, then one per claim-time setup script and a last
/// check of the terminal when there are any.
fn claimed_steps(exam: &Exam) -> u32 {
    match exam.claim_steps().len() as u32 {
        0 => 1,
        n => 2 + n,
    }
}

/// The first step's message on the claimed path.
pub const TAKING_PREPARED: &str = "Taking an environment prepared for you ahead of time";

async fn run(svc: &SessionService, rec: SessionRecord, path: Path) {
    let exam = svc.exam_of(&rec);
    let exam = exam.as_deref();
    let claimed = match (rec.state, path) {
        (SessionState::Created, Path::Claimed) => true,
        (SessionState::Created, Path::Unknown) => {
            matches!(svc.inner.store.pool_claim_of(&rec.id).await, Ok(Some(_)))
        }
        // A provisioning picked up after a restart starts clean on the fresh path (a claim-time script may have run
        // half-way): the environment is made again with the same id.
        _ => false,
    };
    let claimed = claimed && exam.is_some();
    // A claim with nothing to run for the candidate: once the prepared environment answers, provisioning begins and
    // ends in one store transaction (two transitions, each with its event, published in order).
    if let (true, Some(exam), SessionState::Created) = (claimed, exam, rec.state) {
        if exam.claim_steps().is_empty() {
            match check_running(&svc.inner.runtime, &rec.environment_id).await {
                Ok(()) => {
                    record_claimed_image(svc, &rec, exam).await;
                    let first = Progress::new(1, claimed_steps(exam), TAKING_PREPARED);
                    let steps = vec![
                        (
                            Trigger::ProvisioningStarted,
                            SessionChanges { progress: Some(Some(first)), ..SessionChanges::default() },
                        ),
                        (
                            Trigger::ProvisioningSucceeded,
                            SessionChanges {
                                ready_at: Some(svc.now_ms()),
                                progress: Some(None),
                                ..SessionChanges::default()
                            },
                        ),
                    ];
                    if let Err(e) = svc.apply_chain(&rec, steps, "system").await {
                        tracing::warn!(session_id = %rec.id, error = %e, "could not record the claim's provisioning");
                    }
                    return;
                }
                Err((_, detail)) => {
                    unusable(&rec, &detail);
                    return run_path(svc, rec, false).await;
                }
            }
        }
    }
    run_path(svc, rec, claimed).await
}

/// A claimed environment that no longer answers: the session takes the fresh path with the same environment id.
fn unusable(rec: &SessionRecord, detail: &str) {
    tracing::warn!(session_id = %rec.id, environment_id = %rec.environment_id, %detail,
        "the claimed environment is not usable; making a new one");
    ::metrics::counter!(metrics::POOL_MISSES, "exam" => rec.exam_id.to_string(), "reason" => "unusable").increment(1);
}

async fn run_path(svc: &SessionService, rec: SessionRecord, claimed: bool) {
    let exam = svc.exam_of(&rec);
    let exam = exam.as_deref();
    let rec = if rec.state == SessionState::Created {
        let first = match exam {
            Some(exam) if claimed => Progress::new(1, claimed_steps(exam), TAKING_PREPARED),
            _ => Progress::new(1, fresh_steps(exam), "Creating your isolated environment"),
        };
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
    let outcome = tokio::time::timeout_at(due, steps(svc, &rec, claimed)).await;
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

/// The candidate a claim-time setup script is run for: given to it as `EXAMROOM_USER_ID` and `EXAMROOM_SESSION_ID`.
pub(crate) struct ForCandidate<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) session: &'a ExamSessionId,
}

/// The last `max` bytes of a stream, as text.
fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// Runs setup script number `n` (from 1) of a task in environment `env` within `timeout`, with the candidate's
/// identity when there is one; `Err` says what went wrong, for the proctor.
pub(crate) async fn run_setup(
    rt: &Backends,
    env: &EnvironmentId,
    n: usize,
    task: &Task,
    script: &Script,
    timeout: Duration,
    candidate: Option<&ForCandidate<'_>>,
) -> Result<(), (FailureCode, String)> {
    let mut req = script_request(script, SETUP_TIMEOUT.min(timeout), 64 * 1024);
    if let Some(c) = candidate {
        req.env.push(("EXAMROOM_USER_ID".into(), c.user.to_string()));
        req.env.push(("EXAMROOM_SESSION_ID".into(), c.session.to_string()));
    }
    let what = || format!("setup of task {n} ({}, {})", task.id, script.path.display());
    let out = rt.exec(env, req).await.map_err(|e| (classify(&e), format!("{}: {e}", what())))?;
    if out.exit_code == Some(0) {
        return Ok(());
    }
    let how = match (out.exit_code, out.signal, out.timed_out) {
        (_, _, true) => "timed out".to_string(),
        (Some(c), _, _) => format!("exited with status {c}"),
        (None, Some(s), _) => format!("was killed by signal {s}"),
        _ => "failed".to_string(),
    };
    Err((FailureCode::ProvisioningFailed, format!("{} {how}; stderr: {}", what(), tail(&out.stderr, 2048))))
}

/// Whether environment `env` runs; `Err` with the detail when it does not.
pub(crate) async fn check_running(rt: &Backends, env: &EnvironmentId) -> Result<(), (FailureCode, String)> {
    match rt.status(env).await {
        Ok(st) if st.state == EnvironmentState::Running => Ok(()),
        Ok(st) => Err((FailureCode::EnvironmentLost, format!("environment not running: {:?}", st.state))),
        Err(e) => Err((classify(&e), format!("environment status: {e}"))),
    }
}

/// The image a reference names in the runtime's image store; `Err` says why not, with the command that imports it.
pub fn image_of(rt: &Backends, reference: &str) -> Result<examroom_images::ImageInfo, String> {
    let dir = rt.images_dir().ok_or_else(|| "this runtime has no image store".to_string())?;
    examroom_images::ImageStore::at(dir).resolve(reference).map_err(|e| e.to_string())
}

/// The image store of the service's runtime, if it has one.
pub fn image_store(svc: &SessionService) -> Option<examroom_images::ImageStore> {
    svc.inner.runtime.images_dir().map(examroom_images::ImageStore::at)
}

/// The image reference of an exam whose base is an image (`base = "image:REF"`).
pub fn image_reference(exam: &Exam) -> Option<&str> {
    exam.environment.base.strip_prefix("image:")
}

/// Why an exam cannot be started on this server now, if it cannot: it needs a backend this server does not run (see
/// [`backend_unavailable`]), or the image it runs on is not in the store.
pub fn unavailable(svc: &SessionService, exam: &Exam) -> Option<String> {
    if let Some(why) = backend_unavailable(&svc.inner.runtime, exam) {
        return Some(why);
    }
    if !exam.environment.ports.is_empty() && !svc.inner.config.ports_enabled {
        return Some(
            "this exam opens ports of the environment to the browser, and this server serves no ports (start it with \
             --ports-listen)"
                .into(),
        );
    }
    // A Docker exam's image is in the Docker Engine's store: a missing one fails the session at create, saying how
    // to build it.
    if backend_of(exam) != Ok(BackendKind::Sandbox) {
        return None;
    }
    image_of(&svc.inner.runtime, image_reference(exam)?).err()
}

/// The backend an exam's environment runs on (`[environment] backend`), or why the name is not one.
pub fn backend_of(exam: &Exam) -> Result<BackendKind, String> {
    BackendKind::parse(&exam.environment.backend).map_err(|e| e.to_string())
}

/// Why this server cannot run the exam's environment at all, if it cannot: it needs a backend this server does not
/// run, or services on the sandbox (which runs none).
pub fn backend_unavailable(rt: &Backends, exam: &Exam) -> Option<String> {
    let env = &exam.environment;
    let kind = match backend_of(exam) {
        Ok(k) => k,
        Err(e) => return Some(e),
    };
    if !rt.enabled(kind) {
        return Some(format!(
            "the {kind} backend is not enabled on this server (this exam sets [environment] backend = {:?}); the \
             operator enables it with backends = \"{}\" in the configuration (EXAMROOM_BACKENDS)",
            env.backend,
            rt.kinds().iter().map(|k| k.as_str()).chain([kind.as_str()]).collect::<Vec<_>>().join(",")
        ));
    }
    if kind == BackendKind::Docker && env.profile == examroom_exams::PROFILE_SYSTEM {
        return Some(
            "the docker backend has no system profile (this exam sets profile = \"system\"); run it on backend = \
             \"sandbox\""
                .into(),
        );
    }
    if kind == BackendKind::Docker && env.desktop {
        return Some(
            "the docker backend has no desktop (this exam sets desktop = true); run it on backend = \"sandbox\"".into(),
        );
    }
    if kind == BackendKind::Sandbox {
        if let Some(service) = env.services.first() {
            return Some(format!(
                "the sandbox backend runs no services, and this exam needs {} ([[environment.services]] {:?}); \
                 set backend = \"docker\"",
                env.services.len(),
                service.name
            ));
        }
    }
    None
}

/// For a session that took a pooled environment on an image: records the digest the environment was made from.
async fn record_claimed_image(svc: &SessionService, rec: &SessionRecord, exam: &Exam) {
    let Some(reference) = image_reference(exam) else { return };
    if let Some(digest) = svc.inner.runtime.image_digest_of(&rec.environment_id) {
        record_image(svc, rec, reference, &digest).await;
    }
}

/// Records in the session's trail which image (by manifest digest) its environment is made from.
async fn record_image(svc: &SessionService, rec: &SessionRecord, reference: &str, digest: &str) {
    let event = NewEvent {
        at: svc.now_ms(),
        kind: EventKind::Progress,
        from: None,
        to: None,
        reason: format!("Environment image {reference} ({digest})"),
        actor: "system".into(),
        data: Some(serde_json::json!({ "image": reference, "image_digest": digest })),
    };
    if let Err(e) = svc.inner.store.append_event(&rec.id, &event).await {
        tracing::warn!(session_id = %rec.id, error = %e, "could not record the image");
    }
}

/// The time left until the session's provisioning deadline (at least 1 ms).
fn left(svc: &SessionService, rec: &SessionRecord) -> Duration {
    Duration::from_millis((rec.created_at + rec.provisioning_timeout_ms - svc.now_ms()).max(1) as u64)
}

async fn steps(svc: &SessionService, rec: &SessionRecord, claimed: bool) -> Result<(), (FailureCode, String)> {
    let exam = svc.exam_of(rec).ok_or_else(|| {
        (FailureCode::ProvisioningFailed, format!("exam {} is no longer in the catalog", rec.exam_id))
    })?;
    let exam = &*exam;
    if let Some(why) = backend_unavailable(&svc.inner.runtime, exam) {
        return Err((FailureCode::BackendUnavailable, why));
    }
    let rt = &svc.inner.runtime;
    if !exam.environment.ports.is_empty() && !svc.inner.config.ports_enabled {
        return Err((
            FailureCode::ProvisioningFailed,
            "the exam opens ports to the browser and this server serves none (start it with --ports-listen)".into(),
        ));
    }
    let candidate = ForCandidate { user: &rec.user_id, session: &rec.id };
    if claimed {
        match check_running(rt, &rec.environment_id).await {
            Ok(()) => {
                record_claimed_image(svc, rec, exam).await;
                let setups = exam.claim_steps();
                let total = claimed_steps(exam);
                let n = setups.len();
                for (i, (task, script)) in setups.into_iter().enumerate() {
                    let step = 2 + i as u32;
                    progress(svc, rec, step, total, &format!("Preparing task {} of {n}", i + 1)).await;
                    run_setup(rt, &rec.environment_id, i + 1, task, script, left(svc, rec), Some(&candidate)).await?;
                }
                if n > 0 {
                    progress(svc, rec, total, total, "Checking that your terminal answers").await;
                    check_running(rt, &rec.environment_id).await?;
                }
                return Ok(());
            }
            Err((_, detail)) => {
                // The prepared environment died after it was made: make a new one instead.
                unusable(rec, &detail);
                progress(svc, rec, 1, fresh_steps(Some(exam)), "Creating your isolated environment").await;
            }
        }
    }
    let mut spec =
        crate::provision::spec_for(exam, rec.environment_id).map_err(|d| (FailureCode::ProvisioningFailed, d))?;
    let sandbox_image = spec.image.clone().filter(|_| spec.backend == BackendKind::Sandbox);
    if let Some(reference) = sandbox_image {
        // The image is pinned by its digest for the create, and the digest is recorded in the session's trail.
        let image = image_of(rt, &reference).map_err(|d| (FailureCode::ProvisioningFailed, d))?;
        record_image(svc, rec, &reference, &image.digest).await;
        spec.image = Some(image.digest);
    }
    let docker_image = spec.image.clone().filter(|_| spec.backend == BackendKind::Docker);
    // A provisioning resumed after a restart (or a claimed environment that died) may leave an environment with this
    // id: start clean, on the exam's backend.
    rt.assign(&rec.environment_id, spec.backend);
    match rt.destroy(&rec.environment_id).await {
        Ok(_) | Err(RuntimeError::NotFound) => {}
        Err(e) => return Err((FailureCode::BackendUnavailable, format!("clearing an earlier attempt: {e}"))),
    }
    rt.create(spec).await.map_err(|e| (classify(&e), format!("create environment: {e}")))?;
    if let Some(reference) = docker_image {
        // The Docker Engine resolved the name at create: record what it ran, by image id.
        if let Some(digest) = rt.image_digest_of(&rec.environment_id) {
            record_image(svc, rec, &reference, &digest).await;
        }
    }
    let total = fresh_steps(Some(exam));
    let mut step = 2;
    let services = &exam.environment.services;
    for (i, service) in services.iter().enumerate() {
        progress(
            svc,
            rec,
            step,
            total,
            &format!("Starting service {} ({} of {})", service.name, i + 1, services.len()),
        )
        .await;
        start_service(rt, &rec.environment_id, service).await?;
        step += 1;
    }
    if exam.environment.desktop {
        progress(svc, rec, step, total, STARTING_DESKTOP).await;
        start_desktop(rt, exam, &rec.environment_id).await?;
        step += 1;
    }
    let prepare = exam.prepare_steps();
    let claim = exam.claim_steps();
    let n = prepare.len() + claim.len();
    let all = prepare.into_iter().map(|s| (s, false)).chain(claim.into_iter().map(|s| (s, true)));
    for (i, ((task, script), for_candidate)) in all.enumerate() {
        progress(svc, rec, step + i as u32, total, &format!("Preparing task {} of {n}", i + 1)).await;
        let who = for_candidate.then_some(&candidate);
        run_setup(rt, &rec.environment_id, i + 1, task, script, left(svc, rec), who).await?;
    }
    progress(svc, rec, total, total, "Checking that your terminal answers").await;
    check_running(rt, &rec.environment_id).await
}
