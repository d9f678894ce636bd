//! Errors at the runtime boundary.

/// Why a runtime operation failed. Messages are for operators; none carries another environment's data.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The request was refused before anything was created.
    #[error("invalid {field}: {message}")]
    InvalidSpec {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such environment.
    #[error("environment not found")]
    NotFound,
    /// An environment with this id exists.
    #[error("environment already exists")]
    AlreadyExists,
    /// The environment's init or shim died; destroy it.
    #[error("environment lost: {0}")]
    Lost(String),
    /// The backend could not do it (a host fault, a limit of the kernel, a failed mount...).
    #[error("backend error: {0}")]
    Backend(String),
    /// A bounded wait ran out.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        ms: u64,
    },
    /// The shim spoke something unexpected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An I/O error talking to the backend.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// An invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        RuntimeError::InvalidSpec { field: field.into(), message: message.into() }
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io { context: context.into(), source }
    }

    /// A stable snake_case code for logs and for the session service.
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::InvalidSpec { .. } => "invalid_spec",
            RuntimeError::NotFound => "not_found",
            RuntimeError::AlreadyExists => "already_exists",
            RuntimeError::Lost(_) => "environment_lost",
            RuntimeError::Backend(_) => "backend_error",
            RuntimeError::Timeout { .. } => "timeout",
            RuntimeError::Protocol(_) => "protocol_error",
            RuntimeError::Io { .. } => "io_error",
        }
    }
}
