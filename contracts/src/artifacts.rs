//! Task artifacts: files that belong to a task (uploaded attachments, files its jobs wrote),
//! stored by the orchestrator and downloaded through the user gateway.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest artifact, in bytes.
pub const MAX_ARTIFACT_BYTES: usize = 10 * 1024 * 1024;
/// Most files uploaded with one task.
pub const MAX_UPLOADS_PER_TASK: usize = 16;
/// Longest artifact path, in characters.
pub const MAX_PATH_CHARS: usize = 2048;
/// The multipart part of `POST /v1/tasks` that holds the `CreateTaskRequest` JSON; every other
/// part is a file, stored under its file name.
pub const TASK_PART: &str = "task";

/// The multipart body of `POST /v1/tasks` with files, as `/openapi.json` publishes it: the
/// [`TASK_PART`] JSON and up to [`MAX_UPLOADS_PER_TASK`] files of at most [`MAX_ARTIFACT_BYTES`]
/// each. Clients (the console) read the limits from there and refuse a bigger file before
/// sending anything; the whole request is further bounded by the gateway's body limit
/// (`info.x-max-request-body-bytes`).
#[derive(Debug)]
pub struct TaskUpload;

impl utoipa::PartialSchema for TaskUpload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
        };
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .max_length(Some(MAX_ARTIFACT_BYTES));
        ObjectBuilder::new()
            .property(
                TASK_PART,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("the CreateTaskRequest, as JSON")),
            )
            .required(TASK_PART)
            .property(
                "files",
                ArrayBuilder::new()
                    .items(file)
                    .max_items(Some(MAX_UPLOADS_PER_TASK))
                    .description(Some(
                        "any other part is a file, stored as attachments/<filename>",
                    )),
            )
            .into()
    }
}

impl utoipa::ToSchema for TaskUpload {}

/// One artifact's metadata (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    pub artifact_id: Uuid,
    pub task_id: Uuid,
    /// Relative, `/`-separated, no `..`.
    pub path: String,
    /// Absent (with size and checksum) for a path-only reference that has no content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Lowercase hex SHA-256 of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/tasks/{id}/artifacts`: by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactList {
    pub task_id: Uuid,
    pub artifacts: Vec<Artifact>,
}

/// Query of `PUT /v1/tasks/{id}/artifacts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArtifactPutQuery {
    /// Where the artifact lives in the task: relative, no `..`, 1 to 2048 characters.
    #[param(min_length = 1, max_length = 2048)]
    pub path: String,
}
