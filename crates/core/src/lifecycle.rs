//! The life of an exam session, and the guard that keeps it honest.
//!
//! ```text
//! created ──► provisioning ──► ready ──► active ──► terminating ──► terminated
//!    │             │             │  ╲        │
//!    └─────────────┴─────────────┴───╲───────┴──► failed
//!                                     ╲
//!                                      └─► terminating   (not_started, or a proctor)
//! ```
//!
//! Every change of state goes through [`transition`], which knows exactly the transitions of the contract
//! and refuses everything else with [`TransitionError::Illegal`]. The [`Trigger`] says *why* the change
//! happens; the guard derives the target state, the [`EndReason`] (when the change decides how the session
//! ends) and a human-readable reason to store with the transition.
//!
//! | from | trigger | to | end reason |
//! |---|---|---|---|
//! | `created` | [`Trigger::ProvisioningStarted`] | `provisioning` | |
//! | `provisioning` | [`Trigger::ProvisioningSucceeded`] | `ready` | |
//! | `ready` | [`Trigger::FirstAttach`], [`Trigger::StartRequested`] | `active` | |
//! | `ready` | [`Trigger::StartGraceExpired`] | `terminating` | `not_started` |
//! | `ready`, `active` | [`Trigger::ProctorTerminated`] | `terminating` | `terminated_by_proctor` |
//! | `active` | [`Trigger::Submitted`] | `terminating` | `submitted` |
//! | `active` | [`Trigger::DeadlinePassed`] | `terminating` | `expired` |
//! | `terminating` | [`Trigger::TeardownVerified`] | `terminated` | (decided on entering `terminating`) |
//! | `created`, `provisioning`, `ready`, `active` | [`Trigger::Failed`] | `failed` | |
//!
//! Two refinements of the contract, both documented on the items involved:
//!
//! - [`Trigger::Failed`] is accepted only with a [`FailureCode`] that can happen in the current state (see
//!   [`FailureCode::applies_in`]): a session that is already `ready` cannot fail with
//!   `provisioning_timeout`, and one still `created` has no environment that could be lost.
//! - `terminating` never goes to `failed`: the contract says that a loss during grading still ends as
//!   `terminated` (with the result `not_graded`), and teardown is retried until it is verified.
//!
//! The contract also says a `failed` session has its environment destroyed and verified. The guard cannot
//! see that; the caller fires [`Trigger::Failed`] once teardown of whatever was allocated is verified.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;

/// The state of an exam session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The request is accepted and stored. Nothing is allocated yet.
    Created,
    /// The environment is being made and the setup steps are running.
    Provisioning,
    /// The environment is up and the candidate may attach. The exam clock has not started; the start grace
    /// period runs.
    Ready,
    /// The exam clock is running.
    Active,
    /// Access has stopped. Grading runs (when this end is graded), then teardown.
    Terminating,
    /// Final: the environment is destroyed and verified, and the session has an [`EndReason`].
    Terminated,
    /// Final: something went wrong; the session has a [`Failure`]. The environment is destroyed and verified.
    Failed,
}

impl SessionState {
    /// Every state, in lifecycle order.
    pub const ALL: [SessionState; 7] = [
        SessionState::Created,
        SessionState::Provisioning,
        SessionState::Ready,
        SessionState::Active,
        SessionState::Terminating,
        SessionState::Terminated,
        SessionState::Failed,
    ];

    /// The snake_case name used on the wire, for example `"provisioning"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionState::Created => "created",
            SessionState::Provisioning => "provisioning",
            SessionState::Ready => "ready",
            SessionState::Active => "active",
            SessionState::Terminating => "terminating",
            SessionState::Terminated => "terminated",
            SessionState::Failed => "failed",
        }
    }

    /// Whether the session has reached a final state (`terminated` or `failed`) and will never change again.
    pub const fn is_final(self) -> bool {
        matches!(self, SessionState::Terminated | SessionState::Failed)
    }

    /// Whether the session is live: any state that is not final. A candidate has at most one live session.
    pub const fn is_live(self) -> bool {
        !self.is_final()
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionState {
    type Err = ParseEnumError;
    /// Parses the snake_case name, as in `?state=active`.
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            ParseEnumError::new(
                "session state",
                s,
                "created, provisioning, ready, active, terminating, terminated, failed",
            )
        })
    }
}

/// How a `terminated` session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The candidate submitted.
    Submitted,
    /// The deadline passed.
    Expired,
    /// A proctor ended the session.
    TerminatedByProctor,
    /// The candidate never started within the start grace period.
    NotStarted,
}

impl EndReason {
    /// Every end reason.
    pub const ALL: [EndReason; 4] =
        [EndReason::Submitted, EndReason::Expired, EndReason::TerminatedByProctor, EndReason::NotStarted];

    /// The snake_case name used on the wire, for example `"terminated_by_proctor"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Submitted => "submitted",
            EndReason::Expired => "expired",
            EndReason::TerminatedByProctor => "terminated_by_proctor",
            EndReason::NotStarted => "not_started",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndReason {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            ParseEnumError::new("end reason", s, "submitted, expired, terminated_by_proctor, not_started")
        })
    }
}

/// The fixed set of causes for a `failed` session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// A setup step or the creation of the environment failed.
    ProvisioningFailed,
    /// Provisioning did not finish within the exam's `provisioning_timeout`.
    ProvisioningTimeout,
    /// The runtime that hosts environments could not be reached or refused work.
    BackendUnavailable,
    /// An environment that existed disappeared or stopped working.
    EnvironmentLost,
    /// A bug or an unexpected condition in examroom itself.
    Internal,
}

impl FailureCode {
    /// Every failure code.
    pub const ALL: [FailureCode; 5] = [
        FailureCode::ProvisioningFailed,
        FailureCode::ProvisioningTimeout,
        FailureCode::BackendUnavailable,
        FailureCode::EnvironmentLost,
        FailureCode::Internal,
    ];

    /// The snake_case name used on the wire, for example `"environment_lost"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureCode::ProvisioningFailed => "provisioning_failed",
            FailureCode::ProvisioningTimeout => "provisioning_timeout",
            FailureCode::BackendUnavailable => "backend_unavailable",
            FailureCode::EnvironmentLost => "environment_lost",
            FailureCode::Internal => "internal",
        }
    }

    /// What happened, for the candidate.
    pub const fn message(self) -> &'static str {
        match self {
            FailureCode::ProvisioningFailed => "Your exam environment could not be prepared.",
            FailureCode::ProvisioningTimeout => "Preparing your exam environment took too long.",
            FailureCode::BackendUnavailable => "The system that runs exam environments is unavailable.",
            FailureCode::EnvironmentLost => "Your exam environment stopped unexpectedly.",
            FailureCode::Internal => "Something went wrong on our side.",
        }
    }

    /// What to do next, for the candidate.
    pub const fn guidance(self) -> &'static str {
        match self {
            FailureCode::ProvisioningFailed | FailureCode::ProvisioningTimeout => {
                "Start the exam again. If it fails again, contact your proctor."
            }
            FailureCode::BackendUnavailable => {
                "Wait a few minutes and start the exam again. If it keeps failing, contact your proctor."
            }
            FailureCode::EnvironmentLost => "Contact your proctor; what happened in your session has been recorded.",
            FailureCode::Internal => "Contact your proctor.",
        }
    }

    /// Whether a session in `state` can fail with this code; [`transition`] refuses the others.
    ///
    /// - `provisioning_failed`, `provisioning_timeout`: `created`, `provisioning`.
    /// - `environment_lost`: `provisioning`, `ready`, `active` (there is no environment to lose before).
    /// - `backend_unavailable`, `internal`: `created`, `provisioning`, `ready`, `active`.
    ///
    /// No code applies in `terminating` or in a final state.
    pub const fn applies_in(self, state: SessionState) -> bool {
        use SessionState as S;
        match self {
            FailureCode::ProvisioningFailed | FailureCode::ProvisioningTimeout => {
                matches!(state, S::Created | S::Provisioning)
            }
            FailureCode::EnvironmentLost => matches!(state, S::Provisioning | S::Ready | S::Active),
            FailureCode::BackendUnavailable | FailureCode::Internal => {
                matches!(state, S::Created | S::Provisioning | S::Ready | S::Active)
            }
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureCode {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            ParseEnumError::new(
                "failure code",
                s,
                "provisioning_failed, provisioning_timeout, backend_unavailable, environment_lost, internal",
            )
        })
    }
}

/// Why a session failed: `{code, message, guidance}` for everyone, plus `detail` for proctors only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Failure {
    /// The cause, from a fixed set.
    pub code: FailureCode,
    /// What happened, for a person.
    pub message: String,
    /// What to do next, for a person.
    pub guidance: String,
    /// Technical detail for proctors (never shown to the candidate; see [`Failure::for_candidate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Failure {
    /// A failure with the code's standard message and guidance, and no detail.
    pub fn new(code: FailureCode) -> Self {
        Self { code, message: code.message().to_owned(), guidance: code.guidance().to_owned(), detail: None }
    }

    /// The same failure with proctor-only detail attached.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The view a candidate may see: the same failure without `detail`.
    pub fn for_candidate(&self) -> Self {
        Self { detail: None, ..self.clone() }
    }
}

/// Why a transition happens. [`transition`] turns a state and a trigger into a [`Transition`] or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Allocation of the environment began (`created → provisioning`).
    ProvisioningStarted,
    /// The environment is up and every setup step succeeded (`provisioning → ready`).
    ProvisioningSucceeded,
    /// Something went wrong, with this cause (`→ failed`). Only codes that
    /// [apply](FailureCode::applies_in) in the current state are accepted.
    Failed(FailureCode),
    /// The candidate's first terminal or desktop attach (`ready → active`).
    FirstAttach,
    /// The candidate asked to start, `POST …/start` (`ready → active`).
    StartRequested,
    /// The candidate submitted, `POST …/submit` (`active → terminating`, `submitted`).
    Submitted,
    /// The exam deadline passed (`active → terminating`, `expired`).
    DeadlinePassed,
    /// The start grace period ran out before the candidate started (`ready → terminating`, `not_started`).
    StartGraceExpired,
    /// A proctor ended the session (`ready | active → terminating`, `terminated_by_proctor`).
    ProctorTerminated {
        /// Whether the proctor wants the session graded (`"grade"` in the request; see [`grading_applies`]).
        grade: bool,
    },
    /// Grading (if any) is done and the environment is destroyed and verified (`terminating → terminated`).
    TeardownVerified,
}

impl Trigger {
    /// Every distinct trigger value: each failure code, and both grade choices for a proctor.
    pub const ALL: [Trigger; 15] = [
        Trigger::ProvisioningStarted,
        Trigger::ProvisioningSucceeded,
        Trigger::Failed(FailureCode::ProvisioningFailed),
        Trigger::Failed(FailureCode::ProvisioningTimeout),
        Trigger::Failed(FailureCode::BackendUnavailable),
        Trigger::Failed(FailureCode::EnvironmentLost),
        Trigger::Failed(FailureCode::Internal),
        Trigger::FirstAttach,
        Trigger::StartRequested,
        Trigger::Submitted,
        Trigger::DeadlinePassed,
        Trigger::StartGraceExpired,
        Trigger::ProctorTerminated { grade: true },
        Trigger::ProctorTerminated { grade: false },
        Trigger::TeardownVerified,
    ];

    /// The snake_case name of the kind of trigger, without its data, for example `"proctor_terminated"`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Trigger::ProvisioningStarted => "provisioning_started",
            Trigger::ProvisioningSucceeded => "provisioning_succeeded",
            Trigger::Failed(_) => "failed",
            Trigger::FirstAttach => "first_attach",
            Trigger::StartRequested => "start_requested",
            Trigger::Submitted => "submitted",
            Trigger::DeadlinePassed => "deadline_passed",
            Trigger::StartGraceExpired => "start_grace_expired",
            Trigger::ProctorTerminated { .. } => "proctor_terminated",
            Trigger::TeardownVerified => "teardown_verified",
        }
    }

    /// What the trigger tries to do, as a verb phrase that completes "the session cannot …", for messages.
    pub const fn action(&self) -> &'static str {
        match self {
            Trigger::ProvisioningStarted => "start provisioning",
            Trigger::ProvisioningSucceeded => "become ready",
            Trigger::Failed(_) => "be marked as failed",
            Trigger::FirstAttach | Trigger::StartRequested => "be started",
            Trigger::Submitted => "be submitted",
            Trigger::DeadlinePassed => "expire",
            Trigger::StartGraceExpired => "end as not started",
            Trigger::ProctorTerminated { .. } => "be terminated",
            Trigger::TeardownVerified => "finish teardown",
        }
    }
}

impl fmt::Display for Trigger {
    /// The kind, plus its data: `failed(environment_lost)`, `proctor_terminated(grade=false)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Failed(code) => write!(f, "failed({code})"),
            Trigger::ProctorTerminated { grade } => write!(f, "proctor_terminated(grade={grade})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// One legal change of state, as the guard allowed it. Store it in the audit trail as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transition {
    /// The state before.
    pub from: SessionState,
    /// The state after.
    pub to: SessionState,
    /// The trigger that caused it.
    pub trigger: Trigger,
    /// Set when this transition decides how the session ends, that is on entering `terminating`. `None` on
    /// every other transition, including `terminating → terminated`, whose end reason was decided before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// Why, for a person reading the audit trail.
    pub reason: String,
}

impl Transition {
    /// Whether the end decided by this transition is graded; `None` when it decides no end.
    pub fn graded(&self) -> Option<bool> {
        let proctor_grade = match self.trigger {
            Trigger::ProctorTerminated { grade } => grade,
            _ => true,
        };
        self.end_reason.map(|reason| grading_applies(reason, proctor_grade))
    }

    /// The failure code, when this transition is to `failed`.
    pub fn failure_code(&self) -> Option<FailureCode> {
        match self.trigger {
            Trigger::Failed(code) if self.to == SessionState::Failed => Some(code),
            _ => None,
        }
    }
}

/// A transition the contract does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// `trigger` is not allowed while the session is `from`.
    #[error("a session that is {from} cannot take the trigger {trigger}")]
    Illegal {
        /// The current state.
        from: SessionState,
        /// The trigger that was refused.
        trigger: Trigger,
    },
}

/// The guard: the transition that `trigger` causes from `from`, or [`TransitionError::Illegal`].
///
/// Exactly the transitions of the contract are legal (see the [module documentation](self) for the table).
/// Final states accept nothing.
pub fn transition(from: SessionState, trigger: &Trigger) -> Result<Transition, TransitionError> {
    use SessionState as S;
    use Trigger as T;

    let (to, end_reason, reason): (SessionState, Option<EndReason>, String) = match (from, *trigger) {
        (S::Created, T::ProvisioningStarted) => (S::Provisioning, None, "provisioning started".to_owned()),
        (S::Provisioning, T::ProvisioningSucceeded) => {
            (S::Ready, None, "the environment is ready; the candidate may attach".to_owned())
        }
        (S::Created | S::Provisioning | S::Ready | S::Active, T::Failed(code)) if code.applies_in(from) => {
            (S::Failed, None, format!("failed ({code}): {}", code.message()))
        }
        (S::Ready, T::FirstAttach) => {
            (S::Active, None, "the candidate's first attach started the exam clock".to_owned())
        }
        (S::Ready, T::StartRequested) => (S::Active, None, "the candidate started the exam clock".to_owned()),
        (S::Ready, T::StartGraceExpired) => (
            S::Terminating,
            Some(EndReason::NotStarted),
            "the exam was not started within the start grace period".to_owned(),
        ),
        (S::Ready | S::Active, T::ProctorTerminated { grade }) => (
            S::Terminating,
            Some(EndReason::TerminatedByProctor),
            if grade {
                "terminated by a proctor; the session will be graded".to_owned()
            } else {
                "terminated by a proctor without grading".to_owned()
            },
        ),
        (S::Active, T::Submitted) => {
            (S::Terminating, Some(EndReason::Submitted), "submitted by the candidate".to_owned())
        }
        (S::Active, T::DeadlinePassed) => (S::Terminating, Some(EndReason::Expired), "the deadline passed".to_owned()),
        (S::Terminating, T::TeardownVerified) => {
            (S::Terminated, None, "the environment was destroyed and its removal verified".to_owned())
        }
        _ => return Err(TransitionError::Illegal { from, trigger: *trigger }),
    };
    Ok(Transition { from, to, trigger: *trigger, end_reason, reason })
}

/// The states that `from` may move to, in lifecycle order. Empty for final states.
pub fn allowed_targets(from: SessionState) -> &'static [SessionState] {
    use SessionState as S;
    match from {
        S::Created => &[S::Provisioning, S::Failed],
        S::Provisioning => &[S::Ready, S::Failed],
        S::Ready => &[S::Active, S::Terminating, S::Failed],
        S::Active => &[S::Terminating, S::Failed],
        S::Terminating => &[S::Terminated],
        S::Terminated | S::Failed => &[],
    }
}

/// Whether an end is graded: `submitted` and `expired` always, `terminated_by_proctor` unless the proctor
/// sent `"grade": false` (`proctor_grade`, ignored for the other reasons), `not_started` never. (`failed`
/// sessions have no end reason and are never graded.)
pub const fn grading_applies(end_reason: EndReason, proctor_grade: bool) -> bool {
    match end_reason {
        EndReason::Submitted | EndReason::Expired => true,
        EndReason::TerminatedByProctor => proctor_grade,
        EndReason::NotStarted => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState as S;
    use Trigger as T;

    /// The contract's transitions, written out independently of [`transition`]:
    /// (from, trigger, to, end reason).
    fn legal_table() -> Vec<(S, T, S, Option<EndReason>)> {
        use FailureCode as F;
        let mut t = vec![
            (S::Created, T::ProvisioningStarted, S::Provisioning, None),
            (S::Provisioning, T::ProvisioningSucceeded, S::Ready, None),
            (S::Ready, T::FirstAttach, S::Active, None),
            (S::Ready, T::StartRequested, S::Active, None),
            (S::Ready, T::StartGraceExpired, S::Terminating, Some(EndReason::NotStarted)),
            (S::Ready, T::ProctorTerminated { grade: true }, S::Terminating, Some(EndReason::TerminatedByProctor)),
            (S::Ready, T::ProctorTerminated { grade: false }, S::Terminating, Some(EndReason::TerminatedByProctor)),
            (S::Active, T::Submitted, S::Terminating, Some(EndReason::Submitted)),
            (S::Active, T::DeadlinePassed, S::Terminating, Some(EndReason::Expired)),
            (S::Active, T::ProctorTerminated { grade: true }, S::Terminating, Some(EndReason::TerminatedByProctor)),
            (S::Active, T::ProctorTerminated { grade: false }, S::Terminating, Some(EndReason::TerminatedByProctor)),
            (S::Terminating, T::TeardownVerified, S::Terminated, None),
        ];
        let failures: [(S, &[F]); 4] = [
            (S::Created, &[F::ProvisioningFailed, F::ProvisioningTimeout, F::BackendUnavailable, F::Internal]),
            (
                S::Provisioning,
                &[
                    F::ProvisioningFailed,
                    F::ProvisioningTimeout,
                    F::BackendUnavailable,
                    F::EnvironmentLost,
                    F::Internal,
                ],
            ),
            (S::Ready, &[F::BackendUnavailable, F::EnvironmentLost, F::Internal]),
            (S::Active, &[F::BackendUnavailable, F::EnvironmentLost, F::Internal]),
        ];
        for (from, codes) in failures {
            for &code in codes {
                t.push((from, T::Failed(code), S::Failed, None));
            }
        }
        t
    }

    #[test]
    fn trigger_all_is_complete_and_distinct() {
        // Every failure code and both grade choices are represented once.
        for code in FailureCode::ALL {
            assert_eq!(Trigger::ALL.iter().filter(|t| **t == Trigger::Failed(code)).count(), 1);
        }
        for (i, a) in Trigger::ALL.iter().enumerate() {
            for b in &Trigger::ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn every_state_trigger_pair_matches_the_table() {
        let table = legal_table();
        let mut legal_seen = 0;
        for from in S::ALL {
            for trigger in Trigger::ALL {
                let expected =
                    table.iter().find(|(f, t, _, _)| *f == from && *t == trigger).map(|(_, _, to, end)| (*to, *end));
                match (transition(from, &trigger), expected) {
                    (Ok(tr), Some((to, end))) => {
                        legal_seen += 1;
                        assert_eq!(tr.from, from);
                        assert_eq!(tr.to, to, "{from} + {trigger}");
                        assert_eq!(tr.end_reason, end, "{from} + {trigger}");
                        assert_eq!(tr.trigger, trigger);
                        assert!(!tr.reason.is_empty());
                        assert!(allowed_targets(from).contains(&to));
                    }
                    (Err(e), None) => {
                        assert_eq!(e, TransitionError::Illegal { from, trigger });
                    }
                    (got, want) => panic!("{from} + {trigger}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(legal_seen, table.len());
    }

    #[test]
    fn allowed_targets_match_the_contract_and_the_guard() {
        assert_eq!(allowed_targets(S::Created), [S::Provisioning, S::Failed]);
        assert_eq!(allowed_targets(S::Provisioning), [S::Ready, S::Failed]);
        assert_eq!(allowed_targets(S::Ready), [S::Active, S::Terminating, S::Failed]);
        assert_eq!(allowed_targets(S::Active), [S::Terminating, S::Failed]);
        assert_eq!(allowed_targets(S::Terminating), [S::Terminated]);
        assert!(allowed_targets(S::Terminated).is_empty());
        assert!(allowed_targets(S::Failed).is_empty());
        // Every allowed target is reachable by some trigger, and nothing else is.
        for from in S::ALL {
            let mut reached: Vec<S> =
                Trigger::ALL.iter().filter_map(|t| transition(from, t).ok()).map(|t| t.to).collect();
            reached.sort();
            reached.dedup();
            let mut allowed = allowed_targets(from).to_vec();
            allowed.sort();
            assert_eq!(reached, allowed, "from {from}");
        }
    }

    #[test]
    fn final_states_accept_nothing() {
        for from in S::ALL.into_iter().filter(|s| s.is_final()) {
            for trigger in Trigger::ALL {
                assert!(transition(from, &trigger).is_err());
            }
        }
    }

    #[test]
    fn terminating_never_fails() {
        for code in FailureCode::ALL {
            assert!(transition(S::Terminating, &T::Failed(code)).is_err());
            assert!(!code.applies_in(S::Terminating));
        }
    }

    #[test]
    fn final_and_live() {
        let finals: Vec<S> = S::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [S::Terminated, S::Failed]);
        for s in S::ALL {
            assert_eq!(s.is_live(), !s.is_final());
        }
    }

    #[test]
    fn grading() {
        assert!(grading_applies(EndReason::Submitted, false));
        assert!(grading_applies(EndReason::Expired, false));
        assert!(grading_applies(EndReason::TerminatedByProctor, true));
        assert!(!grading_applies(EndReason::TerminatedByProctor, false));
        assert!(!grading_applies(EndReason::NotStarted, true));

        let graded = |from, t| transition(from, &t).unwrap().graded();
        assert_eq!(graded(S::Active, T::Submitted), Some(true));
        assert_eq!(graded(S::Active, T::DeadlinePassed), Some(true));
        assert_eq!(graded(S::Active, T::ProctorTerminated { grade: false }), Some(false));
        assert_eq!(graded(S::Ready, T::ProctorTerminated { grade: true }), Some(true));
        assert_eq!(graded(S::Ready, T::StartGraceExpired), Some(false));
        assert_eq!(graded(S::Ready, T::StartRequested), None);
        assert_eq!(graded(S::Active, T::Failed(FailureCode::EnvironmentLost)), None);
    }

    #[test]
    fn failure_code_of_a_transition() {
        let t = transition(S::Active, &T::Failed(FailureCode::EnvironmentLost)).unwrap();
        assert_eq!(t.failure_code(), Some(FailureCode::EnvironmentLost));
        assert_eq!(transition(S::Active, &T::Submitted).unwrap().failure_code(), None);
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for r in EndReason::ALL {
            assert_eq!(r.as_str().parse::<EndReason>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
        }
        for c in FailureCode::ALL {
            assert_eq!(c.as_str().parse::<FailureCode>().unwrap(), c);
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
            assert!(!c.message().is_empty() && !c.guidance().is_empty());
        }
        assert!("Active".parse::<S>().is_err());
        assert!("".parse::<S>().is_err());
        assert!("gone".parse::<EndReason>().is_err());
    }

    #[test]
    fn trigger_serde_and_display() {
        for t in Trigger::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Trigger>(&json).unwrap(), t);
            assert!(t.to_string().starts_with(t.as_str()));
        }
        assert_eq!(
            serde_json::to_string(&T::ProctorTerminated { grade: false }).unwrap(),
            r#"{"proctor_terminated":{"grade":false}}"#
        );
        assert_eq!(serde_json::to_string(&T::Failed(FailureCode::Internal)).unwrap(), r#"{"failed":"internal"}"#);
        assert_eq!(T::Failed(FailureCode::EnvironmentLost).to_string(), "failed(environment_lost)");
    }

    #[test]
    fn transition_serializes() {
        let t = transition(S::Active, &T::Submitted).unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"from":"active","to":"terminating","trigger":"submitted","end_reason":"submitted","reason":"submitted by the candidate"}"#
        );
        let t = transition(S::Created, &T::ProvisioningStarted).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert!(!json.contains("end_reason"));
        assert_eq!(serde_json::from_str::<Transition>(&json).unwrap(), t);
    }

    #[test]
    fn illegal_transition_message() {
        let e = transition(S::Terminated, &T::Submitted).unwrap_err();
        assert_eq!(e.to_string(), "a session that is terminated cannot take the trigger submitted");
    }

    #[test]
    fn failure_detail_is_for_proctors() {
        let f = Failure::new(FailureCode::ProvisioningFailed).with_detail("setup step 2 exited 1");
        assert_eq!(serde_json::to_value(&f).unwrap()["detail"], "setup step 2 exited 1");
        let c = f.for_candidate();
        assert_eq!(c.detail, None);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"code":"provisioning_failed","message":"Your exam environment could not be prepared.","guidance":"Start the exam again. If it fails again, contact your proctor."}"#
        );
    }
}
