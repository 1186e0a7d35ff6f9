//! Task artifacts: the only writer of `task_artifacts` and `task_artifact_contents`. Files a
//! user uploads with a task or later, and (through the MCP tools `artifact.*`) files a job
//! writes, stored in PostgreSQL with their size, type and SHA-256. The user gateway's routes
//! (`gateway::artifacts`) and the MCP tools authorize; the store functions trust their caller.

use chrono::{DateTime, Utc};
pub use cynode_contracts::artifacts::MAX_ARTIFACT_BYTES;
use cynode_contracts::artifacts::{Artifact, MAX_PATH_CHARS};
use cynode_contracts::problem::Problem;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;

/// What an artifact is stored as when its writer names no type.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
const MAX_CONTENT_TYPE_CHARS: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    Invalid(String),
    #[error("the artifact is {size} bytes; at most {MAX_ARTIFACT_BYTES} are allowed")]
    TooLarge { size: usize },
    #[error("{0}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<ArtifactError> for Error {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::Invalid(detail) => Problem::validation(detail).into(),
            ArtifactError::TooLarge { .. } => Problem::new(
                cynode_contracts::problem::types::PAYLOAD_TOO_LARGE,
                "Payload too large",
                413,
                e.to_string(),
            )
            .into(),
            ArtifactError::NotFound(detail) => Problem::not_found(detail).into(),
            ArtifactError::Db(e) => Error::Db(e),
        }
    }
}

type Result<T, E = ArtifactError> = std::result::Result<T, E>;

/// Who wrote an artifact: the user who uploaded it, and/or the job that produced it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Writer {
    pub user_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
}

/// A path inside the task: relative (`/`-separated), no `..` component, not absolute, no NUL or
/// other control characters, 1 to 2048 characters. Such a path can be joined under any
/// directory (a sandbox's `/workspace`, `--out`) without leaving it.
pub fn check_path(path: &str) -> Result<()> {
    let invalid = |why: &str| Err(ArtifactError::Invalid(format!("path {why}")));
    if path.is_empty() {
        return invalid("must not be empty");
    }
    if path.chars().count() > MAX_PATH_CHARS {
        return invalid(&format!("must be at most {MAX_PATH_CHARS} characters"));
    }
    if path.chars().any(char::is_control) {
        return invalid("must not contain NUL or other control characters");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return invalid("must be relative, not absolute");
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return invalid("must not contain a '..' component");
    }
    Ok(())
}

fn check_content_type(content_type: &str) -> Result<()> {
    let fine = content_type.len() <= MAX_CONTENT_TYPE_CHARS
        && content_type.contains('/')
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !fine {
        return Err(ArtifactError::Invalid(format!(
            "content_type must be a media type (type/subtype) of at most {MAX_CONTENT_TYPE_CHARS} printable ASCII characters"
        )));
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    task_id: Uuid,
    path: String,
    content_type: Option<String>,
    size_bytes: Option<i64>,
    checksum_sha256: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "a.id, a.task_id, a.path, a.content_type, a.size_bytes, a.checksum_sha256, a.created_at, a.updated_at";

impl From<Row> for Artifact {
    fn from(row: Row) -> Self {
        Self {
            artifact_id: row.id,
            task_id: row.task_id,
            path: row.path,
            content_type: row.content_type,
            size_bytes: row.size_bytes,
            checksum_sha256: row.checksum_sha256,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Stores `bytes` at `path` of the task, replacing what was there.
pub async fn put(
    db: &PgPool,
    task_id: Uuid,
    path: &str,
    content_type: Option<&str>,
    bytes: &[u8],
    writer: Writer,
) -> Result<Artifact> {
    let mut tx = db.begin().await?;
    let (artifact, _) = put_in(&mut tx, task_id, path, content_type, bytes, writer).await?;
    tx.commit().await?;
    Ok(artifact)
}

/// Records `path` as a task's attachment by reference (a file the task names, with no content
/// stored), inside the caller's transaction: the task and its attachments commit together.
pub(crate) async fn reference_in(conn: &mut PgConnection, task_id: Uuid, path: &str) -> Result<()> {
    sqlx::query("INSERT INTO task_artifacts (id, task_id, path) VALUES ($1, $2, $3)")
        .bind(Uuid::new_v4())
        .bind(task_id)
        .bind(path)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`put`] inside the caller's transaction (a task and its uploads commit together); also
/// says whether the path was new.
pub(crate) async fn put_in(
    conn: &mut PgConnection,
    task_id: Uuid,
    path: &str,
    content_type: Option<&str>,
    bytes: &[u8],
    writer: Writer,
) -> Result<(Artifact, bool)> {
    check_path(path)?;
    if bytes.len() > MAX_ARTIFACT_BYTES {
        return Err(ArtifactError::TooLarge { size: bytes.len() });
    }
    let content_type = content_type.unwrap_or(DEFAULT_CONTENT_TYPE);
    check_content_type(content_type)?;
    let checksum = hex::encode(Sha256::digest(bytes));
    let row: (Uuid, bool) = sqlx::query_as(
        "INSERT INTO task_artifacts AS a
           (id, task_id, path, size_bytes, content_type, checksum_sha256, job_id, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (task_id, path) DO UPDATE SET
           size_bytes = EXCLUDED.size_bytes, content_type = EXCLUDED.content_type,
           checksum_sha256 = EXCLUDED.checksum_sha256, job_id = EXCLUDED.job_id,
           created_by = EXCLUDED.created_by, updated_at = now()
         RETURNING a.id, (a.xmax = 0) AS inserted",
    )
    .bind(Uuid::new_v4())
    .bind(task_id)
    .bind(path)
    .bind(bytes.len() as i64)
    .bind(content_type)
    .bind(&checksum)
    .bind(writer.job_id)
    .bind(writer.user_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(
        |e| match e.as_database_error().and_then(|d| d.constraint()) {
            Some("task_artifacts_task_id_fkey") => {
                ArtifactError::NotFound(format!("task {task_id} does not exist"))
            }
            Some("task_artifacts_job_id_fkey") => ArtifactError::Invalid(format!(
                "job {} does not exist",
                writer.job_id.unwrap_or_default()
            )),
            _ => ArtifactError::Db(e),
        },
    )?;
    let (id, inserted) = row;
    sqlx::query(
        "INSERT INTO task_artifact_contents (artifact_id, content) VALUES ($1, $2)
         ON CONFLICT (artifact_id) DO UPDATE SET content = EXCLUDED.content",
    )
    .bind(id)
    .bind(bytes)
    .execute(&mut *conn)
    .await?;
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM task_artifacts a WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.into(), inserted))
}

/// Which artifact of a task to read.
enum Which<'a> {
    Path(&'a str),
    Id(Uuid),
}

async fn read(db: &PgPool, task_id: Uuid, which: Which<'_>) -> Result<Option<(Artifact, Vec<u8>)>> {
    #[derive(sqlx::FromRow)]
    struct WithContent {
        #[sqlx(flatten)]
        row: Row,
        content: Option<Vec<u8>>,
    }
    let filter = match which {
        Which::Path(_) => "a.path = $2",
        Which::Id(_) => "a.id = $2",
    };
    let sql = format!(
        "SELECT {COLUMNS}, c.content FROM task_artifacts a
         LEFT JOIN task_artifact_contents c ON c.artifact_id = a.id
         WHERE a.task_id = $1 AND {filter}"
    );
    let query = sqlx::query_as::<_, WithContent>(&sql).bind(task_id);
    let query = match which {
        Which::Path(path) => query.bind(path),
        Which::Id(id) => query.bind(id),
    };
    let found = query.fetch_optional(db).await?;
    // A path-only reference (from before uploads) has no content to give.
    Ok(found.and_then(|f| Some((f.row.into(), f.content?))))
}

/// The artifact at `path` of the task, with its bytes.
pub async fn get(db: &PgPool, task_id: Uuid, path: &str) -> Result<Option<(Artifact, Vec<u8>)>> {
    check_path(path)?;
    read(db, task_id, Which::Path(path)).await
}

/// The artifact `artifact_id` of the task, with its bytes.
pub async fn get_by_id(
    db: &PgPool,
    task_id: Uuid,
    artifact_id: Uuid,
) -> Result<Option<(Artifact, Vec<u8>)>> {
    read(db, task_id, Which::Id(artifact_id)).await
}

/// The task's artifacts by path (metadata only).
pub async fn list(db: &PgPool, task_id: Uuid) -> Result<Vec<Artifact>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM task_artifacts a WHERE a.task_id = $1 ORDER BY a.path COLLATE \"C\""
    ))
    .bind(task_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Artifact::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_task() {
        for good in [
            "a.txt",
            "dir/b.md",
            "attachments/ä b.txt",
            "..a/b..",
            "a/./b",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "a/../b",
            "a/..",
            "\\x",
            "a\\..\\b",
            "a\0b",
            "a\nb",
            &"x".repeat(2049),
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_types_are_header_safe() {
        assert!(check_content_type("text/plain; charset=utf-8").is_ok());
        assert!(check_content_type("text").is_err());
        assert!(check_content_type("text/plain\r\nx: y").is_err());
        assert!(check_content_type(&format!("a/{}", "b".repeat(255))).is_err());
    }
}
