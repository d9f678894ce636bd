//! Errors as people see them.
//!
//! Every error answer is `{"error": {"code": "snake_case", "message": "for a person", "guidance": "what to do
//! next"}}`, plus an `incident` id where it helps and a `session_id` where the contract asks for one
//! (`active_session_exists`). [`ErrorEnvelope`] is that JSON; [`DomainError`] is the set of errors the service
//! answers with, each knowing its code, HTTP status, message and guidance.
//!
//! Messages are fixed sentences or carry only values that are safe to show (a state, a number of seconds,
//! an id the caller already has): never a stack trace, a host path or another candidate's data.
//! [`DomainError::InvalidRequest`] carries a caller-written explanation; keep the same rule there.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ExamSessionId, IncidentId};
use crate::lifecycle::{SessionState, TransitionError, Trigger};

/// The inside of an error answer: `{"code", "message", "guidance"}` and the optional `incident` and
/// `session_id`, which are left out when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The snake_case code, for programs.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// What to do next, for a person.
    pub guidance: String,
    /// The incident id that appears in the logs, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentId>,
    /// The session the error is about, when the contract says to include it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<ExamSessionId>,
}

/// An error answer as sent: `{"error": ErrorBody}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

impl From<ErrorBody> for ErrorEnvelope {
    fn from(error: ErrorBody) -> Self {
        Self { error }
    }
}

impl From<&DomainError> for ErrorEnvelope {
    fn from(e: &DomainError) -> Self {
        e.envelope()
    }
}

impl From<DomainError> for ErrorEnvelope {
    fn from(e: DomainError) -> Self {
        e.envelope()
    }
}

/// The errors the service answers with.
///
/// There is deliberately no conversion from [`IdError`](crate::IdError): a malformed session id must be
/// answered with [`DomainError::SessionNotFound`], exactly like another candidate's session, and a `?`
/// should not be able to turn it into `invalid_request` by accident.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// `session_not_found` (404): no such session, a malformed id, or another candidate's session. The
    /// three are indistinguishable on purpose.
    #[error("No exam session with this id was found.")]
    SessionNotFound,
    /// `exam_not_found` (404): no exam with this id in the catalog.
    #[error("No exam with this id was found.")]
    ExamNotFound,
    /// `active_session_exists` (409): the candidate already has a live session; its id is in the answer.
    #[error("You already have an exam session in progress.")]
    ActiveSessionExists {
        /// The live session.
        session_id: ExamSessionId,
    },
    /// `capacity_exhausted` (503, with `Retry-After`): no environment can be made right now; `reason` says why.
    #[error("{}", .reason.message())]
    CapacityExhausted {
        /// Seconds after which trying again makes sense; send it as `Retry-After`.
        retry_after_secs: u32,
        /// What ran out.
        reason: Capacity,
    },
    /// `unauthenticated` (401): no credentials, or they are invalid or expired.
    #[error("You are not signed in, or your sign-in has expired.")]
    Unauthenticated,
    /// `forbidden` (403): signed in, but not allowed to do this (wrong role, or a refused `Origin`).
    #[error("You are not allowed to do this.")]
    Forbidden,
    /// `invalid_request` (400): the request is malformed. `message` says what is wrong, for a person.
    #[error("The request is not valid: {message}")]
    InvalidRequest {
        /// What is wrong with the request. No host paths, no internals.
        message: String,
    },
    /// `illegal_transition` (409): the session's state does not allow this action.
    #[error("The session is {state}, so it cannot {} now.", .trigger.action())]
    IllegalTransition {
        /// The session's current state.
        state: SessionState,
        /// What was attempted.
        trigger: Trigger,
    },
    /// `session_not_ready` (409): the session has not reached `ready` yet (tasks, terminal, desktop).
    #[error("Your exam environment is not ready yet.")]
    SessionNotReady,
    /// `session_not_ended` (409): the candidate asked for the result before the session ended.
    #[error("This exam session has not ended yet.")]
    SessionNotEnded,
    /// `session_ended` (410): the session has ended, so the terminal or desktop is closed.
    #[error("This exam session has ended.")]
    SessionEnded,
    /// `not_found` (404): no such endpoint.
    #[error("There is nothing at this address.")]
    NotFound,
    /// `method_not_allowed` (405, with `Allow`): the address exists, but not with this method.
    #[error("This address does not accept this method.")]
    MethodNotAllowed,
    /// `service_unavailable` (503): a dependency (the store, the runtime) is down.
    #[error("The service is temporarily unavailable.")]
    ServiceUnavailable {
        /// The incident id in the logs, when one was recorded.
        incident: Option<IncidentId>,
    },
    /// `internal` (500): a bug or an unexpected condition; the details are in the logs under `incident`.
    #[error("Something went wrong on our side.")]
    Internal {
        /// The incident id in the logs.
        incident: IncidentId,
    },
    /// `attempts_exhausted` (403): the candidate has used every attempt the exam (and their proctor) allows.
    #[error("You have used {used} of {allowed} allowed attempts at this exam.")]
    AttemptsExhausted {
        /// Attempts used (sessions that reached `active` and did not fail on the service's side).
        used: u32,
        /// Attempts allowed: the exam's `attempts` plus what proctors granted.
        allowed: u32,
    },
    /// `rate_limited` (429, with `Retry-After`): the caller starts sessions faster than the service allows.
    #[error("You are starting exam sessions too quickly.")]
    RateLimited {
        /// Seconds until another attempt can succeed; send it as `Retry-After`.
        retry_after_secs: u32,
    },
    /// `too_many_streams` (429): the caller already holds as many live status streams as one person may.
    #[error("You have too many live status streams open (at most {limit}).")]
    TooManyStreams {
        /// Streams one user may hold at once.
        limit: u32,
    },
    /// `too_many_connections` (503, with `Retry-After`): the server holds as many connections as it may (in all,
    /// or from this address).
    #[error("The server has too many open connections right now.")]
    TooManyConnections {
        /// Seconds after which trying again makes sense; send it as `Retry-After`.
        retry_after_secs: u32,
    },
    /// `no_desktop` (404): the session's exam has no desktop.
    #[error("This exam has no desktop; use its terminal.")]
    NoDesktop,
    /// `port_not_listed` (404): the exam does not open this port inside the environment to the browser.
    #[error("Port {port} is not one of the ports this exam opens to your browser.")]
    PortNotListed {
        /// The port asked for.
        port: u16,
    },
    /// `port_not_listening` (502): nothing listens on the port inside the environment.
    #[error(
        "Nothing is listening on port {port} inside your environment. Start your server on that port \
         (listening on 127.0.0.1 or 0.0.0.0), then reload this page."
    )]
    PortNotListening {
        /// The port asked for.
        port: u16,
    },
    /// `terminal_not_found` (404): the session has no open terminal by this name.
    #[error("Your environment has no open terminal by this name.")]
    TerminalNotFound,
    /// `too_many_terminals` (409): the candidate has as many terminals open as the exam allows.
    #[error("You have as many terminals open as this exam allows ({limit}).")]
    TooManyTerminals {
        /// Terminals one session may have open at once, "main" included.
        limit: u32,
    },
}

impl DomainError {
    /// Every code, with its HTTP status, for documentation such as the OpenAPI document.
    pub const CODES: [(&'static str, u16); 24] = [
        ("session_not_found", 404),
        ("exam_not_found", 404),
        ("active_session_exists", 409),
        ("capacity_exhausted", 503),
        ("unauthenticated", 401),
        ("forbidden", 403),
        ("invalid_request", 400),
        ("illegal_transition", 409),
        ("session_not_ready", 409),
        ("session_not_ended", 409),
        ("session_ended", 410),
        ("not_found", 404),
        ("method_not_allowed", 405),
        ("service_unavailable", 503),
        ("internal", 500),
        ("attempts_exhausted", 403),
        ("rate_limited", 429),
        ("too_many_streams", 429),
        ("too_many_connections", 503),
        ("no_desktop", 404),
        ("port_not_listed", 404),
        ("port_not_listening", 502),
        ("terminal_not_found", 404),
        ("too_many_terminals", 409),
    ];

    /// An [`DomainError::InvalidRequest`] with this explanation.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest { message: message.into() }
    }

    /// An [`DomainError::Internal`] with a new random incident id. Log the incident id with the details.
    pub fn internal() -> Self {
        Self::Internal { incident: IncidentId::new_v4() }
    }

    /// The snake_case code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::SessionNotFound => "session_not_found",
            Self::ExamNotFound => "exam_not_found",
            Self::ActiveSessionExists { .. } => "active_session_exists",
            Self::CapacityExhausted { .. } => "capacity_exhausted",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::IllegalTransition { .. } => "illegal_transition",
            Self::SessionNotReady => "session_not_ready",
            Self::SessionNotEnded => "session_not_ended",
            Self::SessionEnded => "session_ended",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::ServiceUnavailable { .. } => "service_unavailable",
            Self::Internal { .. } => "internal",
            Self::AttemptsExhausted { .. } => "attempts_exhausted",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyStreams { .. } => "too_many_streams",
            Self::TooManyConnections { .. } => "too_many_connections",
            Self::NoDesktop => "no_desktop",
            Self::PortNotListed { .. } => "port_not_listed",
            Self::PortNotListening { .. } => "port_not_listening",
            Self::TerminalNotFound => "terminal_not_found",
            Self::TooManyTerminals { .. } => "too_many_terminals",
        }
    }

    /// The HTTP status to answer with.
    pub const fn http_status(&self) -> u16 {
        match self {
            Self::InvalidRequest { .. } => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden | Self::AttemptsExhausted { .. } => 403,
            Self::SessionNotFound
            | Self::ExamNotFound
            | Self::NotFound
            | Self::NoDesktop
            | Self::PortNotListed { .. }
            | Self::TerminalNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::ActiveSessionExists { .. }
            | Self::IllegalTransition { .. }
            | Self::SessionNotReady
            | Self::SessionNotEnded
            | Self::TooManyTerminals { .. } => 409,
            Self::SessionEnded => 410,
            Self::RateLimited { .. } | Self::TooManyStreams { .. } => 429,
            Self::Internal { .. } => 500,
            Self::PortNotListening { .. } => 502,
            Self::CapacityExhausted { .. } | Self::ServiceUnavailable { .. } | Self::TooManyConnections { .. } => 503,
        }
    }

    /// The WebSocket close code for this error on a terminal or desktop connection, where the contract has
    /// one: 4401 unauthenticated, 4403 forbidden (a refused `Origin`), 4404 not found, 4409 not ready yet,
    /// 4410 ended.
    pub const fn close_code(&self) -> Option<u16> {
        match self {
            Self::Unauthenticated => Some(4401),
            Self::Forbidden => Some(4403),
            Self::SessionNotFound | Self::NoDesktop | Self::TerminalNotFound => Some(4404),
            Self::SessionNotReady => Some(4409),
            Self::SessionEnded => Some(4410),
            _ => None,
        }
    }

    /// What went wrong, for a person (the same text as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// What to do next, for a person.
    pub fn guidance(&self) -> String {
        match self {
            Self::SessionNotFound => "Check the session id, or open your list of sessions to find yours.".to_owned(),
            Self::ExamNotFound => "Check the exam id against the exam catalog.".to_owned(),
            Self::ActiveSessionExists { .. } => {
                "Continue the session you have (its id is in session_id), or finish it before starting another."
                    .to_owned()
            }
            Self::CapacityExhausted { retry_after_secs, reason: Capacity::Sessions } => {
                format!("Try again in {retry_after_secs} seconds.")
            }
            Self::CapacityExhausted { retry_after_secs, reason: Capacity::Memory } => {
                format!("Try again in {retry_after_secs} seconds; memory frees up as other exams end.")
            }
            Self::Unauthenticated => "Sign in again with the link you were given.".to_owned(),
            Self::Forbidden => "If you think you should be allowed, contact your proctor.".to_owned(),
            Self::InvalidRequest { .. } => "Correct the request and send it again.".to_owned(),
            Self::IllegalTransition { .. } => "Reload the session to see its current state.".to_owned(),
            Self::SessionNotReady => "Wait until the session is ready, then try again.".to_owned(),
            Self::SessionNotEnded => "The result is available once the session has ended.".to_owned(),
            Self::SessionEnded => "Open the session to see how it ended and its result.".to_owned(),
            Self::NotFound => "Check the address.".to_owned(),
            Self::MethodNotAllowed => "Use one of the methods in the Allow header.".to_owned(),
            Self::ServiceUnavailable { incident: Some(id) } => {
                format!("Try again in a minute. If it keeps happening, contact your proctor and quote incident {id}.")
            }
            Self::ServiceUnavailable { incident: None } => {
                "Try again in a minute. If it keeps happening, contact your proctor.".to_owned()
            }
            Self::Internal { incident } => {
                format!("Try again. If it happens again, contact your proctor and quote incident {incident}.")
            }
            Self::AttemptsExhausted { .. } => {
                "Ask your proctor if you should have another attempt; they can allow one.".to_owned()
            }
            Self::RateLimited { retry_after_secs } => format!("Wait {retry_after_secs} seconds, then try again."),
            Self::TooManyStreams { .. } => {
                "Close the other tabs or windows that show your exam sessions, then reload this page.".to_owned()
            }
            Self::TooManyConnections { retry_after_secs } => format!("Try again in {retry_after_secs} seconds."),
            Self::NoDesktop => "Open your exam's page; it shows the terminal.".to_owned(),
            Self::PortNotListed { .. } => "Open one of the ports your exam's tasks name.".to_owned(),
            Self::PortNotListening { port } => {
                format!("Start your server on port {port} inside your environment, then reload.")
            }
            Self::TerminalNotFound => "Open the list of your terminals, or open a new one.".to_owned(),
            Self::TooManyTerminals { .. } => "Close a terminal you no longer need, then open another.".to_owned(),
        }
    }

    /// The incident id to show, for `internal` and (when recorded) `service_unavailable`.
    pub fn incident(&self) -> Option<&IncidentId> {
        match self {
            Self::Internal { incident } => Some(incident),
            Self::ServiceUnavailable { incident } => incident.as_ref(),
            _ => None,
        }
    }

    /// The session id to include in the answer, for `active_session_exists`.
    pub const fn session_id(&self) -> Option<ExamSessionId> {
        match self {
            Self::ActiveSessionExists { session_id } => Some(*session_id),
            _ => None,
        }
    }

    /// The `Retry-After` value in seconds, for `capacity_exhausted`, `rate_limited` and `too_many_connections`.
    pub const fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::CapacityExhausted { retry_after_secs, .. }
            | Self::RateLimited { retry_after_secs }
            | Self::TooManyConnections { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The body of the answer.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code().to_owned(),
            message: self.message(),
            guidance: self.guidance(),
            incident: self.incident().cloned(),
            session_id: self.session_id(),
        }
    }

    /// The whole answer, `{"error": …}`.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope { error: self.body() }
    }
}

impl From<TransitionError> for DomainError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Illegal { from, trigger } => Self::IllegalTransition { state: from, trigger },
        }
    }
}

/// What ran out, for [`DomainError::CapacityExhausted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// The service's limit on live sessions (`max_live_sessions`).
    Sessions,
    /// The host's memory: the memory limits of the live environments plus the new one's would exceed the share of
    /// the host's memory that environments may have (admission).
    Memory,
}

impl Capacity {
    /// The message of the error, for a person.
    pub const fn message(self) -> &'static str {
        match self {
            Capacity::Sessions => "All exam environments are in use right now.",
            Capacity::Memory => "The exam host has no memory left for another environment right now.",
        }
    }

    /// A name for logs and metrics: `sessions` or `memory`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Capacity::Sessions => "sessions",
            Capacity::Memory => "memory",
        }
    }
}

/// A name that is not one of an enumeration's values, for example `?state=running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

impl ParseEnumError {
    /// `value` is not a valid `kind`; `expected` lists the valid names. Long values are shortened.
    pub fn new(kind: &'static str, value: &str, expected: &'static str) -> Self {
        const MAX: usize = 40;
        let mut shown: String = value.chars().take(MAX).collect();
        if value.chars().count() > MAX {
            shown.push('…');
        }
        Self { kind, value: shown, expected }
    }

    /// Which enumeration, for example "session state".
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a valid {}; use one of: {}", self.value, self.kind, self.expected)
    }
}

impl std::error::Error for ParseEnumError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{transition, SessionState as S, Trigger as T};

    fn samples() -> Vec<DomainError> {
        vec![
            DomainError::SessionNotFound,
            DomainError::ExamNotFound,
            DomainError::ActiveSessionExists { session_id: ExamSessionId::new_v4() },
            DomainError::CapacityExhausted { retry_after_secs: 30, reason: Capacity::Sessions },
            DomainError::Unauthenticated,
            DomainError::Forbidden,
            DomainError::invalid_request("exam_id is missing"),
            DomainError::IllegalTransition { state: S::Terminated, trigger: T::Submitted },
            DomainError::SessionNotReady,
            DomainError::SessionNotEnded,
            DomainError::SessionEnded,
            DomainError::NotFound,
            DomainError::MethodNotAllowed,
            DomainError::ServiceUnavailable { incident: None },
            DomainError::internal(),
            DomainError::AttemptsExhausted { used: 1, allowed: 1 },
            DomainError::RateLimited { retry_after_secs: 12 },
            DomainError::TooManyStreams { limit: 8 },
            DomainError::TooManyConnections { retry_after_secs: 5 },
            DomainError::NoDesktop,
            DomainError::PortNotListed { port: 9 },
            DomainError::PortNotListening { port: 8000 },
            DomainError::TerminalNotFound,
            DomainError::TooManyTerminals { limit: 4 },
        ]
    }

    #[test]
    fn codes_table_matches_every_variant() {
        let s = samples();
        assert_eq!(s.len(), DomainError::CODES.len());
        for (e, (code, status)) in s.iter().zip(DomainError::CODES) {
            assert_eq!(e.code(), code);
            assert_eq!(e.http_status(), status, "{code}");
            assert!(!e.message().is_empty() && !e.guidance().is_empty());
            // Codes are snake_case.
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn envelope_is_exactly_code_message_guidance() {
        let json = serde_json::to_string(&DomainError::SessionNotFound.envelope()).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"session_not_found","message":"No exam session with this id was found.","guidance":"Check the session id, or open your list of sessions to find yours."}}"#
        );
    }

    #[test]
    fn envelope_carries_optional_fields_when_set() {
        let id = ExamSessionId::parse("123e4567-e89b-12d3-a456-426614174000").unwrap();
        let json =
            serde_json::to_string(&ErrorEnvelope::from(DomainError::ActiveSessionExists { session_id: id })).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"active_session_exists","message":"You already have an exam session in progress.","guidance":"Continue the session you have (its id is in session_id), or finish it before starting another.","session_id":"123e4567-e89b-12d3-a456-426614174000"}}"#
        );

        let e = DomainError::Internal { incident: IncidentId::from_u64(0x2a) };
        let json = serde_json::to_string(&e.envelope()).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"internal","message":"Something went wrong on our side.","guidance":"Try again. If it happens again, contact your proctor and quote incident inc-000000000000002a.","incident":"inc-000000000000002a"}}"#
        );
        let back: ErrorEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e.envelope());
    }

    #[test]
    fn only_the_documented_keys_appear() {
        for e in samples() {
            let v = serde_json::to_value(e.envelope()).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.keys().collect::<Vec<_>>(), ["error"]);
            let inner = obj["error"].as_object().unwrap();
            for key in inner.keys() {
                assert!(["code", "message", "guidance", "incident", "session_id"].contains(&key.as_str()), "{key}");
            }
            assert_eq!(inner["code"], e.code());
            assert_eq!(inner.contains_key("incident"), e.incident().is_some(), "{}", e.code());
            assert_eq!(inner.contains_key("session_id"), e.session_id().is_some());
        }
    }

    #[test]
    fn illegal_transition_reads_well() {
        let e: DomainError = transition(S::Terminated, &T::Submitted).unwrap_err().into();
        assert_eq!(e.code(), "illegal_transition");
        assert_eq!(e.http_status(), 409);
        assert_eq!(e.message(), "The session is terminated, so it cannot be submitted now.");
        let e: DomainError = transition(S::Provisioning, &T::StartRequested).unwrap_err().into();
        assert_eq!(e.message(), "The session is provisioning, so it cannot be started now.");
    }

    #[test]
    fn retry_after_and_close_codes() {
        let e = DomainError::CapacityExhausted { retry_after_secs: 45, reason: Capacity::Sessions };
        assert_eq!(e.retry_after_secs(), Some(45));
        assert_eq!(e.guidance(), "Try again in 45 seconds.");
        let e = DomainError::CapacityExhausted { retry_after_secs: 45, reason: Capacity::Memory };
        assert_eq!((e.code(), e.http_status(), e.retry_after_secs()), ("capacity_exhausted", 503, Some(45)));
        assert_eq!(e.message(), "The exam host has no memory left for another environment right now.");
        assert_eq!(e.guidance(), "Try again in 45 seconds; memory frees up as other exams end.");
        assert_eq!(DomainError::Forbidden.retry_after_secs(), None);
        assert_eq!(DomainError::SessionNotFound.close_code(), Some(4404));
        assert_eq!(DomainError::Unauthenticated.close_code(), Some(4401));
        assert_eq!(DomainError::Forbidden.close_code(), Some(4403));
        assert_eq!(DomainError::SessionNotReady.close_code(), Some(4409));
        assert_eq!(DomainError::SessionEnded.close_code(), Some(4410));
        assert_eq!(DomainError::ExamNotFound.close_code(), None);
        let e = DomainError::RateLimited { retry_after_secs: 12 };
        assert_eq!((e.retry_after_secs(), e.http_status()), (Some(12), 429));
        assert_eq!(e.guidance(), "Wait 12 seconds, then try again.");
        assert_eq!(DomainError::TooManyConnections { retry_after_secs: 5 }.retry_after_secs(), Some(5));
        assert_eq!(DomainError::TooManyStreams { limit: 8 }.retry_after_secs(), None);
    }

    #[test]
    fn attempts_exhausted_says_how_many_and_who_to_ask() {
        let e = DomainError::AttemptsExhausted { used: 2, allowed: 2 };
        assert_eq!((e.code(), e.http_status()), ("attempts_exhausted", 403));
        assert_eq!(e.message(), "You have used 2 of 2 allowed attempts at this exam.");
        assert!(e.guidance().contains("proctor"), "{}", e.guidance());
    }

    #[test]
    fn messages_carry_no_paths_or_traces() {
        for e in samples() {
            for text in [e.message(), e.guidance()] {
                assert!(!text.contains("/home") && !text.contains("/var") && !text.contains("/tmp"));
                assert!(!text.contains("panicked") && !text.contains(".rs:"));
            }
        }
    }

    #[test]
    fn parse_enum_error_message() {
        let e = "running".parse::<S>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"running\" is not a valid session state; use one of: created, provisioning, ready, active, terminating, terminated, failed"
        );
        assert_eq!(e.kind(), "session state");
        let long = "x".repeat(1000);
        assert!(long.parse::<S>().unwrap_err().to_string().len() < 200);
    }
}
