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
    /// The backend cannot be reached now (its daemon is down or its socket is missing): nothing was done, and the
    /// environments it holds are in an unknown state, not lost. Try again later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A bounded wait ran out.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        ms: u64,
    },
    /// The environment cannot do this (an older shim, a profile without it).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Nothing listens on the port that was dialled inside the environment.
    #[error("connection refused: {0}")]
    Refused(String),
    /// The shim spoke something unexpected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// This process ran out of descriptors or kernel memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) while trying
    /// to reach the backend. It says nothing about the environment: treat its state as unknown and try again later,
    /// never as lost.
    #[error("out of resources on the server while trying to {context} ({source}); try again later")]
    OutOfResources {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
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

    /// An I/O error with context: [`RuntimeError::OutOfResources`] when the error says this process is out of
    /// descriptors or kernel memory (see [`is_out_of_resources`]), [`RuntimeError::Io`] otherwise.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        if is_out_of_resources(&source) {
            RuntimeError::OutOfResources { context: context.into(), source }
        } else {
            RuntimeError::Io { context: context.into(), source }
        }
    }

    /// Whether this error is about the server's own resources rather than about the environment (so an
    /// environment's state is unknown, not lost).
    pub fn is_out_of_resources(&self) -> bool {
        matches!(self, RuntimeError::OutOfResources { .. })
    }

    /// A stable snake_case code for logs and for the session service.
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::InvalidSpec { .. } => "invalid_spec",
            RuntimeError::NotFound => "not_found",
            RuntimeError::AlreadyExists => "already_exists",
            RuntimeError::Lost(_) => "environment_lost",
            RuntimeError::Backend(_) => "backend_error",
            RuntimeError::Unavailable(_) => "backend_unavailable",
            RuntimeError::Timeout { .. } => "timeout",
            RuntimeError::Protocol(_) => "protocol_error",
            RuntimeError::Unsupported(_) => "unsupported",
            RuntimeError::Refused(_) => "connection_refused",
            RuntimeError::OutOfResources { .. } => "out_of_resources",
            RuntimeError::Io { .. } => "io_error",
        }
    }
}

/// Whether an I/O error means that this process (or the host) is out of descriptors or kernel memory: `EMFILE`,
/// `ENFILE`, `ENOBUFS` or `ENOMEM`. Such a failure to connect to a shim says nothing about the shim.
pub fn is_out_of_resources(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_is_its_own_error_and_never_lost() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let e = RuntimeError::io("connect to shim", std::io::Error::from_raw_os_error(errno));
            assert!(e.is_out_of_resources(), "{errno}: {e}");
            assert_eq!(e.code(), "out_of_resources");
            assert!(e.to_string().contains("try again later"), "{e}");
        }
        for errno in [libc::ECONNREFUSED, libc::ENOENT, libc::EPIPE, libc::ECONNRESET] {
            let e = RuntimeError::io("connect to shim", std::io::Error::from_raw_os_error(errno));
            assert!(!e.is_out_of_resources(), "{errno}: {e}");
            assert_eq!(e.code(), "io_error");
        }
        let no_errno = std::io::Error::other("x");
        assert!(!is_out_of_resources(&no_errno));
    }
}
