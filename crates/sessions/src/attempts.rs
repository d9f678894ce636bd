//! Attempts at an exam, the grants of extra attempts, and how fast one candidate may start sessions (issue 9).
//!
//! - **Attempts.** An exam allows [`Attempts`](examroom_exams::Attempts) (`attempts` in `exam.toml`). A candidate's
//!   attempts at it are their sessions of it that reached `active` and did not end `failed` (the store counts them:
//!   `attempts_used`). A session that failed (on the service's side: provisioning, a lost environment) or that was
//!   never started does not use an attempt. Proctors grant extra attempts ([`SessionService::grant_attempts`]); the
//!   grants are append-only and are their own audit trail. A create beyond the allowance is `attempts_exhausted`.
//!   There is no race: an attempt is only used once a session is live, and a candidate has at most one live session.
//! - **The create rate.** At most `max_creates_per_minute` sessions per candidate in any 60 s ([`CreateRate`],
//!   in memory: a restart forgets it). Beyond, `rate_limited` with the seconds until the oldest create leaves the
//!   window. Only creates that would start a session count (not those refused for another reason).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use examroom_core::{DomainError, ExamId, Role, UserId};
use examroom_exams::Exam;
use examroom_store::{AttemptGrant, SessionStore};

use crate::metrics;
use crate::service::{incident, Caller, SessionService};

/// The window of the create rate.
const WINDOW_MS: i64 = 60_000;

/// Candidates whose last create left the window are forgotten once this many are remembered.
const FORGET_AFTER: usize = 4096;

/// The most attempts one grant adds.
pub const MAX_EXTRA_PER_GRANT: u32 = 100;

/// A candidate's attempts at an exam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptsStatus {
    /// The candidate.
    pub user_id: UserId,
    /// The exam.
    pub exam_id: ExamId,
    /// What the exam allows (`None`: no limit).
    pub limit: Option<u32>,
    /// Extra attempts proctors granted.
    pub granted: u32,
    /// Attempts used.
    pub used: u32,
    /// The grants, oldest first.
    pub grants: Vec<AttemptGrant>,
}

impl AttemptsStatus {
    /// The exam's limit plus the grants (`None`: no limit).
    pub fn allowed(&self) -> Option<u32> {
        self.limit.map(|l| l.saturating_add(self.granted))
    }

    /// Attempts left (`None`: no limit).
    pub fn remaining(&self) -> Option<u32> {
        self.allowed().map(|a| a.saturating_sub(self.used))
    }
}

/// Sessions started per candidate in the last minute.
pub(crate) struct CreateRate {
    per_minute: u32,
    recent: Mutex<HashMap<UserId, VecDeque<i64>>>,
}

impl CreateRate {
    /// At most `per_minute` creates per candidate in any 60 s; 0 means no limit.
    pub(crate) fn new(per_minute: u32) -> Self {
        CreateRate { per_minute, recent: Mutex::new(HashMap::new()) }
    }

    /// Records a create by `user` at `now` (unix ms), or says in how many seconds one would be allowed.
    pub(crate) fn reserve(&self, user: &UserId, now: i64) -> Result<(), u32> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= FORGET_AFTER {
            recent.retain(|_, times| times.back().is_some_and(|&t| t > now - WINDOW_MS));
        }
        let times = recent.entry(user.clone()).or_default();
        while times.front().is_some_and(|&t| t <= now - WINDOW_MS) {
            times.pop_front();
        }
        if times.len() >= self.per_minute as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let wait_ms = (oldest + WINDOW_MS - now).max(1);
            return Err(u32::try_from((wait_ms + 999) / 1000).unwrap_or(60));
        }
        times.push_back(now);
        Ok(())
    }

    /// Takes back a reservation made at `at` (the create did not happen after all).
    pub(crate) fn release(&self, user: &UserId, at: i64) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(times) = recent.get_mut(user) {
            if let Some(i) = times.iter().rposition(|&t| t == at) {
                times.remove(i);
            }
        }
    }
}

impl SessionService {
    /// Refuses a create when the candidate has used every attempt at `exam` (`attempts_exhausted`).
    pub(crate) async fn check_attempts(&self, caller: &Caller, exam: &Exam) -> Result<(), DomainError> {
        if exam.attempts.limit().is_none() {
            return Ok(());
        }
        let status = self.attempts_status(&caller.user, exam).await?;
        match status.allowed() {
            Some(allowed) if status.used >= allowed => {
                ::metrics::counter!(metrics::CREATES_REFUSED, "reason" => "attempts").increment(1);
                tracing::info!(user_id = %caller.user, exam_id = %exam.id, used = status.used, allowed,
                    "create refused: no attempts left");
                Err(DomainError::AttemptsExhausted { used: status.used, allowed })
            }
            _ => Ok(()),
        }
    }

    /// Reserves a create in the candidate's rate (`rate_limited` beyond it). Returns the time to give to
    /// [`SessionService::release_create`] if the create does not happen after all.
    pub(crate) fn reserve_create(&self, caller: &Caller) -> Result<i64, DomainError> {
        let now = self.now_ms();
        self.inner.create_rate.reserve(&caller.user, now).map_err(|retry_after_secs| {
            ::metrics::counter!(metrics::CREATES_REFUSED, "reason" => "rate").increment(1);
            tracing::info!(user_id = %caller.user, retry_after_secs, "create refused: too many creates");
            DomainError::RateLimited { retry_after_secs }
        })?;
        Ok(now)
    }

    /// Takes back a reservation of [`SessionService::reserve_create`].
    pub(crate) fn release_create(&self, caller: &Caller, at: i64) {
        self.inner.create_rate.release(&caller.user, at);
    }

    async fn attempts_status(&self, user: &UserId, exam: &Exam) -> Result<AttemptsStatus, DomainError> {
        let store = &self.inner.store;
        let used = store.attempts_used(user, &exam.id).await.map_err(|e| incident("count attempts", &e))?;
        let grants = store.attempt_grants(user, &exam.id).await.map_err(|e| incident("read attempt grants", &e))?;
        let granted = grants.iter().fold(0u32, |sum, g| sum.saturating_add(g.extra));
        Ok(AttemptsStatus {
            user_id: user.clone(),
            exam_id: exam.id.clone(),
            limit: exam.attempts.limit(),
            granted,
            used,
            grants,
        })
    }

    fn exam(&self, exam_id: &str) -> Result<std::sync::Arc<Exam>, DomainError> {
        let id = ExamId::parse(exam_id).map_err(|_| DomainError::ExamNotFound)?;
        self.inner.catalog.current(&id).map(|(_, exam)| exam).ok_or(DomainError::ExamNotFound)
    }

    /// A candidate's attempts at an exam. A candidate asks about themselves (`user` absent or their own id); a
    /// proctor names the candidate.
    pub async fn attempts(
        &self,
        caller: &Caller,
        exam_id: &str,
        user: Option<&str>,
    ) -> Result<AttemptsStatus, DomainError> {
        let exam = self.exam(exam_id)?;
        let user = match (caller.role, user) {
            (Role::Candidate, None) => caller.user.clone(),
            (Role::Candidate, Some(u)) if u == caller.user.as_str() => caller.user.clone(),
            (Role::Candidate, Some(_)) => return Err(DomainError::Forbidden),
            (Role::Proctor, None) => return Err(DomainError::invalid_request("name the candidate: ?user_id=<id>")),
            (Role::Proctor, Some(u)) => parse_user(u)?,
        };
        self.attempts_status(&user, &exam).await
    }

    /// A proctor grants a candidate `extra` more attempts at an exam, for a reason. Recorded (append-only) and
    /// logged; returns the candidate's attempts afterwards.
    pub async fn grant_attempts(
        &self,
        caller: &Caller,
        exam_id: &str,
        user: &str,
        extra: u32,
        reason: &str,
    ) -> Result<AttemptsStatus, DomainError> {
        if caller.role != Role::Proctor {
            return Err(DomainError::Forbidden);
        }
        let exam = self.exam(exam_id)?;
        let user = parse_user(user)?;
        if !(1..=MAX_EXTRA_PER_GRANT).contains(&extra) {
            return Err(DomainError::invalid_request(format!(
                "extra must be from 1 to {MAX_EXTRA_PER_GRANT} attempts"
            )));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(DomainError::invalid_request("a reason of 1 to 500 characters is required"));
        }
        if exam.attempts.limit().is_none() {
            return Err(DomainError::invalid_request(format!(
                "exam {} allows unlimited attempts, so there is nothing to grant",
                exam.id
            )));
        }
        let grant = AttemptGrant {
            user_id: user.clone(),
            exam_id: exam.id.clone(),
            extra,
            reason: reason.to_string(),
            actor: caller.actor(),
            at: self.now_ms(),
        };
        self.inner.store.grant_attempts(&grant).await.map_err(|e| incident("store an attempt grant", &e))?;
        tracing::info!(user_id = %user, exam_id = %exam.id, extra, actor = %grant.actor, reason = %grant.reason,
            "attempts granted");
        self.attempts_status(&user, &exam).await
    }
}

fn parse_user(u: &str) -> Result<UserId, DomainError> {
    UserId::parse(u).map_err(|e| DomainError::invalid_request(format!("user_id: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn the_create_rate_is_a_sliding_minute_per_candidate() {
        let rate = CreateRate::new(3);
        let (ann, bob) = (user("ann"), user("bob"));
        let t0 = 1_000_000;
        for i in 0..3 {
            assert_eq!(rate.reserve(&ann, t0 + i * 1000), Ok(()));
        }
        // The fourth within the minute waits until the first leaves the window (57 s later).
        assert_eq!(rate.reserve(&ann, t0 + 3000), Err(57));
        assert_eq!(rate.reserve(&ann, t0 + 59_500), Err(1));
        // Someone else is not affected.
        assert_eq!(rate.reserve(&bob, t0 + 3000), Ok(()));
        // Once the first create is a minute old, one more is allowed; then the next waits again.
        assert_eq!(rate.reserve(&ann, t0 + 60_000), Ok(()));
        assert_eq!(rate.reserve(&ann, t0 + 60_001), Err(1));
        // A reservation taken back frees its place.
        rate.release(&ann, t0 + 60_000);
        assert_eq!(rate.reserve(&ann, t0 + 60_002), Ok(()));
    }

    #[test]
    fn a_create_rate_of_zero_is_no_limit() {
        let rate = CreateRate::new(0);
        for i in 0..1000 {
            assert_eq!(rate.reserve(&user("ann"), i), Ok(()));
        }
    }

    #[test]
    fn the_rate_forgets_quiet_candidates() {
        let rate = CreateRate::new(1);
        for i in 0..FORGET_AFTER {
            rate.reserve(&user(&format!("u{i}")), 0).unwrap();
        }
        rate.reserve(&user("late"), WINDOW_MS + 1).unwrap();
        assert_eq!(rate.recent.lock().unwrap().len(), 1, "everyone but the latest left the window");
    }

    #[test]
    fn allowed_and_remaining() {
        let s = AttemptsStatus {
            user_id: user("ann"),
            exam_id: ExamId::parse("x").unwrap(),
            limit: Some(1),
            granted: 2,
            used: 2,
            grants: vec![],
        };
        assert_eq!((s.allowed(), s.remaining()), (Some(3), Some(1)));
        let s = AttemptsStatus { used: 5, ..s };
        assert_eq!(s.remaining(), Some(0));
        let s = AttemptsStatus { limit: None, ..s };
        assert_eq!((s.allowed(), s.remaining()), (None, None));
    }
}
