//! `/v1/tasks/{id}/artifacts`: a task's files over HTTP. Who may read or write is decided by
//! [`crate::authz`] (`artifact.read`, `artifact.write` in the task's project); the bytes go
//! through `artifacts`, the tables' only writer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_contracts::artifacts::{Artifact, ArtifactList, ArtifactPutQuery};
use cynode_contracts::problem::Problem;
use cynode_service_kit::http::ApiQuery;
use sqlx::PgPool;
use uuid::Uuid;

use crate::artifacts::{self, Writer};
use crate::auth::CurrentUser;
use crate::authz::Action;
use crate::error::Error;
use crate::rbac::Access;
use crate::tasks;
use crate::web::ApiPath;

/// The task's artifacts, for whoever may read the task's project; anyone else is told the task
/// does not exist.
#[utoipa::path(get, path = "/v1/tasks/{id}/artifacts", tag = "tasks", operation_id = "task_artifacts_list", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name")), responses(
    (status = 200, body = ArtifactList), (status = 401, body = Problem), (status = 404, body = Problem),
))]
pub async fn http_list(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ArtifactList>, Error> {
    let task_id = tasks::resolve(&db, &access, &user, &id, Action::ArtifactRead).await?;
    Ok(Json(ArtifactList {
        task_id,
        artifacts: artifacts::list(&db, task_id).await?,
    }))
}

/// Downloads an artifact's bytes, with its stored `Content-Type`.
#[utoipa::path(get, path = "/v1/tasks/{id}/artifacts/{artifact_id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name"), ("artifact_id" = Uuid, Path)), responses(
    (status = 200, description = "the artifact's bytes", content_type = "application/octet-stream", body = Vec<u8>,
        headers(("x-checksum-sha256" = String, description = "lowercase hex SHA-256 of the body"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
))]
pub async fn http_download(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath((id, artifact_id)): ApiPath<(String, Uuid)>,
) -> Result<Response, Error> {
    let task_id = tasks::resolve(&db, &access, &user, &id, Action::ArtifactRead).await?;
    let (artifact, bytes) = artifacts::get_by_id(&db, task_id, artifact_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("artifact {artifact_id} does not exist")))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    // Stored types were checked to be printable ASCII; the fallback covers any other.
    let content_type = artifact
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static(artifacts::DEFAULT_CONTENT_TYPE));
    headers.insert(header::CONTENT_TYPE, content_type);
    // Never rendered as a page of the gateway's origin.
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(sum) = artifact
        .checksum_sha256
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert("x-checksum-sha256", sum);
    }
    Ok(response)
}

/// Uploads the request body as the artifact at `path` (`artifact.write`: the task's creator as a
/// member, or an operator), replacing what was there:
/// 201 when new, 200 when replaced. The request's `Content-Type` is stored with it.
#[utoipa::path(put, path = "/v1/tasks/{id}/artifacts", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name"), ArtifactPutQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file, at most 10 MiB"),
    responses(
    (status = 200, body = Artifact, description = "replaced"), (status = 201, body = Artifact, description = "created"),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
    (status = 413, body = Problem),
))]
pub async fn http_upload(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ArtifactPutQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Artifact>), Error> {
    artifacts::check_path(&q.path)?;
    let content_type = match headers.get(header::CONTENT_TYPE) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Problem::validation("Content-Type must be printable ASCII"))?,
        ),
        None => None,
    };
    let task_id = tasks::resolve(&db, &access, &user, &id, Action::ArtifactWrite).await?;
    let writer = Writer {
        user_id: Some(user.id),
        job_id: None,
    };
    let mut tx = db.begin().await?;
    let (artifact, inserted) =
        artifacts::put_in(&mut tx, task_id, &q.path, content_type, &body, writer).await?;
    tx.commit().await?;
    let status = if inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(artifact)))
}
