//! Warm pools: per exam, environments made and set up ahead of demand, so that a candidate's start takes one that is
//! ready instead of making one.
//!
//! - **What a pool aims for** (its target): the exam's `[pool] size`, plus the candidates proctors announced
//!   (`POST /api/v1/pools/{exam}/schedule`) from the time filling for them begins until an hour after their start,
//!   less the claims since; never more than the server's `max_environments` for all pools together.
//! - **Filling** ([`SessionService::pool_pass`], every `interval` and whenever something changes): at most
//!   `fill_concurrency` environments are made at once, and none while a candidate's session is being created or
//!   provisioned (candidates first). A fill needs a slot within `max_live_sessions` and memory within the admission
//!   budget, with room left for one more environment of the exam; a pooled environment holds both until it is
//!   claimed or destroyed. A fill runs the exam's `prepare` setup scripts (never the `claim` ones: a pooled
//!   environment holds nothing of any candidate) and is recorded in the store first (`filling`, then `ready`). An
//!   exam whose fills fail is retried with a growing pause (5 s to 10 min).
//! - **Claims** (`SessionService::create`): the oldest `ready` environment of the exam, made under the exam's current
//!   digest and younger than its `max_age`, is claimed in the same transaction that stores the session (a
//!   compare-and-swap in the store; see `examroom_store::pool`); its memory moves to the session. A claimed
//!   environment is the session's for good: it is destroyed with it and never returns to a pool. No ready environment:
//!   the create takes today's path, and a miss is counted.
//! - **Retiring**: a pooled environment is destroyed unclaimed when its exam changed (another digest) or left the
//!   catalog, when it passed the exam's `max_age`, when it was lost, when an announcement ended (surplus), when its
//!   making was abandoned (a server stopped meanwhile), or to make room for a candidate's own create (evicted: a
//!   candidate present now comes before one announced). It is marked `retiring` in the store first, so no claim can
//!   take it, then destroyed, then deleted.
//! - **Restart**: the entries are in the store, the environments in the runtime; the reservations are restored, the
//!   reconciler counts pooled environments apart from orphans and retires the lost ones, and the first pass retires
//!   what is out of date.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use examroom_core::{DomainError, EnvironmentId, ExamId, Role, SessionState};
use examroom_exams::Exam;
use examroom_runtime::{EnvironmentState, EnvironmentStatus, ExecutionRuntime, RuntimeError};
use examroom_store::{NewPoolSchedule, PoolEntry, PoolSchedule, PoolState, PoolStore};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::admission::Holder;
use crate::metrics;
use crate::service::{incident, Caller, SessionService};

/// How pools behave on this server (`ServiceConfig::pool`).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// This server's label: it fills, claims and retires only the pooled environments it owns.
    pub owner: String,
    /// The most pooled environments for all exams together (also kept within `max_live_sessions`); 0 turns pools
    /// off.
    pub max_environments: usize,
    /// At most this many pooled environments are being made at once.
    pub fill_concurrency: usize,
    /// How often the pools are looked after even when nothing happens (expiry, announcements that begin).
    pub interval: Duration,
    /// Filling for announced candidates begins at least this long before their start.
    pub lead: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            owner: "main".into(),
            max_environments: 100,
            fill_concurrency: 2,
            interval: Duration::from_secs(5),
            lead: Duration::from_secs(15 * 60),
        }
    }
}

/// An announcement holds until this long after its start (for candidates who come late).
pub const ANNOUNCEMENT_HOLDS: Duration = Duration::from_secs(60 * 60);
/// The most candidates one announcement may announce.
pub const MAX_ANNOUNCED: u32 = 10_000;
/// An announcement's start may be at most this far ahead.
pub const MAX_ANNOUNCED_AHEAD: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// What filling one environment is assumed to take before one was measured (for an announcement's lead).
const ASSUMED_FILL: Duration = Duration::from_secs(10);
/// The first pause of an exam's pool after a failed fill; each further failure doubles it, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(5);
/// The longest pause of an exam's pool after failed fills.
const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// How long destroying one pooled environment is retried.
const DESTROY_BUDGET: Duration = Duration::from_secs(30);

/// A pooled environment as this server last saw it (advisory: the store decides every claim and retirement).
#[derive(Clone, Debug)]
struct Known {
    exam: ExamId,
    state: PoolState,
    created_at: i64,
    current: bool,
}

/// What a task of this server does with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    /// Makes it (until the fill ends, whatever the store says meanwhile).
    Fill,
    /// Destroys it.
    Retire,
}

#[derive(Default)]
struct Book {
    /// This server's unclaimed entries.
    entries: HashMap<EnvironmentId, Known>,
    /// Entries a task of this server is making or destroying.
    busy: HashMap<EnvironmentId, Task>,
    /// What each exam's pool aims for, as of the last pass.
    targets: HashMap<ExamId, u32>,
    /// Exams whose fills failed: no fill before `until` (unix ms); the next pause is `next`.
    backoff: HashMap<ExamId, (i64, Duration)>,
    /// How long a fill of each exam took (moving average, ms).
    fill_ms: HashMap<ExamId, f64>,
}

/// The pools' state in this process.
pub(crate) struct Pools {
    pub(crate) settings: PoolSettings,
    /// Each exam's digest, as of the catalog now (a reload sets them again).
    digests: Mutex<HashMap<ExamId, String>>,
    book: Mutex<Book>,
    wake: Notify,
    fills: std::sync::Arc<Semaphore>,
    stopped: AtomicBool,
    /// Held by a pass for its whole duration.
    pass: tokio::sync::Mutex<()>,
}

impl Pools {
    pub(crate) fn new(settings: PoolSettings, catalog: &examroom_exams::Catalog) -> Pools {
        let digests = catalog.exams().map(|e| (e.id.clone(), e.digest())).collect();
        let fills = std::sync::Arc::new(Semaphore::new(settings.fill_concurrency.max(1)));
        Pools {
            settings,
            digests: Mutex::new(digests),
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            fills,
            stopped: AtomicBool::new(false),
            pass: tokio::sync::Mutex::new(()),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exam's digest now.
    pub(crate) fn digest(&self, exam: &ExamId) -> Option<String> {
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).get(exam).cloned()
    }

    /// The digests of a reloaded catalog: prepared environments of exams that changed are retired by the next pass.
    pub(crate) fn set_digests(&self, catalog: &examroom_exams::Catalog) {
        let digests = catalog.exams().map(|e| (e.id.clone(), e.digest())).collect();
        *self.digests.lock().unwrap_or_else(|p| p.into_inner()) = digests;
    }

    /// Asks for a pass soon.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Whether a claim may find a ready environment of `exam` (as far as this server knows).
    pub(crate) fn may_claim(&self, exam: &ExamId) -> bool {
        self.book().entries.values().any(|k| k.exam == *exam && k.state == PoolState::Ready && k.current)
    }

    /// Whether `exam` has a pool now (for counting misses).
    pub(crate) fn has_pool(&self, exam: &Exam) -> bool {
        exam.pool.size > 0 || self.book().targets.get(&exam.id).is_some_and(|t| *t > 0)
    }

    /// A claim took `env`.
    pub(crate) fn claimed(&self, env: &EnvironmentId) {
        self.book().entries.remove(env);
        self.wake();
    }

    /// A pooled environment to take out for a candidate of `exam`: a ready one of another exam first (oldest first),
    /// then an out-of-date one, then one still being made.
    fn victim(&self, exam: &ExamId, tried: &HashSet<EnvironmentId>) -> Option<EnvironmentId> {
        let book = self.book();
        let rank = |k: &Known, task: Option<&Task>| match (k.state, task) {
            (PoolState::Ready, None) if k.exam != *exam => Some(0),
            (PoolState::Ready, None) => Some(1),
            (PoolState::Filling | PoolState::Ready, Some(Task::Fill)) => Some(2),
            _ => None,
        };
        book.entries
            .iter()
            .filter(|(env, _)| !tried.contains(env))
            .filter_map(|(env, k)| rank(k, book.busy.get(env)).map(|r| (r, k.created_at, *env)))
            .min()
            .map(|(_, _, env)| env)
    }

    /// Marks `env` busy with a retirement; false if a task already has it.
    fn take(&self, env: EnvironmentId) -> bool {
        match self.book().busy.entry(env) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Task::Retire);
                true
            }
        }
    }

    fn done(&self, env: &EnvironmentId, gone: bool) {
        let mut book = self.book();
        book.busy.remove(env);
        if gone {
            book.entries.remove(env);
        }
    }

    fn set_state(&self, env: &EnvironmentId, state: PoolState) {
        if let Some(k) = self.book().entries.get_mut(env) {
            k.state = state;
        }
    }
}

/// One exam's pool, for proctors.
#[derive(Debug, Clone)]
pub struct PoolStatus {
    /// The exam.
    pub exam_id: ExamId,
    /// Its standing size (`[pool] size`).
    pub size: u32,
    /// Its maximum age (`[pool] max_age`).
    pub max_age: Duration,
    /// What it aims for now.
    pub target: u32,
    /// Its environments that are not claimed (of every server), oldest first.
    pub entries: Vec<PoolEntry>,
    /// The announcements for it that still hold.
    pub schedules: Vec<PoolSchedule>,
}

/// Every pool, for proctors.
#[derive(Debug, Clone)]
pub struct PoolsOverview {
    /// The most pooled environments for all exams together.
    pub max_environments: usize,
    /// Pooled environments being made at once, at most.
    pub fill_concurrency: usize,
    /// One per exam that has a pool, an announcement, or pooled environments.
    pub pools: Vec<PoolStatus>,
}

impl SessionService {
    fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    fn owner(&self) -> &str {
        &self.pools().settings.owner
    }

    /// The server-wide cap on pooled environments.
    fn pool_cap(&self) -> usize {
        self.pools().settings.max_environments.min(self.inner.config.max_live_sessions)
    }

    /// Loads this server's pooled environments at start: their reservations as a previous process admitted them.
    pub(crate) async fn restore_pools(&self) -> Result<(), String> {
        let entries = self.inner.store.pool_entries(Some(self.owner())).await.map_err(|e| e.to_string())?;
        let mut book = self.pools().book();
        for e in entries {
            if matches!(e.state, PoolState::Filling | PoolState::Ready) {
                self.inner.admission.restore(Holder::Pooled(e.environment_id), self.memory_of(&e.exam_id));
            }
            let current = self.pools().digest(&e.exam_id).as_deref() == Some(e.exam_digest.as_str());
            book.entries
                .insert(e.environment_id, Known { exam: e.exam_id, state: e.state, created_at: e.created_at, current });
        }
        Ok(())
    }

    /// Looks after the pools in the background until [`SessionService::stop_pools`].
    pub(crate) fn spawn_pools(&self) {
        let svc = self.clone();
        tokio::spawn(async move {
            loop {
                if svc.pools().stopped() {
                    return;
                }
                svc.pool_pass().await;
                let interval = svc.pools().settings.interval;
                tokio::select! {
                    _ = svc.pools().wake.notified() => {}
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
    }

    /// Stops filling and retiring, and waits (bounded) for the fills and retirements under way. Environments are
    /// left as they are (a restarted server finds them). For tests and shutdown.
    pub async fn stop_pools(&self) {
        let pools = self.pools();
        pools.stopped.store(true, Ordering::Relaxed);
        pools.wake();
        let _pass = pools.pass.lock().await;
        let k = pools.settings.fill_concurrency.max(1) as u32;
        if tokio::time::timeout(Duration::from_secs(90), pools.fills.acquire_many(k)).await.is_err() {
            tracing::warn!("pool fills did not finish within 90 s");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !pools.book().busy.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One look after the pools: retires what must go, computes each exam's target, starts fills.
    pub async fn pool_pass(&self) {
        let pools = self.pools();
        let _pass = pools.pass.lock().await;
        if pools.stopped() {
            return;
        }
        let now = self.now_ms();
        let entries = match self.inner.store.pool_entries(Some(self.owner())).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "pools: could not read the pooled environments");
                return;
            }
        };
        let schedules = self.inner.store.pool_schedules(now).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "pools: could not read the announcements");
            Vec::new()
        });
        {
            let mut book = pools.book();
            let stored: HashSet<EnvironmentId> = entries.iter().map(|e| e.environment_id).collect();
            let busy: HashSet<EnvironmentId> = book.busy.keys().copied().collect();
            // What a task of this server is making may not be stored yet.
            book.entries.retain(|env, _| busy.contains(env) && !stored.contains(env));
            for e in &entries {
                let current = pools.digest(&e.exam_id).as_deref() == Some(e.exam_digest.as_str());
                book.entries.insert(
                    e.environment_id,
                    Known { exam: e.exam_id.clone(), state: e.state, created_at: e.created_at, current },
                );
            }
        }
        // What must go.
        let catalog = self.catalog();
        for e in &entries {
            let exam = catalog.get(&e.exam_id);
            let reason = match e.state {
                PoolState::Retiring => Some("finish"),
                PoolState::Filling => Some("abandoned"),
                PoolState::Ready => match exam {
                    Some(exam) if pools.digest(&exam.id).as_deref() != Some(e.exam_digest.as_str()) => {
                        Some("exam_changed")
                    }
                    None => Some("exam_changed"),
                    Some(exam) if now >= e.created_at + exam.pool.max_age.as_millis() as i64 => Some("expired"),
                    Some(_) => None,
                },
                PoolState::Claimed => None,
            };
            // An entry busy with a task of this server is that task's (a fill in progress is `filling`).
            if let Some(reason) = reason {
                if pools.take(e.environment_id) {
                    self.spawn_retire(e.environment_id, e.exam_id.clone(), e.state, reason);
                }
            }
        }
        // What each exam's pool aims for.
        let before = pools.book().targets.clone();
        let mut targets = HashMap::new();
        let mut deficits: Vec<(ExamId, u32)> = Vec::new();
        for exam in self.catalog().exams() {
            let target = self.pool_target(exam, &schedules, now).await;
            let (ready, filling, mut spare) = {
                let book = pools.book();
                let mut ready: Vec<(i64, EnvironmentId)> = Vec::new();
                let mut filling = 0u32;
                for (env, k) in &book.entries {
                    if k.exam != exam.id || !k.current {
                        continue;
                    }
                    // A fill under way counts as filling until it ends, whatever the store says meanwhile; an entry
                    // being retired does not count.
                    match (k.state, book.busy.get(env)) {
                        (_, Some(Task::Fill)) => filling += 1,
                        (PoolState::Ready, None) if now < k.created_at + exam.pool.max_age.as_millis() as i64 => {
                            ready.push((k.created_at, *env))
                        }
                        _ => {}
                    }
                }
                ready.sort();
                let n = ready.len() as u32;
                (n, filling, ready)
            };
            let have = ready + filling;
            if have > target {
                // An announcement ended: the pool shrinks back (the oldest go first).
                spare.truncate((have - target).min(ready) as usize);
                for (_, env) in spare {
                    if pools.take(env) {
                        self.spawn_retire(env, exam.id.clone(), PoolState::Ready, "surplus");
                    }
                }
            } else if have < target {
                deficits.push((exam.id.clone(), target - have));
            }
            if target > 0 || have > 0 || before.get(&exam.id).is_some_and(|t| *t > 0) {
                let e = exam.id.to_string();
                ::metrics::gauge!(metrics::POOL_TARGET, "exam" => e.clone()).set(f64::from(target));
                ::metrics::gauge!(metrics::POOL_ENVIRONMENTS, "exam" => e.clone(), "state" => "ready")
                    .set(f64::from(ready));
                ::metrics::gauge!(metrics::POOL_ENVIRONMENTS, "exam" => e, "state" => "filling")
                    .set(f64::from(filling));
            }
            targets.insert(exam.id.clone(), target);
        }
        pools.book().targets = targets;
        // Candidates first: no fill starts while a session is being created or provisioned.
        if self.starting_sessions() > 0 || deficits.is_empty() {
            return;
        }
        // Round robin over the exams that need environments, while the machine has room.
        let mut progress = true;
        while progress {
            progress = false;
            for (exam_id, missing) in deficits.iter_mut() {
                if *missing == 0 {
                    continue;
                }
                let backed_off = pools.book().backoff.get(exam_id).is_some_and(|(until, _)| now < *until);
                if backed_off {
                    continue;
                }
                let catalog = self.catalog();
                let Some(exam) = catalog.get(exam_id) else { continue };
                match self.start_fill(exam) {
                    Fill::Started => {
                        *missing -= 1;
                        progress = true;
                    }
                    Fill::NoRoom => return,
                }
            }
        }
    }

    /// What `exam`'s pool aims for at `now`.
    async fn pool_target(&self, exam: &Exam, schedules: &[PoolSchedule], now: i64) -> u32 {
        let active: Vec<&PoolSchedule> = schedules
            .iter()
            .filter(|s| s.schedule.exam_id == exam.id && s.schedule.fill_from <= now && now < s.schedule.until)
            .collect();
        let announced = match active.iter().map(|s| s.schedule.fill_from).min() {
            None => 0,
            Some(since) => {
                let total = active.iter().fold(0u32, |sum, s| sum.saturating_add(s.schedule.candidates));
                let claims =
                    self.inner.store.pool_claims_since(self.owner(), &exam.id, since).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, exam_id = %exam.id, "pools: could not count claims");
                        0
                    });
                total.saturating_sub(claims)
            }
        };
        let cap = u32::try_from(self.pool_cap()).unwrap_or(u32::MAX);
        exam.pool.size.saturating_add(announced).min(cap)
    }

    /// Starts making one pooled environment of `exam` if the machine has room for it.
    fn start_fill(&self, exam: &Exam) -> Fill {
        let pools = self.pools();
        let Ok(permit) = pools.fills.clone().try_acquire_owned() else { return Fill::NoRoom };
        let pooled = self.inner.admission.pooled();
        if pooled >= self.pool_cap() {
            return Fill::NoRoom;
        }
        // Leave a slot for a candidate.
        if self.live_sessions() + pooled as i64 + 2 > self.inner.config.max_live_sessions as i64 {
            return Fill::NoRoom;
        }
        let env = EnvironmentId::new_v4();
        let bytes = exam.environment.memory_bytes;
        // And the memory of one more environment of this exam.
        if self.inner.admission.reserve_leaving(Holder::Pooled(env), bytes, bytes).is_err() {
            return Fill::NoRoom;
        }
        self.publish_admission();
        {
            let mut book = pools.book();
            book.busy.insert(env, Task::Fill);
            let known =
                Known { exam: exam.id.clone(), state: PoolState::Filling, created_at: self.now_ms(), current: true };
            book.entries.insert(env, known);
        }
        let svc = self.clone();
        let exam_id = exam.id.clone();
        tokio::spawn(async move { svc.fill(env, exam_id, permit).await });
        Fill::Started
    }

    /// Makes and sets up one pooled environment (its `prepare` scripts), then records it `ready`.
    async fn fill(&self, env: EnvironmentId, exam_id: ExamId, permit: OwnedSemaphorePermit) {
        let pools = self.pools();
        let t0 = Instant::now();
        let catalog = self.catalog();
        let (Some(exam), Some(digest)) = (catalog.get(&exam_id), pools.digest(&exam_id)) else {
            self.inner.admission.release(Holder::Pooled(env));
            pools.done(&env, true);
            return;
        };
        let entry = PoolEntry::filling(env, self.owner(), exam_id.clone(), &digest, self.now_ms());
        if let Err(e) = self.inner.store.insert_pool_entry(&entry).await {
            tracing::warn!(error = %e, exam_id = %exam_id, "pools: could not record a pooled environment");
            self.inner.admission.release(Holder::Pooled(env));
            self.publish_admission();
            pools.done(&env, true);
            drop(permit);
            return;
        }
        let outcome = match tokio::time::timeout(exam.provisioning_timeout, self.prepare(exam, env)).await {
            Ok(r) => r,
            Err(_) => {
                Err(format!("not ready within the exam's provisioning timeout ({:?})", exam.provisioning_timeout))
            }
        };
        let e = exam_id.to_string();
        let ready = match outcome {
            Ok(()) => match self.inner.store.pool_entry_ready(&env, self.now_ms()).await {
                Ok(true) => true,
                Ok(false) => {
                    // Taken out (evicted) while it was being made: whoever did it has its memory.
                    tracing::info!(environment_id = %env, exam_id = %exam_id, "pools: evicted while being made");
                    self.finish_retire(env).await;
                    false
                }
                Err(err) => {
                    tracing::warn!(environment_id = %env, error = %err, "pools: could not record ready");
                    self.retire_now(env, &exam_id, &[PoolState::Filling, PoolState::Retiring], "abandoned").await;
                    false
                }
            },
            Err(detail) => {
                ::metrics::counter!(metrics::POOL_FILLS, "exam" => e.clone(), "outcome" => "failed").increment(1);
                let pause = {
                    let mut book = pools.book();
                    let pause = book.backoff.get(&exam_id).map_or(BACKOFF_MIN, |(_, d)| *d);
                    let next = (pause * 2).min(BACKOFF_MAX);
                    book.backoff.insert(exam_id.clone(), (self.now_ms() + pause.as_millis() as i64, next));
                    pause
                };
                tracing::warn!(environment_id = %env, exam_id = %exam_id, %detail, pause_s = pause.as_secs(),
                    "pools: a pooled environment could not be made; the exam's pool pauses");
                self.retire_now(env, &exam_id, &[PoolState::Filling, PoolState::Retiring], "failed").await;
                false
            }
        };
        if ready {
            let took = t0.elapsed();
            ::metrics::counter!(metrics::POOL_FILLS, "exam" => e.clone(), "outcome" => "ready").increment(1);
            ::metrics::histogram!(metrics::POOL_FILL_DURATION, "exam" => e).record(took.as_secs_f64());
            {
                let mut book = pools.book();
                book.backoff.remove(&exam_id);
                let ms = took.as_secs_f64() * 1000.0;
                let avg = book.fill_ms.get(&exam_id).map_or(ms, |a| 0.7 * a + 0.3 * ms);
                book.fill_ms.insert(exam_id.clone(), avg);
            }
            pools.set_state(&env, PoolState::Ready);
            pools.done(&env, false);
            tracing::info!(environment_id = %env, exam_id = %exam_id, took_ms = took.as_millis() as u64,
                "pools: environment ready");
        } else {
            pools.done(&env, true);
        }
        drop(permit);
        pools.wake();
    }

    /// Makes environment `env` for `exam` and runs its `prepare` setup scripts (no candidate is known).
    async fn prepare(&self, exam: &Exam, env: EnvironmentId) -> Result<(), String> {
        let rt = &self.inner.runtime;
        let spec = crate::provision::spec_for(exam, env)?;
        rt.create(spec).await.map_err(|e| format!("create environment: {e}"))?;
        crate::provision::start_desktop(rt, exam, &env).await.map_err(|(_, detail)| detail)?;
        let setups = exam.prepare_steps();
        for (i, (task, script)) in setups.into_iter().enumerate() {
            crate::provision::run_setup(rt, &env, i + 1, task, script, exam.provisioning_timeout, None)
                .await
                .map_err(|(_, detail)| detail)?;
        }
        crate::provision::check_running(rt, &env).await.map_err(|(_, detail)| detail)
    }

    /// Retires an entry (marked busy by the caller) in a background task.
    fn spawn_retire(&self, env: EnvironmentId, exam: ExamId, state: PoolState, reason: &'static str) {
        let svc = self.clone();
        tokio::spawn(async move {
            let from: &[PoolState] = match state {
                PoolState::Retiring => &[PoolState::Retiring],
                PoolState::Filling => &[PoolState::Filling],
                _ => &[PoolState::Ready],
            };
            svc.retire_now(env, &exam, from, reason).await;
            svc.pools().done(&env, true);
        });
    }

    /// Marks an entry `retiring` (if it is in one of `from`), gives its reservation back, destroys its environment
    /// and deletes the entry. An entry claimed meanwhile is left alone.
    async fn retire_now(&self, env: EnvironmentId, exam: &ExamId, from: &[PoolState], reason: &'static str) {
        match self.inner.store.retire_pool_entry(&env, self.owner(), from).await {
            Ok(Some(prev)) => {
                if self.inner.admission.release(Holder::Pooled(env)) {
                    self.publish_admission();
                }
                if prev != PoolState::Retiring && reason != "failed" {
                    ::metrics::counter!(metrics::POOL_RETIRED, "exam" => exam.to_string(), "reason" => reason)
                        .increment(1);
                    tracing::info!(environment_id = %env, exam_id = %exam, reason, "pools: retiring");
                }
                self.finish_retire(env).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(environment_id = %env, error = %e, "pools: could not retire"),
        }
    }

    /// Destroys a retiring entry's environment, then deletes the entry (left for the next pass if the destroy does
    /// not finish).
    async fn finish_retire(&self, env: EnvironmentId) {
        if !destroy(self, &env).await {
            tracing::warn!(environment_id = %env, "pools: destroy not verified; retried later");
            return;
        }
        if let Err(e) = self.inner.store.delete_pool_entry(&env).await {
            tracing::warn!(environment_id = %env, error = %e, "pools: could not delete an entry");
        }
    }

    /// Takes a pooled environment out of the pools to make room for a candidate's own create of `exam`: it is marked
    /// `retiring` in the store (so no claim takes it) and destroyed in the background. Returns it: its reservation is
    /// still held, for the caller to take over.
    pub(crate) async fn evict_for(&self, exam: &ExamId) -> Option<EnvironmentId> {
        let pools = self.pools();
        let mut tried = HashSet::new();
        loop {
            let victim = pools.victim(exam, &tried)?;
            tried.insert(victim);
            match self
                .inner
                .store
                .retire_pool_entry(&victim, self.owner(), &[PoolState::Ready, PoolState::Filling])
                .await
            {
                Ok(Some(prev)) => {
                    let victim_exam = pools.book().entries.get(&victim).map(|k| k.exam.to_string()).unwrap_or_default();
                    ::metrics::counter!(metrics::POOL_RETIRED, "exam" => victim_exam, "reason" => "evicted")
                        .increment(1);
                    tracing::info!(environment_id = %victim, for_exam = %exam, "pools: evicted for a candidate");
                    pools.set_state(&victim, PoolState::Retiring);
                    // One still being made is destroyed by its fill, which finds its entry retired.
                    if prev == PoolState::Ready && pools.take(victim) {
                        let svc = self.clone();
                        tokio::spawn(async move {
                            svc.finish_retire(victim).await;
                            svc.pools().done(&victim, true);
                        });
                    }
                    return Some(victim);
                }
                // Claimed or retired meanwhile.
                Ok(None) => {
                    pools.book().entries.remove(&victim);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pools: could not evict");
                    return None;
                }
            }
        }
    }

    /// The reconciler's part: this server's ready pooled environments that are gone or lost are retired. Returns
    /// how many.
    /// `listed_at` is when the runtime began listing `envs`: an entry that became ready later may hold an environment
    /// the list could not see.
    pub(crate) fn reconcile_pools(
        &self,
        entries: &[PoolEntry],
        envs: &HashMap<EnvironmentId, &EnvironmentStatus>,
        listed_at: i64,
    ) -> usize {
        if self.pools().stopped() {
            return 0;
        }
        let mut lost = 0;
        let mine = entries.iter().filter(|e| e.owner == self.owner() && e.state == PoolState::Ready);
        for e in mine.filter(|e| e.ready_at.is_some_and(|r| r < listed_at)) {
            let gone = match envs.get(&e.environment_id).map(|s| &s.state) {
                None => true,
                Some(EnvironmentState::Lost { .. }) => true,
                Some(EnvironmentState::Running) => false,
            };
            if gone && self.pools().take(e.environment_id) {
                lost += 1;
                tracing::warn!(environment_id = %e.environment_id, exam_id = %e.exam_id, "pools: lost; retiring");
                self.spawn_retire(e.environment_id, e.exam_id.clone(), PoolState::Ready, "lost");
            }
        }
        lost
    }

    /// Every pool (proctors).
    pub async fn pools_overview(&self, caller: &Caller) -> Result<PoolsOverview, DomainError> {
        if caller.role != Role::Proctor {
            return Err(DomainError::Forbidden);
        }
        let now = self.now_ms();
        let entries = self.inner.store.pool_entries(None).await.map_err(|e| incident("list pools", &e))?;
        let schedules = self.inner.store.pool_schedules(now).await.map_err(|e| incident("list announcements", &e))?;
        let targets = self.pools().book().targets.clone();
        let mut pools = Vec::new();
        let mut exams: Vec<ExamId> = self.catalog().exams().map(|e| e.id.clone()).collect();
        for e in &entries {
            if !exams.contains(&e.exam_id) {
                exams.push(e.exam_id.clone());
            }
        }
        let catalog = self.catalog();
        for exam_id in exams {
            let exam = catalog.get(&exam_id);
            let mine: Vec<PoolEntry> = entries.iter().filter(|e| e.exam_id == exam_id).cloned().collect();
            let announced: Vec<PoolSchedule> =
                schedules.iter().filter(|s| s.schedule.exam_id == exam_id).cloned().collect();
            let size = exam.map_or(0, |e| e.pool.size);
            if size == 0 && mine.is_empty() && announced.is_empty() {
                continue;
            }
            pools.push(PoolStatus {
                target: targets.get(&exam_id).copied().unwrap_or(0),
                size,
                max_age: exam.map_or(examroom_exams::definition::DEFAULT_POOL_MAX_AGE, |e| e.pool.max_age),
                exam_id,
                entries: mine,
                schedules: announced,
            });
        }
        Ok(PoolsOverview {
            max_environments: self.pool_cap(),
            fill_concurrency: self.pools().settings.fill_concurrency.max(1),
            pools,
        })
    }

    /// A proctor announces `candidates` candidates for `exam_id` at `at` (unix ms): the pool fills for them ahead of
    /// time, from `at` less the lead (the longer of the configured lead and twice the time the fills are expected to
    /// take), until an hour after `at`.
    pub async fn schedule_pool(
        &self,
        caller: &Caller,
        exam_id: &str,
        candidates: u32,
        at: i64,
    ) -> Result<PoolSchedule, DomainError> {
        if caller.role != Role::Proctor {
            return Err(DomainError::Forbidden);
        }
        let id = ExamId::parse(exam_id).map_err(|_| DomainError::ExamNotFound)?;
        let catalog = self.catalog();
        let exam = catalog.get(&id).ok_or(DomainError::ExamNotFound)?;
        if self.pool_cap() == 0 {
            return Err(DomainError::invalid_request(
                "warm pools are turned off on this server (its pool_max is 0), so nothing can be prepared",
            ));
        }
        if !(1..=MAX_ANNOUNCED).contains(&candidates) {
            return Err(DomainError::invalid_request(format!("candidates must be from 1 to {MAX_ANNOUNCED}")));
        }
        let now = self.now_ms();
        if at < now - 60_000 {
            return Err(DomainError::invalid_request("at is in the past; announce a start that is still to come"));
        }
        if at > now + MAX_ANNOUNCED_AHEAD.as_millis() as i64 {
            return Err(DomainError::invalid_request("at is more than 30 days ahead; announce it closer to the day"));
        }
        let k = self.pools().settings.fill_concurrency.max(1) as u64;
        let per_fill =
            self.pools().book().fill_ms.get(&id).copied().unwrap_or(ASSUMED_FILL.as_millis() as f64).max(1.0) as u64;
        let rounds = u64::from(candidates).div_ceil(k);
        let estimate = rounds.saturating_mul(per_fill).saturating_mul(2);
        let lead = (self.pools().settings.lead.as_millis() as u64).max(estimate) as i64;
        let schedule = NewPoolSchedule {
            exam_id: exam.id.clone(),
            candidates,
            at,
            fill_from: at.saturating_sub(lead).max(now).min(at),
            until: at.max(now) + ANNOUNCEMENT_HOLDS.as_millis() as i64,
            created_at: now,
            actor: caller.actor(),
        };
        let stored = self
            .inner
            .store
            .insert_pool_schedule(&schedule)
            .await
            .map_err(|e| incident("store an announcement", &e))?;
        tracing::info!(exam_id = %exam.id, candidates, at, fill_from = schedule.fill_from, actor = %schedule.actor,
            "pools: candidates announced");
        self.pools().wake();
        Ok(stored)
    }

    /// A proctor cancels an announcement.
    pub async fn cancel_pool_schedule(&self, caller: &Caller, exam_id: &str, id: i64) -> Result<(), DomainError> {
        if caller.role != Role::Proctor {
            return Err(DomainError::Forbidden);
        }
        let exam = ExamId::parse(exam_id).map_err(|_| DomainError::ExamNotFound)?;
        let cancelled = self
            .inner
            .store
            .cancel_pool_schedule(&exam, id, self.now_ms())
            .await
            .map_err(|e| incident("cancel an announcement", &e))?;
        if !cancelled {
            return Err(DomainError::NotFound);
        }
        tracing::info!(exam_id = %exam, schedule_id = id, actor = %caller.actor(), "pools: announcement cancelled");
        self.pools().wake();
        Ok(())
    }

    /// Sessions being created or provisioned now.
    fn starting_sessions(&self) -> i64 {
        self.count_of(SessionState::Created) + self.count_of(SessionState::Provisioning)
    }
}

/// Whether a fill could start.
enum Fill {
    Started,
    NoRoom,
}

/// Destroys a pooled environment, retrying within [`DESTROY_BUDGET`]; true once it is verified gone.
async fn destroy(svc: &SessionService, env: &EnvironmentId) -> bool {
    let start = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        match svc.inner.runtime.destroy(env).await {
            Ok(report) if report.verified => return true,
            Err(RuntimeError::NotFound) => return true,
            Ok(_) => tracing::warn!(environment_id = %env, "pools: teardown not verified yet; retrying"),
            Err(e) => tracing::warn!(environment_id = %env, error = %e, "pools: teardown failed; retrying"),
        }
        if start.elapsed() + wait > DESTROY_BUDGET {
            return false;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(exam: &str, state: PoolState, created_at: i64) -> Known {
        Known { exam: ExamId::parse(exam).unwrap(), state, created_at, current: true }
    }

    #[test]
    fn a_candidate_takes_room_from_other_exams_first_and_oldest_first() {
        let pools = Pools::new(PoolSettings::default(), &examroom_exams::Catalog::empty());
        let ids: Vec<EnvironmentId> = (0..6).map(|_| EnvironmentId::new_v4()).collect();
        {
            let mut book = pools.book();
            book.entries.insert(ids[0], known("mine", PoolState::Ready, 1));
            book.entries.insert(ids[1], known("other", PoolState::Ready, 5));
            book.entries.insert(ids[2], known("other", PoolState::Ready, 3));
            book.entries.insert(ids[3], known("other", PoolState::Filling, 0));
            book.entries.insert(ids[4], known("other", PoolState::Retiring, 0));
            book.entries.insert(ids[5], known("other", PoolState::Ready, 2));
            // Busy with a retirement: not a victim while ready.
            book.busy.insert(ids[5], Task::Retire);
            book.busy.insert(ids[3], Task::Fill);
        }
        let mine = ExamId::parse("mine").unwrap();
        let mut tried = HashSet::new();
        let mut order = Vec::new();
        while let Some(v) = pools.victim(&mine, &tried) {
            tried.insert(v);
            order.push(v);
        }
        // Other exams' ready ones (oldest first), then the exam's own, then one still being made; never a retiring
        // one or a ready one being retired.
        assert_eq!(order, [ids[2], ids[1], ids[0], ids[3]]);
    }

    #[test]
    fn a_claim_needs_a_current_ready_environment_of_the_exam() {
        let pools = Pools::new(PoolSettings::default(), &examroom_exams::Catalog::empty());
        let exam = ExamId::parse("x").unwrap();
        assert!(!pools.may_claim(&exam));
        let env = EnvironmentId::new_v4();
        pools.book().entries.insert(env, known("x", PoolState::Filling, 0));
        assert!(!pools.may_claim(&exam));
        pools.set_state(&env, PoolState::Ready);
        assert!(pools.may_claim(&exam));
        pools.book().entries.get_mut(&env).unwrap().current = false;
        assert!(!pools.may_claim(&exam), "made under another digest");
        pools.book().entries.get_mut(&env).unwrap().current = true;
        pools.claimed(&env);
        assert!(!pools.may_claim(&exam));
    }
}
