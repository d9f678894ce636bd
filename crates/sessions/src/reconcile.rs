//! The reconciler: at start-up and periodically, the runtime's environments and the stored sessions are made to
//! agree. Every live environment belongs to a live session or to a pool (the rest, orphans, are destroyed); every
//! live session past `provisioning` has its environment (else it fails as `environment_lost`); a ready pooled
//! environment that is gone or lost is retired from its pool; work that nobody drives (after a restart) is picked up
//! again.

use std::collections::HashMap;
use std::time::Instant;

use examroom_core::{EnvironmentId, FailureCode, SessionState};
use examroom_runtime::{EnvironmentState, ExecutionRuntime};
use examroom_store::{EventKind, ListFilter, NewEvent, PoolStore, SessionStore};

use crate::metrics;
use crate::service::SessionService;

/// What one pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Environments the runtime holds.
    pub environments: usize,
    /// Live sessions in the store.
    pub live_sessions: usize,
    /// Environments that belonged to no live session, destroyed.
    pub orphans: usize,
    /// Environments held by pools (neither a session's nor orphans).
    pub pooled: usize,
    /// Pooled environments that were gone or lost, retired.
    pub pooled_lost: usize,
    /// Sessions whose environment was gone, failed as `environment_lost`.
    pub lost: usize,
    /// Sessions whose provisioning or ending was picked up again.
    pub resumed: usize,
    /// Failed sessions whose environment was released late.
    pub released: usize,
    /// What went wrong (the pass goes on).
    pub errors: Vec<String>,
}

impl SessionService {
    /// One reconcile pass.
    pub async fn reconcile_once(&self) -> ReconcileReport {
        let t0 = Instant::now();
        let listed_at = self.now_ms();
        let mut report = ReconcileReport::default();
        let (envs, unlisted) = self.inner.runtime.list_each().await;
        // A backend that did not answer (Docker down; out of descriptors): its environments' states are unknown, so
        // none of them is failed or destroyed on this pass; the next one tries again. The other backends' are judged.
        let mut unknown = std::collections::HashSet::new();
        for (kind, e) in &unlisted {
            if e.is_out_of_resources() {
                tracing::warn!(error = %e, "reconcile skipped: the server is out of resources");
            }
            report.errors.push(format!("runtime list ({kind}): {e}"));
            unknown.insert(*kind);
        }
        if unknown.len() == self.inner.runtime.kinds().len() {
            return report;
        }
        let judged = |env: &EnvironmentId| {
            unknown.is_empty() || self.inner.runtime.backend_holding(env).is_some_and(|k| !unknown.contains(&k))
        };
        // The pools before the sessions: a claim stores the session in the same transaction that takes the
        // environment out of its pool, so an environment listed above is in one of the two lists.
        let pooled = match self.inner.store.pool_entries(None).await {
            Ok(p) => p,
            Err(e) => {
                report.errors.push(format!("store pools: {e}"));
                return report;
            }
        };
        let live = match self.inner.store.list(&ListFilter { live_only: true, ..ListFilter::default() }).await {
            Ok(l) => l,
            Err(e) => {
                report.errors.push(format!("store list: {e}"));
                return report;
            }
        };
        report.environments = envs.len();
        report.live_sessions = live.len();
        let owners: HashMap<_, _> = live.iter().map(|s| (s.environment_id, s)).collect();
        let by_env: HashMap<_, _> = envs.iter().map(|e| (e.id, e)).collect();

        let pooled_ids: std::collections::HashSet<_> = pooled.iter().map(|e| e.environment_id).collect();
        for env in &envs {
            if owners.contains_key(&env.id) {
                continue;
            }
            if pooled_ids.contains(&env.id) {
                report.pooled += 1;
                continue;
            }
            report.orphans += 1;
            tracing::warn!(environment_id = %env.id, "orphan environment: destroying");
            match self.inner.runtime.destroy(&env.id).await {
                Ok(_) => ::metrics::counter!(metrics::ORPHANS_DESTROYED).increment(1),
                Err(e) => report.errors.push(format!("destroy orphan {}: {e}", env.id)),
            }
        }
        ::metrics::gauge!(metrics::ORPHANS).set(report.orphans as f64);
        ::metrics::gauge!(metrics::RECONCILE_POOLED).set(report.pooled as f64);
        if unknown.is_empty() {
            report.pooled_lost = self.reconcile_pools(&pooled, &by_env, listed_at);
        }

        for s in &live {
            if self.is_busy(&s.id) || !judged(&s.environment_id) {
                continue;
            }
            match s.state {
                SessionState::Ready | SessionState::Active => {
                    let why = match by_env.get(&s.environment_id).map(|e| &e.state) {
                        // Ready since the list began: its environment may have been made after the list looked.
                        None if s.ready_at.is_none_or(|r| r >= listed_at) => None,
                        None => Some("the environment no longer exists".to_string()),
                        Some(EnvironmentState::Lost { reason }) => Some(format!("the environment was lost: {reason}")),
                        Some(EnvironmentState::Running) => None,
                    };
                    if let Some(detail) = why {
                        report.lost += 1;
                        tracing::warn!(session_id = %s.id, %detail, "session lost its environment");
                        if let Err(e) = self.fail(s, FailureCode::EnvironmentLost, detail).await {
                            report.errors.push(format!("fail {}: {e}", s.id));
                        }
                    }
                }
                SessionState::Created | SessionState::Provisioning => {
                    report.resumed += 1;
                    crate::provision::spawn(self.clone(), (*s).clone(), crate::provision::Path::Unknown);
                }
                SessionState::Terminating => {
                    report.resumed += 1;
                    crate::ending::spawn(self.clone(), (*s).clone());
                }
                _ => {}
            }
        }
        // Failed sessions whose teardown ran out of budget: finish their release.
        let failed = ListFilter { state: Some(SessionState::Failed), ..ListFilter::default() };
        if let Ok(list) = self.inner.store.list(&failed).await {
            for s in list.iter().filter(|s| s.resources_released_at.is_none() && !self.is_busy(&s.id)) {
                if let Some(at) = crate::ending::release(self, s, std::time::Duration::from_secs(5)).await {
                    let event = NewEvent {
                        at,
                        kind: EventKind::Reconcile,
                        from: None,
                        to: None,
                        reason: "the failed session's environment was released".into(),
                        actor: "system".into(),
                        data: None,
                    };
                    match self.inner.store.mark_released(&s.id, at, &event).await {
                        Ok(new) => {
                            report.released += 1;
                            self.publish(&new);
                        }
                        Err(e) => report.errors.push(format!("mark {} released: {e}", s.id)),
                    }
                }
            }
        }
        ::metrics::histogram!(metrics::RECONCILE_DURATION).record(t0.elapsed().as_secs_f64());
        report
    }
}
