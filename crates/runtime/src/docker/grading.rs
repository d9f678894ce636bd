//! Grading containers (helper "grading" replaces this file): a separate container from the pristine image with the
//! candidate's files mounted read-only. Until then, grading is unsupported on the docker backend.

use examroom_core::EnvironmentId;

use crate::error::RuntimeError;
use crate::types::{ExecOutput, ExecRequest};

/// Runs a trusted command for grading environment `env` made by run label `label`.
pub(crate) async fn exec_trusted(
    _docker: &bollard::Docker,
    _label: &str,
    _env: &EnvironmentId,
    _req: ExecRequest,
) -> Result<ExecOutput, RuntimeError> {
    Err(RuntimeError::Unsupported("grading is not implemented on the docker backend yet".into()))
}

/// Removes environment `env`'s grading container, if any.
pub(crate) async fn remove(_docker: &bollard::Docker, _env: &EnvironmentId) -> Result<(), RuntimeError> {
    Err(RuntimeError::Unsupported("grading is not implemented on the docker backend yet".into()))
}
