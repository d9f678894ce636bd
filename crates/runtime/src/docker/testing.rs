//! Entry points for the integration tests of grading and services (`tests/docker`): not an API. The runtime reaches
//! these functions through `ExecutionRuntime` (exec_trusted, create, destroy).

use bollard::Docker;
use examroom_core::EnvironmentId;

use crate::error::RuntimeError;
use crate::types::{ExecOutput, ExecRequest, ServiceSpec};

/// See `grading::exec_trusted`.
pub async fn exec_trusted(
    docker: &Docker,
    label: &str,
    env: &EnvironmentId,
    req: ExecRequest,
) -> Result<ExecOutput, RuntimeError> {
    super::grading::exec_trusted(docker, label, env, req).await
}

/// See `grading::remove`.
pub async fn remove_grading(docker: &Docker, env: &EnvironmentId) -> Result<(), RuntimeError> {
    super::grading::remove(docker, env).await
}

/// See `services::start_service`.
pub async fn start_service(
    docker: &Docker,
    label: &str,
    env: &EnvironmentId,
    svc: &ServiceSpec,
) -> Result<(), RuntimeError> {
    super::services::start_service(docker, label, env, svc).await
}

/// See `services::remove_all`.
pub async fn remove_services(docker: &Docker, env: &EnvironmentId) -> Result<(), RuntimeError> {
    super::services::remove_all(docker, env).await
}
