//! Provisioning and teardown progress: real steps, never an invented percentage.

use serde::{Deserialize, Serialize};

/// Where a session's provisioning (or teardown) is: step `step` of `total`, described for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The current step, from 1.
    pub step: u32,
    /// How many steps there are.
    pub total: u32,
    /// What the step does, for a person ("Creating your environment").
    pub message: String,
}

impl Progress {
    /// Step `step` of `total`.
    pub fn new(step: u32, total: u32, message: impl Into<String>) -> Self {
        Progress { step, total, message: message.into() }
    }
}
