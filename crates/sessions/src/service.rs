//! [`SessionService`]: the one place that changes sessions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use examroom_core::{
    transition, Capacity, DomainError, EndReason, ExamId, ExamResult, ExamSessionId, Failure, FailureCode, IncidentId,
    Role, SessionState, Trigger, UserId,
};
use examroom_exams::{Catalog, Exam};
use examroom_runtime::Backends;
use examroom_store::{
    Claim, EventKind, EventRecord, ListFilter, NewEvent, PoolStore, SessionChanges, SessionRecord, SessionStore, Store,
    StoreError,
};
use tokio::sync::broadcast;

use crate::admission::{Holder, MemoryAdmission, Reservation};
use crate::clock::Clock;
use crate::metrics;
use crate::pool::{PoolSettings, Pools};
use crate::provision::Path;

/// Who is asking: identity comes from a verified token, never from the request's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: UserId,
    /// Their role.
    pub role: Role,
}

impl Caller {
    /// A candidate.
    pub fn candidate(user: UserId) -> Self {
        Caller { user, role: Role::Candidate }
    }

    /// A proctor.
    pub fn proctor(user: UserId) -> Self {
        Caller { user, role: Role::Proctor }
    }

    /// How the audit trail names this caller.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.user)
    }
}

/// How the service behaves.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Live sessions beyond this are refused with `capacity_exhausted`.
    pub max_live_sessions: usize,
    /// What `Retry-After` says when at capacity.
    pub retry_after_secs: u32,
    /// How often the reconciler runs (it also runs at start-up).
    pub reconcile_interval: Duration,
    /// How long a failing session's teardown is retried before it is marked failed anyway (the reconciler keeps
    /// retrying the release afterwards).
    pub fail_teardown_budget: Duration,
    /// Admission by memory: the memory limits of live sessions plus a new session's must stay within this many
    /// bytes, else `capacity_exhausted` (see [`crate::admission`]). `None` admits regardless of memory.
    pub memory_budget: Option<u64>,
    /// Sessions one candidate may start in any 60 s (0: no limit); beyond, `rate_limited`.
    pub max_creates_per_minute: u32,
    /// Warm pools (see [`crate::pool`]).
    pub pool: PoolSettings,
    /// Whether the server serves ports to browsers (the ports origin): exams that list `ports` are unavailable
    /// without it.
    pub ports_enabled: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_live_sessions: 200,
            retry_after_secs: 30,
            reconcile_interval: Duration::from_secs(30),
            fail_teardown_budget: Duration::from_secs(8),
            memory_budget: None,
            max_creates_per_minute: 10,
            pool: PoolSettings::default(),
            ports_enabled: false,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) runtime: Backends,
    pub(crate) catalog: crate::versions::ExamVersions,
    pub(crate) clock: Clock,
    pub(crate) config: ServiceConfig,
    updates: broadcast::Sender<Arc<SessionRecord>>,
    /// Sessions whose provisioning or ending is being driven by a task right now.
    pub(crate) busy: Mutex<HashSet<ExamSessionId>>,
    /// Sessions by state, for the gauge and the capacity check.
    counts: Mutex<HashMap<SessionState, i64>>,
    /// The memory reservations of live sessions (admission).
    pub(crate) admission: MemoryAdmission,
    /// Recent creates per candidate.
    pub(crate) create_rate: crate::attempts::CreateRate,
    /// Warm pools.
    pub(crate) pools: Pools,
    /// Taken for each read-modify-write of a workspace (`workspace.rs`).
    pub(crate) workspaces: tokio::sync::Mutex<()>,
}

/// The lifecycle driver. Cheap to clone.
#[derive(Clone)]
pub struct SessionService {
    pub(crate) inner: Arc<Inner>,
}

/// A guarded transition, ready to store.
struct Guarded {
    t: examroom_core::Transition,
    changes: SessionChanges,
    event: NewEvent,
}

/// Parses a session id from a request. A malformed id is answered exactly like an unknown one.
fn parse_id(id: &str) -> Result<ExamSessionId, DomainError> {
    id.parse().map_err(|_| DomainError::SessionNotFound)
}

/// Logs an unexpected error under a fresh incident id and returns the error to answer with.
pub(crate) fn incident(context: &str, err: &dyn std::fmt::Display) -> DomainError {
    let incident = IncidentId::new_v4();
    tracing::error!(%incident, error = %err, "{context}");
    DomainError::Internal { incident }
}

fn store_error(context: &str, e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::SessionNotFound,
        StoreError::LiveSessionExists { session_id } => DomainError::ActiveSessionExists { session_id },
        // The database failing (locked by someone else, its disk full, its file gone) is the service being
        // unavailable, not a bug: 503 with guidance to try again and an incident id; nothing was written.
        StoreError::Backend(_) => {
            let incident = IncidentId::new_v4();
            tracing::error!(%incident, error = %e, "{context}");
            DomainError::ServiceUnavailable { incident: Some(incident) }
        }
        other => incident(context, &other),
    }
}

impl SessionService {
    /// Starts the service: counts the stored sessions, resumes the work a previous server left (provisioning,
    /// teardown, timers), runs a first reconcile, and keeps reconciling in the background.
    pub async fn start(
        store: Store,
        runtime: Backends,
        catalog: Catalog,
        config: ServiceConfig,
        clock: Clock,
    ) -> Result<SessionService, DomainError> {
        let (updates, _) = broadcast::channel(4096);
        let admission = MemoryAdmission::new(config.memory_budget);
        let create_rate = crate::attempts::CreateRate::new(config.max_creates_per_minute);
        let pools = Pools::new(config.pool.clone(), &catalog);
        let svc = SessionService {
            inner: Arc::new(Inner {
                pools,
                create_rate,
                store,
                runtime,
                catalog: crate::versions::ExamVersions::new(catalog),
                clock,
                config,
                updates,
                busy: Mutex::new(HashSet::new()),
                counts: Mutex::new(HashMap::new()),
                admission,
                workspaces: tokio::sync::Mutex::new(()),
            }),
        };
        let all = svc.inner.store.list(&ListFilter::default()).await.map_err(|e| store_error("list sessions", e))?;
        {
            let mut counts = svc.counts();
            for r in &all {
                *counts.entry(r.state).or_default() += 1;
            }
        }
        svc.publish_counts();
        // The memory that live sessions hold, as a previous server admitted it.
        for r in all.iter().filter(|r| r.state.is_live()) {
            svc.inner.admission.restore(r.id, svc.memory_of(&r.exam_id));
        }
        // And the memory that pooled environments hold.
        svc.restore_pools().await.map_err(|e| incident("read the pools", &e))?;
        svc.publish_admission();
        let (admitted, budget) = svc.admitted_memory();
        if budget.is_some_and(|b| admitted > b) {
            tracing::warn!(admitted_bytes = admitted, budget_bytes = budget,
                "live sessions hold more memory than the budget (it was lowered?); nothing is admitted until enough end");
        } else {
            tracing::info!(admitted_bytes = admitted, budget_bytes = budget, "memory admission");
        }
        // Work that a previous server left half done.
        for rec in all.into_iter().filter(|r| r.state.is_live()) {
            svc.resume(rec);
        }
        let report = svc.reconcile_once().await;
        tracing::info!(?report, "start-up reconcile");
        svc.spawn_pools();
        // Changes that other replicas sharing the store make (PostgreSQL).
        svc.follow_other_replicas().await.map_err(|e| store_error("follow other replicas' changes", e))?;
        let bg = svc.clone();
        // The periodic pass, and a pass at once whenever the runtime says an environment may have been lost (its
        // shim or init died): a candidate learns within about a second, not at the next periodic pass.
        let mut losses = svc.inner.runtime.losses();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(bg.inner.config.reconcile_interval);
            tick.tick().await;
            let mut notices = true;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    n = losses.recv(), if notices => match n {
                        Ok(id) => {
                            tracing::info!(environment_id = %id, "an environment's shim or init ended: reconciling now");
                            // Several at once (a host-wide kill) are one pass.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            while losses.try_recv().is_ok() {}
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => notices = false,
                    },
                }
                let report = bg.reconcile_once().await;
                tracing::debug!(?report, "reconcile");
            }
        });
        Ok(svc)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<SessionState, i64>> {
        self.inner.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_counts(&self) {
        let counts = self.counts();
        for s in SessionState::ALL {
            ::metrics::gauge!(metrics::SESSIONS, "state" => s.as_str()).set(*counts.get(&s).unwrap_or(&0) as f64);
        }
    }

    /// Sessions in `state` now.
    pub(crate) fn count_of(&self, state: SessionState) -> i64 {
        *self.counts().get(&state).unwrap_or(&0)
    }

    /// The memory limit of an exam's environment (the default limit for an exam no longer in the catalog).
    pub(crate) fn memory_of(&self, exam: &ExamId) -> u64 {
        self.inner
            .catalog
            .current(exam)
            .map_or(examroom_exams::definition::DEFAULT_MEMORY_BYTES, |(_, e)| e.environment.memory_bytes)
    }

    pub(crate) fn publish_admission(&self) {
        let adm = &self.inner.admission;
        ::metrics::gauge!(metrics::ADMITTED_MEMORY).set(adm.admitted() as f64);
        if let Some(budget) = adm.budget() {
            ::metrics::gauge!(metrics::MEMORY_BUDGET).set(budget as f64);
        }
    }

    /// The memory limits of live sessions, in bytes, and the budget they must stay within (if any).
    pub fn admitted_memory(&self) -> (u64, Option<u64>) {
        (self.inner.admission.admitted(), self.inner.admission.budget())
    }

    /// Live sessions right now.
    pub fn live_sessions(&self) -> i64 {
        self.counts().iter().filter(|(s, _)| s.is_live()).map(|(_, n)| *n).sum()
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Unix milliseconds now, by the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The exam catalog now (a reload replaces it; see [`SessionService::reload_catalog`]).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.catalog()
    }

    /// The current definition of an exam and its version (`Exam::version`).
    pub fn current_exam(&self, id: &ExamId) -> Option<(String, Arc<Exam>)> {
        self.inner.catalog.current(id)
    }

    /// The exam definition a session runs on: the version it started on, kept across reloads of the catalog (see
    /// [`crate::versions`]).
    pub fn exam_of(&self, rec: &SessionRecord) -> Option<Arc<Exam>> {
        self.inner.catalog.of(&rec.exam_id, rec.exam_version.as_deref())
    }

    /// Replaces the catalog without a restart (on `SIGHUP`, or when its directory changed): new sessions get the new
    /// versions, and every live session keeps the version it started on. Pools retire environments of exams that
    /// changed.
    pub async fn reload_catalog(&self, catalog: Catalog) -> Result<crate::versions::ReloadReport, DomainError> {
        let live = self.inner.store.list(&ListFilter::default()).await.map_err(|e| store_error("list sessions", e))?;
        let in_use = live.iter().filter(|r| r.state.is_live()).filter_map(|r| r.exam_version.clone()).collect();
        self.inner.pools.set_digests(&catalog);
        let report = self.inner.catalog.replace(catalog, &in_use);
        tracing::info!(added = ?report.added, changed = ?report.changed, removed = ?report.removed,
            kept_for_sessions = report.kept_for_sessions, problems = report.problems, "exam catalog reloaded");
        self.inner.pools.wake();
        Ok(report)
    }

    /// The runtime that makes this service's environments (`examroom exam test` runs reference solutions through it,
    /// as a candidate's commands run).
    pub fn runtime(&self) -> &Backends {
        &self.inner.runtime
    }

    /// Every stored change, as it happens (the status stream filters by session).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SessionRecord>> {
        self.inner.updates.subscribe()
    }

    pub(crate) fn publish(&self, rec: &SessionRecord) {
        let _ = self.inner.updates.send(Arc::new(rec.clone()));
    }

    /// Whether the store answers and at least one backend can make environments (for `/readyz`): each enabled
    /// backend by name, `ok` or why not.
    pub async fn ready_check(&self) -> Result<std::collections::BTreeMap<String, String>, String> {
        self.inner.store.ping().await.map_err(|e| format!("store: {e}"))?;
        let mut backends = std::collections::BTreeMap::new();
        let mut any = false;
        for (kind, health) in self.inner.runtime.health().await {
            any |= health.is_ok();
            let said = match health {
                Ok(None) => "ok".to_string(),
                Ok(Some(note)) => format!("ok; {note}"),
                Err(why) => why,
            };
            backends.insert(kind.to_string(), said);
        }
        if !any {
            return Err(format!("no backend can make environments: {backends:?}"));
        }
        Ok(backends)
    }

    /// Starts an exam for a candidate: stores the session as `created` and provisions it in the background. When the
    /// exam's pool has an environment ready, the session claims it (see [`crate::pool`]); otherwise one is made.
    pub async fn create(&self, caller: &Caller, exam_id: &str) -> Result<SessionRecord, DomainError> {
        if caller.role != Role::Candidate {
            return Err(DomainError::Forbidden);
        }
        let exam_id = ExamId::parse(exam_id).map_err(|_| DomainError::ExamNotFound)?;
        let (version, exam) = self.inner.catalog.current(&exam_id).ok_or(DomainError::ExamNotFound)?;
        if let Some(live) = self.inner.store.live_for_user(&caller.user).await.map_err(|e| store_error("live", e))? {
            return Err(DomainError::ActiveSessionExists { session_id: live.id });
        }
        // Attempts at this exam (issue 9).
        self.check_attempts(caller, &exam).await?;
        let now = self.now_ms();
        let mut rec = SessionRecord {
            id: ExamSessionId::new_v4(),
            user_id: caller.user.clone(),
            exam_id,
            environment_id: examroom_core::EnvironmentId::new_v4(),
            state: SessionState::Created,
            progress: None,
            created_at: now,
            ready_at: None,
            started_at: None,
            deadline: None,
            duration_ms: exam.duration.as_millis() as i64,
            start_grace_ms: exam.start_grace.as_millis() as i64,
            provisioning_timeout_ms: exam.provisioning_timeout.as_millis() as i64,
            ended_at: None,
            end_reason: None,
            failure: None,
            resources_released_at: None,
            graded: None,
            updated_at: now,
            exam_version: Some(version),
        };
        let event = NewEvent {
            at: now,
            kind: EventKind::Transition,
            from: None,
            to: Some(SessionState::Created),
            reason: format!("{} started exam {}", caller.user, rec.exam_id),
            actor: caller.actor(),
            data: None,
        };
        // A prepared environment, if the exam's pool has one: the claim and the session are stored together.
        let pools = &self.inner.pools;
        if let (true, Some(digest)) = (pools.may_claim(&rec.exam_id), pools.digest(&rec.exam_id)) {
            let reserved_at = self.reserve_create(caller)?;
            let claim = Claim {
                owner: &pools.settings.owner,
                exam_digest: &digest,
                made_after: now - exam.pool.max_age.as_millis() as i64,
                at: now,
            };
            match self.inner.store.insert_claiming(&rec, &event, &claim).await {
                Ok(Some(env)) => {
                    rec.environment_id = env;
                    // The environment's memory becomes the session's.
                    if !self.inner.admission.transfer(Holder::Pooled(env), rec.id) {
                        self.inner.admission.restore(rec.id, exam.environment.memory_bytes);
                    }
                    pools.claimed(&env);
                    ::metrics::counter!(metrics::POOL_CLAIMS, "exam" => rec.exam_id.to_string()).increment(1);
                    return Ok(self.created(rec, Path::Claimed));
                }
                Ok(None) => self.release_create(caller, reserved_at),
                Err(e) => {
                    self.release_create(caller, reserved_at);
                    return Err(store_error("insert session", e));
                }
            }
        }
        if pools.has_pool(&exam) {
            ::metrics::counter!(metrics::POOL_MISSES, "exam" => rec.exam_id.to_string(), "reason" => "empty")
                .increment(1);
        }
        if self.live_sessions() >= self.inner.config.max_live_sessions as i64 {
            return Err(DomainError::CapacityExhausted {
                retry_after_secs: self.inner.config.retry_after_secs,
                reason: Capacity::Sessions,
            });
        }
        // The candidate's create rate (issue 9): reserved here, taken back if the session is not stored.
        let reserved_at = self.reserve_create(caller)?;
        // Admission: a slot and the memory, reserved here, given back if the session is not stored, released at its
        // final state.
        let reservation = match self.admit(&rec, exam.environment.memory_bytes).await {
            Ok(r) => r,
            Err(reason) => {
                self.release_create(caller, reserved_at);
                let (admitted, budget) = self.admitted_memory();
                tracing::warn!(user_id = %rec.user_id, exam_id = %rec.exam_id, admitted_bytes = admitted,
                    asked_bytes = exam.environment.memory_bytes, budget_bytes = budget,
                    live_sessions = self.live_sessions(), reason = reason.as_str(), "not admitted");
                ::metrics::counter!(metrics::ADMISSION_REFUSALS, "reason" => reason.as_str()).increment(1);
                return Err(DomainError::CapacityExhausted {
                    retry_after_secs: self.inner.config.retry_after_secs,
                    reason,
                });
            }
        };
        if let Err(e) = self.inner.store.insert(&rec, &event).await {
            self.release_create(caller, reserved_at);
            return Err(store_error("insert session", e));
        }
        reservation.keep();
        Ok(self.created(rec, Path::Fresh))
    }

    /// A slot within `max_live_sessions` and the exam's memory within the budget for a new session, taking pooled
    /// environments out of the pools when they are in the way: a candidate present now comes before candidates
    /// announced, and pool fills never starve a candidate's own create.
    async fn admit(&self, rec: &SessionRecord, bytes: u64) -> Result<Reservation<'_>, Capacity> {
        let adm = &self.inner.admission;
        let max = self.inner.config.max_live_sessions as i64;
        let mut victim: Option<examroom_core::EnvironmentId> = None;
        let mut reason = Capacity::Memory;
        // Each round takes one more pooled environment out; there are at most `max_live_sessions` of them.
        for _ in 0..=self.inner.config.max_live_sessions {
            // The slot (live sessions, creates in flight and pooled environments all hold a reservation) and the
            // memory are checked and reserved in one step: racing creates never pass the count together.
            let slots = max.max(0) as usize;
            match Reservation::in_slot(adm, victim.take().map(Holder::Pooled), rec.id, bytes, slots) {
                Ok(r) => {
                    self.publish_admission();
                    return Ok(r);
                }
                Err(Some(_)) => reason = Capacity::Memory,
                Err(None) => reason = Capacity::Sessions,
            }
            self.publish_admission();
            match self.evict_for(&rec.exam_id).await {
                Some(v) => victim = Some(v),
                None => return Err(reason),
            }
        }
        Err(reason)
    }

    /// A session just stored: counted, published, provisioned.
    fn created(&self, rec: SessionRecord, path: Path) -> SessionRecord {
        self.publish_admission();
        *self.counts().entry(SessionState::Created).or_default() += 1;
        self.publish_counts();
        tracing::info!(session_id = %rec.id, user_id = %rec.user_id, environment_id = %rec.environment_id,
            exam_id = %rec.exam_id, pooled = path == Path::Claimed, "session created");
        self.publish(&rec);
        crate::provision::spawn(self.clone(), rec.clone(), path);
        rec
    }

    /// One session: the owner's (one query keyed by id and user), or any for a proctor.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<SessionRecord, DomainError> {
        let id = parse_id(id)?;
        let found = match caller.role {
            Role::Proctor => self.inner.store.get(&id).await,
            Role::Candidate => self.inner.store.get_owned(&id, &caller.user).await,
        };
        found.map_err(|e| store_error("get session", e))?.ok_or(DomainError::SessionNotFound)
    }

    /// The caller's sessions (a candidate's own; a proctor's: all, optionally in one state).
    pub async fn list(&self, caller: &Caller, state: Option<SessionState>) -> Result<Vec<SessionRecord>, DomainError> {
        let filter = match caller.role {
            Role::Proctor => ListFilter { state, ..ListFilter::default() },
            Role::Candidate => ListFilter { user: Some(caller.user.clone()), state, live_only: false },
        };
        self.inner.store.list(&filter).await.map_err(|e| store_error("list sessions", e))
    }

    /// A session's audit trail.
    pub async fn events(&self, caller: &Caller, id: &str) -> Result<Vec<EventRecord>, DomainError> {
        let rec = self.get(caller, id).await?;
        self.inner.store.events(&rec.id).await.map_err(|e| store_error("events", e))
    }

    /// A session's result. The owner sees it once the session has ended (`pending` while it is graded), without
    /// output tails, and without checks under a score-only policy; a proctor sees everything, at any time.
    pub async fn result(&self, caller: &Caller, id: &str) -> Result<ExamResult, DomainError> {
        let rec = self.get(caller, id).await?;
        let exam = self.exam_of(&rec);
        let max = exam.as_ref().map(|e| e.max_score()).unwrap_or(0);
        let ended = matches!(rec.state, SessionState::Terminating | SessionState::Terminated | SessionState::Failed);
        if caller.role == Role::Candidate && !ended {
            return Err(DomainError::SessionNotEnded);
        }
        let stored = self.inner.store.result(&rec.id).await.map_err(|e| store_error("result", e))?;
        let result = match (stored, rec.state) {
            (Some(r), _) => r,
            (None, SessionState::Failed) => ExamResult::not_graded(max, "the session failed"),
            (None, _) => ExamResult::pending(max),
        };
        Ok(match caller.role {
            Role::Proctor => result,
            Role::Candidate => {
                let show = exam.is_none_or(|e| e.result.shows_checks());
                result.for_candidate(show)
            }
        })
    }

    /// `ready → active`: the clock starts now.
    pub async fn start_exam(&self, caller: &Caller, id: &str) -> Result<SessionRecord, DomainError> {
        let rec = self.owned(caller, id).await?;
        self.activate(&rec, Trigger::StartRequested, &caller.actor()).await
    }

    /// Attaches the candidate to their session's terminal. A session not yet `ready` answers `session_not_ready`, an
    /// ended one `session_ended`; the first attach of a `ready` session starts its clock. Nothing is attached once the
    /// session is `terminating`. `terminal` is "main" or one the candidate opened and did not close (else
    /// `terminal_not_found`).
    pub async fn attach_terminal(
        &self,
        caller: &Caller,
        id: &str,
        terminal: &str,
    ) -> Result<(SessionRecord, examroom_runtime::Terminal), DomainError> {
        use examroom_runtime::ExecutionRuntime;
        if caller.role != Role::Candidate {
            return Err(DomainError::Forbidden);
        }
        let rec = self.get(caller, id).await?;
        match rec.state {
            SessionState::Created | SessionState::Provisioning => return Err(DomainError::SessionNotReady),
            SessionState::Terminating | SessionState::Terminated | SessionState::Failed => {
                return Err(DomainError::SessionEnded)
            }
            SessionState::Ready | SessionState::Active => {}
        }
        if !self.terminal_is_open(&rec, terminal).await? {
            return Err(DomainError::TerminalNotFound);
        }
        let term = self.inner.runtime.attach(&rec.environment_id, terminal).await.map_err(|e| {
            let incident = IncidentId::new_v4();
            tracing::error!(%incident, session_id = %rec.id, error = %e, "terminal attach failed");
            DomainError::ServiceUnavailable { incident: Some(incident) }
        })?;
        let rec = match self.first_attach(&rec, &caller.actor()).await {
            Ok(r) => r,
            // It ended between the read and the attach.
            Err(DomainError::IllegalTransition { .. }) => return Err(DomainError::SessionEnded),
            Err(e) => return Err(e),
        };
        Ok((rec, term))
    }

    /// Attaches the candidate to their session's desktop: a byte stream to its VNC server (RFB). The same rules as
    /// the terminal; a session whose exam has no desktop answers `no_desktop`. A desktop the candidate ended (they
    /// killed its X server) is started again first; one that does not come up is `service_unavailable`.
    pub async fn attach_desktop(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(SessionRecord, examroom_runtime::PortStream), DomainError> {
        use examroom_runtime::ExecutionRuntime;
        let rec = self.reachable(caller, id).await?;
        let exam = self.exam_of(&rec).filter(|e| e.environment.desktop).ok_or(DomainError::NoDesktop)?;
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            let incident = IncidentId::new_v4();
            tracing::error!(%incident, session_id = %rec.id, error = %e, "{what}");
            DomainError::ServiceUnavailable { incident: Some(incident) }
        };
        crate::provision::start_desktop(&self.inner.runtime, &exam, &rec.environment_id)
            .await
            .map_err(|(_, detail)| unavailable("desktop start failed", &detail))?;
        let stream = self
            .inner
            .runtime
            .dial(&rec.environment_id, examroom_exams::DESKTOP_VNC_PORT)
            .await
            .map_err(|e| unavailable("desktop attach failed", &e))?;
        let rec = match self.first_attach(&rec, &caller.actor()).await {
            Ok(r) => r,
            Err(DomainError::IllegalTransition { .. }) => return Err(DomainError::SessionEnded),
            Err(e) => return Err(e),
        };
        Ok((rec, stream))
    }

    /// Opens a connection to `port` inside the candidate's environment, for their browser: only a port the exam
    /// lists (`port_not_listed`), only while the session is `ready` or `active` (it does not start the clock), and
    /// `port_not_listening` when nothing listens there.
    pub async fn dial_port(
        &self,
        caller: &Caller,
        id: &str,
        port: u16,
    ) -> Result<(SessionRecord, examroom_runtime::PortStream), DomainError> {
        use examroom_runtime::ExecutionRuntime;
        let rec = self.reachable(caller, id).await?;
        let listed = self.exam_of(&rec).is_some_and(|e| e.environment.ports.contains(&port));
        if !listed {
            return Err(DomainError::PortNotListed { port });
        }
        match self.inner.runtime.dial(&rec.environment_id, port).await {
            Ok(stream) => Ok((rec, stream)),
            Err(examroom_runtime::RuntimeError::Refused(_)) => Err(DomainError::PortNotListening { port }),
            Err(e) => {
                let incident = IncidentId::new_v4();
                tracing::error!(%incident, session_id = %rec.id, port, error = %e, "port dial failed");
                Err(DomainError::ServiceUnavailable { incident: Some(incident) })
            }
        }
    }

    /// The caller's own session, if its environment may be reached now: the candidate's, `ready` or `active`.
    async fn reachable(&self, caller: &Caller, id: &str) -> Result<SessionRecord, DomainError> {
        if caller.role != Role::Candidate {
            return Err(DomainError::Forbidden);
        }
        let rec = self.get(caller, id).await?;
        match rec.state {
            SessionState::Created | SessionState::Provisioning => Err(DomainError::SessionNotReady),
            SessionState::Terminating | SessionState::Terminated | SessionState::Failed => {
                Err(DomainError::SessionEnded)
            }
            SessionState::Ready | SessionState::Active => Ok(rec),
        }
    }

    /// The first terminal or desktop attach of a `ready` session starts its clock (as `POST …/start` does). For an
    /// `active` session it changes nothing.
    pub async fn first_attach(&self, rec: &SessionRecord, actor: &str) -> Result<SessionRecord, DomainError> {
        match rec.state {
            SessionState::Ready => match self.activate(rec, Trigger::FirstAttach, actor).await {
                Ok(r) => Ok(r),
                // Another first attach (the terminal and the desktop connect at once) started the clock a moment
                // before: this attach wanted no more than that.
                Err(e) => match self.inner.store.get(&rec.id).await {
                    Ok(Some(now)) if now.state == SessionState::Active => Ok(now),
                    _ => Err(e),
                },
            },
            _ => Ok(rec.clone()),
        }
    }

    async fn activate(&self, rec: &SessionRecord, trigger: Trigger, actor: &str) -> Result<SessionRecord, DomainError> {
        let now = self.now_ms();
        let changes = SessionChanges {
            started_at: Some(now),
            deadline: Some(now + rec.duration_ms),
            ..SessionChanges::default()
        };
        self.apply(rec, trigger, changes, actor).await
    }

    /// `active → terminating` (submitted): access stops, then the environment is released.
    pub async fn submit(&self, caller: &Caller, id: &str) -> Result<SessionRecord, DomainError> {
        let rec = self.owned(caller, id).await?;
        self.apply(&rec, Trigger::Submitted, SessionChanges::default(), &caller.actor()).await
    }

    /// A proctor ends a `ready` or `active` session.
    pub async fn terminate(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
        grade: bool,
    ) -> Result<SessionRecord, DomainError> {
        if caller.role != Role::Proctor {
            return Err(DomainError::Forbidden);
        }
        let rec = self.get(caller, id).await?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(DomainError::invalid_request("a reason of 1 to 500 characters is required"));
        }
        let new =
            self.apply(&rec, Trigger::ProctorTerminated { grade }, SessionChanges::default(), &caller.actor()).await?;
        let event = NewEvent {
            at: self.now_ms(),
            kind: EventKind::ProctorAction,
            from: None,
            to: None,
            reason: reason.to_string(),
            actor: caller.actor(),
            data: Some(serde_json::json!({ "action": "terminate", "grade": grade })),
        };
        if let Err(e) = self.inner.store.append_event(&rec.id, &event).await {
            tracing::error!(session_id = %rec.id, error = %e, "store the proctor's reason");
        }
        Ok(new)
    }

    /// Records an attach or a takeover in the session's trail.
    pub async fn record_event(&self, rec: &SessionRecord, kind: EventKind, reason: &str, actor: &str) {
        let event = NewEvent {
            at: self.now_ms(),
            kind,
            from: None,
            to: None,
            reason: reason.to_string(),
            actor: actor.into(),
            data: None,
        };
        if let Err(e) = self.inner.store.append_event(&rec.id, &event).await {
            tracing::error!(session_id = %rec.id, error = %e, "store an event");
        }
    }

    /// A candidate's own session (candidates only).
    async fn owned(&self, caller: &Caller, id: &str) -> Result<SessionRecord, DomainError> {
        if caller.role != Role::Candidate {
            // Proctors act through `terminate`; starting or submitting is the candidate's.
            return Err(DomainError::Forbidden);
        }
        self.get(caller, id).await
    }

    /// Applies a guarded transition and everything that follows from it (publishing, metrics, timers, the end
    /// flow).
    pub(crate) async fn apply(
        &self,
        rec: &SessionRecord,
        trigger: Trigger,
        changes: SessionChanges,
        actor: &str,
    ) -> Result<SessionRecord, DomainError> {
        let now = self.now_ms();
        let step = self.guard(rec.state, trigger, changes, actor, now)?;
        let new = match self.inner.store.apply(&rec.id, &step.t, &step.changes, &step.event).await {
            Ok(new) => new,
            Err(StoreError::StateConflict { actual, .. }) => {
                return Err(DomainError::IllegalTransition { state: actual, trigger })
            }
            Err(e) => return Err(store_error("apply a transition", e)),
        };
        self.applied(&step.t, &new, now);
        Ok(new)
    }

    /// Applies consecutive guarded transitions of one session in one store transaction (all or none), each stored
    /// with its event and then published, in order, as [`SessionService::apply`] does one by one. Returns the last
    /// record.
    pub(crate) async fn apply_chain(
        &self,
        rec: &SessionRecord,
        steps: Vec<(Trigger, SessionChanges)>,
        actor: &str,
    ) -> Result<SessionRecord, DomainError> {
        let now = self.now_ms();
        let mut state = rec.state;
        let mut guarded = Vec::with_capacity(steps.len());
        for (trigger, changes) in steps {
            let step = self.guard(state, trigger, changes, actor, now)?;
            state = step.t.to;
            guarded.push((step.t, step.changes, step.event));
        }
        let records = match self.inner.store.apply_chain(&rec.id, &guarded).await {
            Ok(records) => records,
            Err(StoreError::StateConflict { actual, .. }) => {
                let trigger = guarded.first().map_or(Trigger::ProvisioningStarted, |(t, _, _)| t.trigger);
                return Err(DomainError::IllegalTransition { state: actual, trigger });
            }
            Err(e) => return Err(store_error("apply transitions", e)),
        };
        for ((t, _, _), new) in guarded.iter().zip(&records) {
            self.applied(t, new, now);
        }
        records.last().cloned().ok_or_else(|| incident("apply transitions", &"no transition"))
    }

    /// The core's guard for `trigger` from `from`, and what the transition changes and records.
    fn guard(
        &self,
        from: SessionState,
        trigger: Trigger,
        mut changes: SessionChanges,
        actor: &str,
        now: i64,
    ) -> Result<Guarded, DomainError> {
        let t = transition(from, &trigger).map_err(|_| DomainError::IllegalTransition { state: from, trigger })?;
        if let Some(reason) = t.end_reason {
            changes.end_reason = Some(reason);
            changes.ended_at.get_or_insert(now);
            changes.graded = Some(match (reason, trigger) {
                (EndReason::TerminatedByProctor, Trigger::ProctorTerminated { grade }) => grade,
                (EndReason::NotStarted, _) => false,
                _ => true,
            });
        }
        if t.to == SessionState::Failed {
            changes.ended_at.get_or_insert(now);
        }
        let mut event = NewEvent::transition(&t, now, actor);
        // A step that begins with the transition (provisioning's first) is in the trail with it.
        if let (Some(Some(p)), Some(data)) = (&changes.progress, event.data.as_mut()) {
            data["progress"] = serde_json::json!(p);
        }
        Ok(Guarded { t, changes, event })
    }

    /// Everything that follows a stored transition: counts, admission, publishing, metrics, timers, the end flow.
    fn applied(&self, t: &examroom_core::Transition, new: &SessionRecord, now: i64) {
        {
            let mut counts = self.counts();
            *counts.entry(t.from).or_default() -= 1;
            *counts.entry(t.to).or_default() += 1;
        }
        self.publish_counts();
        if !t.to.is_live() && self.inner.admission.release(new.id) {
            self.publish_admission();
        }
        tracing::info!(session_id = %new.id, user_id = %new.user_id, environment_id = %new.environment_id,
            from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "transition");
        // Pools fill when no session is starting, within what live sessions leave.
        if t.from == SessionState::Provisioning || !t.to.is_live() {
            self.inner.pools.wake();
        }
        self.publish(new);
        match new.state {
            SessionState::Ready => {
                ::metrics::histogram!(metrics::START_LATENCY).record((now - new.created_at).max(0) as f64 / 1000.0);
                crate::timers::arm(self.clone(), new);
            }
            SessionState::Active => crate::timers::arm(self.clone(), new),
            SessionState::Terminating => crate::ending::spawn(self.clone(), new.clone()),
            SessionState::Failed => {
                if let Some(f) = &new.failure {
                    ::metrics::counter!(metrics::FAILURES, "code" => f.code.as_str()).increment(1);
                }
            }
            SessionState::Terminated => {
                if let Some(end) = new.ended_at {
                    ::metrics::histogram!(metrics::RELEASE_LATENCY).record((now - end).max(0) as f64 / 1000.0);
                }
            }
            _ => {}
        }
    }

    /// Runs `work` for a session in a background task, unless another task already drives that session.
    pub(crate) fn drive<F, Fut>(&self, rec: SessionRecord, work: F)
    where
        F: FnOnce(SessionService, SessionRecord) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        if !self.claim(&rec.id) {
            return;
        }
        let svc = self.clone();
        tokio::spawn(async move {
            let id = rec.id;
            work(svc.clone(), rec).await;
            svc.release_claim(&id);
        });
    }

    /// Marks a session busy with a background task; false if another task already drives it.
    pub(crate) fn claim(&self, id: &ExamSessionId) -> bool {
        self.inner.busy.lock().unwrap_or_else(|p| p.into_inner()).insert(*id)
    }

    pub(crate) fn release_claim(&self, id: &ExamSessionId) {
        self.inner.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    pub(crate) fn is_busy(&self, id: &ExamSessionId) -> bool {
        self.inner.busy.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Picks up a live session's work after a restart.
    fn resume(&self, rec: SessionRecord) {
        match rec.state {
            SessionState::Created | SessionState::Provisioning => {
                crate::provision::spawn(self.clone(), rec, Path::Unknown)
            }
            SessionState::Ready | SessionState::Active => crate::timers::arm(self.clone(), &rec),
            SessionState::Terminating => crate::ending::spawn(self.clone(), rec),
            _ => {}
        }
    }

    /// Fails a live session: its environment is destroyed (retried within a budget), then the session becomes
    /// `failed` with `code`. `detail` is for proctors only.
    pub(crate) async fn fail(
        &self,
        rec: &SessionRecord,
        code: FailureCode,
        detail: String,
    ) -> Result<SessionRecord, DomainError> {
        let released = crate::ending::release(self, rec, self.inner.config.fail_teardown_budget).await;
        let changes = SessionChanges {
            failure: Some(Failure::new(code).with_detail(detail)),
            progress: Some(None),
            resources_released_at: released,
            ..SessionChanges::default()
        };
        self.apply(rec, Trigger::Failed(code), changes, "system").await
    }
}
