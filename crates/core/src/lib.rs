//! examroom's domain core: the words every other crate speaks.
//!
//! examroom gives every exam candidate an isolated Linux environment in the browser. This crate holds what
//! is true about that regardless of how it is served or run: identifiers, the session lifecycle and its
//! guard, the exam clock, roles and the error envelope. It is pure: no I/O, no async runtime, and it never
//! reads a clock (times are passed in). The shared contract (`contract.md`) is the source of truth; this
//! crate is its executable form.
//!
//! # Layout
//!
//! - [`ids`]: the identifiers, [`UserId`], [`ExamId`], [`ExamSessionId`], [`EnvironmentId`] and
//!   [`IncidentId`]. Each validates its text form on the way in, so a value is always safe to log or to put
//!   in a path. Start here to see what may be trusted.
//! - [`lifecycle`]: the heart of the crate. [`SessionState`] (`created → provisioning → ready → active →
//!   terminating → terminated`, or `failed`), [`Trigger`] (why a change happens), and the guard
//!   [`transition`], which allows exactly the contract's transitions. Also [`EndReason`], [`Failure`] and
//!   [`grading_applies`].
//! - [`deadline`]: the exam clock as arithmetic ([`Deadline::remaining_seconds`], [`Deadline::is_due`]) and
//!   durations as people write them ([`parse_duration`]: `90m`, `45s`, `1h30m`).
//! - [`role`]: [`Role`], candidate or proctor.
//! - [`error`]: [`DomainError`], every error the service answers with, and [`ErrorEnvelope`], the
//!   `{"error": {"code", "message", "guidance"}}` JSON it becomes.
//!
//! Everything useful is re-exported at the crate root, so `use examroom_core::{transition, SessionState}`
//! is enough.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod deadline;
pub mod error;
pub mod grade;
pub mod ids;
pub mod lifecycle;
pub mod progress;
pub mod role;

pub use deadline::{
    format_duration, parse_duration, Deadline, DurationError, DEFAULT_PROVISIONING_TIMEOUT, DEFAULT_START_GRACE,
};
pub use error::{Capacity, DomainError, ErrorBody, ErrorEnvelope, ParseEnumError};
pub use grade::{CheckResult, ExamResult, ResultStatus};
pub use ids::{EnvironmentId, ExamId, ExamSessionId, IdError, IncidentId, UserId};
pub use lifecycle::{
    allowed_targets, grading_applies, transition, EndReason, Failure, FailureCode, SessionState, Transition,
    TransitionError, Trigger,
};
pub use progress::Progress;
pub use role::Role;
