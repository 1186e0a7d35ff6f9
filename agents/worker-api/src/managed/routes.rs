//! `…/v1/worker/sandboxes…`: the managed sandboxes' HTTP surface, behind the same bearer check
//! as `jobs:run` (paths from [`cynode_contracts::routes::worker`]).

use axum::body::Bytes;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes::worker;
use cynode_contracts::worker::{
    ManagedSandbox, ManagedSandboxRequest, SandboxExecRequest, SandboxExecResponse,
    SandboxFileQuery,
};
use cynode_service_kit::http::{ApiError, ApiJson, ApiQuery};

use super::{FileError, ManagedError, ManagedSandboxes};
use crate::problems::{invalid_job, uuid_param};
use crate::sandbox::SandboxError;

/// The managed sandboxes' routes, on any state they can take their [`ManagedSandboxes`] from;
/// the caller adds the bearer check.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ManagedSandboxes: FromRef<S>,
{
    Router::new()
        .route(worker::SANDBOXES, post(create))
        .route(worker::SANDBOX, delete(destroy))
        .route(worker::SANDBOX_EXEC, post(exec))
        .route(worker::SANDBOX_FILES, put(put_file).get(get_file))
}

async fn create(
    State(managed): State<ManagedSandboxes>,
    ApiJson(request): ApiJson<ManagedSandboxRequest>,
) -> Result<(StatusCode, Json<ManagedSandbox>), ApiError> {
    let created = managed.create(request).await.map_err(managed_error)?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn destroy(
    State(managed): State<ManagedSandboxes>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    managed.destroy(uuid_param(&id, "sandbox")?).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn exec(
    State(managed): State<ManagedSandboxes>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SandboxExecRequest>,
) -> Result<Json<SandboxExecResponse>, ApiError> {
    let id = uuid_param(&id, "sandbox")?;
    managed
        .exec(id, request)
        .await
        .map(Json)
        .map_err(managed_error)
}

async fn put_file(
    State(managed): State<ManagedSandboxes>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<SandboxFileQuery>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let id = uuid_param(&id, "sandbox")?;
    managed
        .put_file(id, &query.path, &body)
        .await
        .map_err(managed_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_file(
    State(managed): State<ManagedSandboxes>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<SandboxFileQuery>,
) -> Result<Response, ApiError> {
    let id = uuid_param(&id, "sandbox")?;
    let bytes = managed
        .get_file(id, &query.path)
        .await
        .map_err(managed_error)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

fn managed_error(error: ManagedError) -> ApiError {
    match error {
        ManagedError::Invalid(e) => invalid_job(e),
        ManagedError::BadRequest(_) => Problem::validation(error.to_string()).into(),
        ManagedError::Exists(_) => Problem::conflict(error.to_string()).into(),
        ManagedError::TooMany => Problem::rate_limited(error.to_string()).into(),
        ManagedError::Unknown(_) => Problem::not_found(error.to_string()).into(),
        ManagedError::File(e) => match e {
            FileError::BadPath(_) | FileError::NoFile | FileError::NotAFile(_) => {
                Problem::validation(format!("path: {e}")).into()
            }
            FileError::Refused { .. } => Problem::validation(format!("path: {e}")).into(),
            FileError::Missing(_) => Problem::not_found(e.to_string()).into(),
            FileError::TooLarge(_) => Problem::new(
                cynode_contracts::problem::types::PAYLOAD_TOO_LARGE,
                "Payload Too Large",
                413,
                e.to_string(),
            )
            .into(),
            FileError::Podman(_) | FileError::Archive(_) => ApiError::internal(e),
        },
        ManagedError::Sandbox(SandboxError::ImageMissing(_)) => {
            Problem::unavailable(error.to_string()).into()
        }
        ManagedError::Sandbox(_) | ManagedError::Podman(_) => ApiError::internal(error),
    }
}
