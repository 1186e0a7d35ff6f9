//! Tasks of the user gateway. A task lives in a project; who may read, cancel or add to it is
//! decided by [`crate::authz`] over the caller's roles there (a task in a project the caller
//! holds no role in does not exist as far as they can tell: 404, no existence leak). Names are
//! unique per creator, so `{id|name}` in a path is a task id, or the name of one of the
//! caller's own tasks (the newest); another member's task is named by its id. What a task runs
//! and its status belong to the job queue ([`crate::jobs`]); this module validates, names and
//! reads.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::Multipart;
use chrono::{DateTime, Utc};
use cynode_contracts::artifacts::{MAX_ARTIFACT_BYTES, MAX_UPLOADS_PER_TASK, TASK_PART};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    CancelResponse, CreateTaskRequest, InputMode, JobRequirements, JobResult, JobStatus,
    MAX_ATTACHMENT_PATH_CHARS, MAX_ATTACHMENTS, MAX_TASK_NAME_CHARS, Task, TaskList, TaskLogStream,
    TaskLogs, TaskResult, TaskStatus, TaskStep, TaskSteps,
};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::artifacts::{Writer, put_in, reference_in};
use crate::auth::CurrentUser;
use crate::authz::{Action, Check};
use crate::error::{Error, Result};
use crate::jobs::{self, Canceled, NewTask, Planner, RunningJob};
use crate::rbac::Access;
use crate::signals::Signals;
use crate::worker_tokens::TokenKeys;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// Names are kept exactly as given (SQL metacharacters included: every query binds them), so
/// a user finds a task under the name they chose. Only emptiness, length and control characters
/// are refused, because they make a name unusable on a command line.
fn check_name(raw: &str) -> Result<()> {
    if raw.trim().is_empty() {
        return Err(Problem::validation("task_name must not be empty when given").into());
    }
    if raw.chars().count() > MAX_TASK_NAME_CHARS {
        return Err(Problem::validation(format!(
            "task_name must be at most {MAX_TASK_NAME_CHARS} characters"
        ))
        .into());
    }
    if raw.chars().any(char::is_control) {
        return Err(Problem::validation("task_name must not contain control characters").into());
    }
    Ok(())
}

fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Problem::validation(format!("{field} must not contain NUL characters")).into());
    }
    Ok(())
}

fn validate(req: &CreateTaskRequest) -> Result<()> {
    if req.prompt.trim().is_empty() {
        return Err(Problem::validation("prompt must not be empty").into());
    }
    no_nul("prompt", &req.prompt)?;
    if let Some(name) = &req.task_name {
        check_name(name)?;
    }
    if req.use_sba == Some(true) {
        return Err(
            Problem::validation("use_sba is not supported by this orchestrator yet").into(),
        );
    }
    if req.use_mcp == Some(true) && matches!(req.input_mode, None | Some(InputMode::Prompt)) {
        return Err(Problem::validation(
            "use_mcp applies to script and commands tasks (a prompt task's agent is the Project Manager)",
        )
        .into());
    }
    if let Some(requirements) = &req.requirements {
        requirements.validate().map_err(Problem::validation)?;
    }
    if req.attachments.len() > MAX_ATTACHMENTS {
        return Err(Problem::validation(format!(
            "attachments has {} entries; at most {MAX_ATTACHMENTS} are allowed",
            req.attachments.len()
        ))
        .into());
    }
    for (i, path) in req.attachments.iter().enumerate() {
        if path.is_empty() || path.chars().count() > MAX_ATTACHMENT_PATH_CHARS {
            return Err(Problem::validation(format!(
                "attachments[{i}] must be 1 to {MAX_ATTACHMENT_PATH_CHARS} characters"
            ))
            .into());
        }
        no_nul(&format!("attachments[{i}]"), path)?;
        if req.attachments[..i].contains(path) {
            return Err(Problem::validation(format!("attachments[{i}] repeats {path:?}")).into());
        }
    }
    Ok(())
}

/// `base`, or `base-N` with the next N after the highest taken, among the owner's names. A
/// suffix beyond `u32` is a name the user chose, not one of ours; should the highest be
/// `u32::MAX`, the smallest free N is used instead.
fn next_free_name(base: &str, taken: &[String]) -> Option<String> {
    if !taken.iter().any(|t| t == base) {
        return Some(base.to_owned());
    }
    let suffixes: std::collections::HashSet<u32> = taken
        .iter()
        .filter_map(|t| t.strip_prefix(base)?.strip_prefix('-')?.parse::<u32>().ok())
        .collect();
    let highest = suffixes.iter().copied().max().unwrap_or(1).max(1);
    let n = highest
        .checked_add(1)
        .or_else(|| (2..=u32::MAX).find(|n| !suffixes.contains(n)))?;
    Some(format!("{base}-{n}"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: Uuid,
    project_id: Option<Uuid>,
    created_by: Uuid,
    creator: Option<String>,
    task_name: String,
    prompt: String,
    input_mode: String,
    status: String,
    summary: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    attachments: Vec<String>,
    requirements: Option<sqlx::types::Json<JobRequirements>>,
    wait_reason: Option<String>,
}

/// `attachments` are what users attached (uploads and path references); files a job wrote are
/// the task's artifacts, not its attachments.
static TASK_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "t.id, t.project_id, t.created_by, \
         (SELECT u.handle FROM users u WHERE u.id = t.created_by) AS creator, \
         t.task_name, t.prompt, t.input_mode, t.status, t.summary, \
         t.created_at, t.updated_at, \
         coalesce((SELECT array_agg(a.path ORDER BY a.created_at, a.path) FROM task_artifacts a \
                   WHERE a.task_id = t.id AND a.job_id IS NULL), '{{}}') AS attachments, \
         t.requirements, \
         (SELECT j.wait_reason FROM jobs j WHERE j.task_id = t.id AND j.status = '{queued}' \
            AND j.wait_reason IS NOT NULL ORDER BY j.created_at LIMIT 1) AS wait_reason",
        queued = JobStatus::Queued.as_str()
    )
});

fn parse_status(text: &str) -> Result<TaskStatus> {
    text.parse::<TaskStatus>()
        .map_err(|e| Error::internal(format!("bad status in database: {e}")))
}

impl TaskRow {
    fn into_task(self) -> Result<Task> {
        let input_mode = match self.input_mode.as_str() {
            "script" => InputMode::Script,
            "commands" => InputMode::Commands,
            _ => InputMode::Prompt,
        };
        Ok(Task {
            id: self.id,
            task_id: self.id,
            status: parse_status(&self.status)?,
            task_name: Some(self.task_name),
            prompt: Some(self.prompt),
            input_mode,
            summary: self.summary,
            created_at: self.created_at,
            updated_at: self.updated_at,
            attachments: self.attachments,
            requirements: self.requirements.map(|r| r.0),
            wait_reason: self.wait_reason,
            project_id: self.project_id,
            creator: self.creator,
        })
    }
}

/// The task, once the caller's access is settled.
pub(crate) async fn fetch(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<Task> {
    let row: TaskRow = sqlx::query_as(&format!(
        "SELECT {columns} FROM tasks t WHERE t.id = $1",
        columns = *TASK_COLUMNS
    ))
    .bind(id)
    .fetch_one(db)
    .await?;
    row.into_task()
}

/// A file uploaded with a new task (`POST /v1/tasks` as `multipart/form-data`).
#[derive(Debug)]
pub struct Upload {
    /// The part's file name: a plain name, stored at `attachments/<name>`.
    pub file_name: String,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// Where uploaded attachments live among the task's artifacts, apart from what jobs write.
pub const UPLOAD_DIR: &str = "attachments";

impl Upload {
    fn path(&self) -> String {
        format!("{UPLOAD_DIR}/{}", self.file_name)
    }
}

fn bad_multipart(e: axum::extract::multipart::MultipartError) -> Error {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return cynode_service_kit::http::payload_too_large().into();
    }
    Problem::validation(format!("multipart body: {}", e.body_text())).into()
}

/// Reads a `multipart/form-data` task: the `task` part is the `CreateTaskRequest` JSON, every
/// other part a file. Limits are checked as the parts arrive; nothing is stored here.
pub async fn read_multipart(mut form: Multipart) -> Result<(CreateTaskRequest, Vec<Upload>)> {
    let mut task = None;
    let mut uploads: Vec<Upload> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(bad_multipart)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == TASK_PART {
            if task.is_some() {
                return Err(Problem::validation(format!("part {TASK_PART} is given twice")).into());
            }
            let bytes = field.bytes().await.map_err(bad_multipart)?;
            task = Some(
                serde_json::from_slice::<CreateTaskRequest>(&bytes).map_err(|e| {
                    Error::from(Problem::validation(format!("part {TASK_PART}: {e}")))
                })?,
            );
            continue;
        }
        if uploads.len() == MAX_UPLOADS_PER_TASK {
            return Err(Problem::validation(format!(
                "at most {MAX_UPLOADS_PER_TASK} files may be uploaded with a task"
            ))
            .into());
        }
        let file_name = field.file_name().map(str::to_owned).ok_or_else(|| {
            Problem::validation(format!("part {name:?} is not a file (no filename)"))
        })?;
        if file_name.is_empty() || file_name.contains(['/', '\\']) || file_name == "." {
            return Err(Problem::validation(format!(
                "file name {file_name:?} must be a plain name, without directories"
            ))
            .into());
        }
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.map_err(bad_multipart)?;
        if bytes.len() > MAX_ARTIFACT_BYTES {
            return Err(Problem::new(
                cynode_contracts::problem::types::PAYLOAD_TOO_LARGE,
                "Payload too large",
                413,
                format!(
                    "file {file_name:?} is {} bytes; at most {MAX_ARTIFACT_BYTES} are allowed",
                    bytes.len()
                ),
            )
            .into());
        }
        uploads.push(Upload {
            file_name,
            content_type,
            bytes,
        });
    }
    let task = task.ok_or_else(|| {
        Problem::validation(format!("the multipart body has no {TASK_PART} part"))
    })?;
    Ok((task, uploads))
}

fn validate_uploads(req: &CreateTaskRequest, uploads: &[Upload]) -> Result<()> {
    for (i, upload) in uploads.iter().enumerate() {
        let path = upload.path();
        crate::artifacts::check_path(&path)?;
        if req.attachments.contains(&path) || uploads[..i].iter().any(|u| u.path() == path) {
            return Err(
                Problem::validation(format!("file {} is given twice", upload.file_name)).into(),
            );
        }
    }
    Ok(())
}

/// `POST /v1/tasks`: the task, its path-only attachments and its uploaded files commit
/// together or not at all.
pub async fn create(
    db: &PgPool,
    access: &Access,
    planner: &dyn Planner,
    signals: &Signals,
    user: &CurrentUser,
    req: CreateTaskRequest,
    uploads: Vec<Upload>,
) -> Result<Task> {
    validate(&req)?;
    validate_uploads(&req, &uploads)?;
    let mode = req.input_mode.unwrap_or_default();
    let mut tx = db.begin().await?;
    let project_id = match req.project_id {
        Some(id) => id,
        None => crate::projects::default_of(&mut *tx, user.id).await?,
    };
    access
        .require(
            &user.subject,
            Check::new(Action::TaskCreate, "project", project_id).in_project(project_id),
        )
        .await?;
    let archived: Option<bool> =
        sqlx::query_scalar("SELECT NOT is_active FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
    match archived {
        None => {
            return Err(Problem::not_found(format!("project {project_id} does not exist")).into());
        }
        Some(true) => {
            return Err(Problem::conflict(format!(
                "project {project_id} is deleted (archived) and takes no new tasks"
            ))
            .into());
        }
        Some(false) => {}
    }
    // Serialise name choice per owner so that two creates cannot pick the same suffix.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    let base = req.task_name.as_deref().unwrap_or("task");
    let taken: Vec<String> = sqlx::query_scalar(
        "SELECT task_name FROM tasks WHERE created_by = $1
           AND (task_name = $2 OR left(task_name, length($2) + 1) = $2 || '-')",
    )
    .bind(user.id)
    .bind(base)
    .fetch_all(&mut *tx)
    .await?;
    let name = next_free_name(base, &taken).ok_or_else(|| {
        Problem::conflict(format!(
            "every task name {base}-N is taken; choose another name"
        ))
    })?;

    let task_id = Uuid::new_v4();
    let new = NewTask {
        id: task_id,
        created_by: user.principal(),
        project_id: Some(project_id),
        name: &name,
        prompt: &req.prompt,
        input_mode: mode,
        use_inference: req.use_inference.unwrap_or(false),
        use_mcp: req.use_mcp.unwrap_or(false),
        requirements: req.requirements.as_ref(),
    };
    let plan = planner.plan(&new);
    jobs::open_task(&mut tx, &new, plan).await?;
    for path in &req.attachments {
        reference_in(&mut tx, task_id, path).await?;
    }
    let writer = Writer {
        user_id: Some(user.id),
        job_id: None,
    };
    for upload in &uploads {
        let content_type = upload.content_type.as_deref();
        put_in(
            &mut tx,
            task_id,
            &upload.path(),
            content_type,
            &upload.bytes,
            writer,
        )
        .await?;
    }
    let task = fetch(&mut *tx, task_id).await?;
    tx.commit().await?;
    signals.changed();
    planner.opened(task_id, mode);
    tracing::info!(task_id = %task_id, user_id = %user.id, mode = mode.as_str(), "task created");
    Ok(task)
}

fn bad_param(name: &str, why: &str) -> Error {
    Problem::validation(format!("query parameter {name}: {why}")).into()
}

/// `GET /v1/tasks?limit&offset&cursor&status&project&mine`: the tasks the caller may read
/// (in the projects where a role lets them, or everywhere with a system role that does),
/// newest first. The filters apply before pagination.
pub async fn list(
    db: &PgPool,
    user: &CurrentUser,
    query: &HashMap<String, String>,
) -> Result<TaskList> {
    if let Some(unknown) = query.keys().find(|k| {
        !matches!(
            k.as_str(),
            "limit" | "offset" | "cursor" | "status" | "project" | "mine"
        )
    }) {
        return Err(bad_param(
            unknown,
            "unknown parameter (limit, offset, cursor, status, project, mine)",
        ));
    }
    let mine = match query.get("mine").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_param("mine", "must be true or false")),
    };
    let project = match query.get("project") {
        None => None,
        Some(text) => {
            let r = crate::rbac::Ref::parse("project", text)?;
            let found = crate::projects::find(&mut *db.acquire().await?, &r).await;
            match found {
                Ok((id, _, _)) => Some(id),
                // An unknown project holds no tasks the caller may read.
                Err(_) => Some(Uuid::nil()),
            }
        }
    };
    let subject = &user.subject;
    let everywhere = subject.everywhere(Action::TaskRead);
    let readable: Vec<Uuid> = subject
        .projects()
        .into_iter()
        .filter(|p| {
            subject
                .decide(&Check::new(Action::TaskRead, "project", p).in_project(*p))
                .allowed()
        })
        .collect();
    let limit = match query.get("limit") {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| bad_param("limit", "must be a whole number from 1 to 200"))?,
        None => DEFAULT_LIMIT,
    };
    let offset = match query.get("cursor").or(query.get("offset")) {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| bad_param("offset/cursor", "must be a non-negative whole number"))?,
        None => 0,
    };
    let status = query
        .get("status")
        .map(|s| s.parse::<TaskStatus>())
        .transpose()
        .map_err(|e| bad_param("status", &e))?;
    let rows: Vec<TaskRow> = sqlx::query_as(&format!(
        "SELECT {columns} FROM tasks t
         WHERE ($1 OR t.project_id = ANY($2)) AND ($3::text IS NULL OR t.status = $3)
           AND ($4::uuid IS NULL OR t.project_id = $4) AND (NOT $5 OR t.created_by = $6)
         ORDER BY t.created_at DESC, t.id DESC LIMIT $7 OFFSET $8",
        columns = *TASK_COLUMNS
    ))
    .bind(everywhere)
    .bind(&readable)
    .bind(status.map(|s| s.as_str()))
    .bind(project)
    .bind(mine)
    .bind(user.id)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    let tasks = rows
        .into_iter()
        .take(limit as usize)
        .map(TaskRow::into_task)
        .collect::<Result<Vec<_>>>()?;
    let next = more.then(|| (offset + limit) as u64);
    Ok(TaskList {
        tasks,
        next_offset: next,
        next_cursor: next.map(|n| n.to_string()),
    })
}

/// The task `id_or_name` names (an id, or the name of one of the caller's own tasks, the
/// newest of that name), once [`crate::authz`] allows `action` on it: a task in a project the
/// caller holds no role in is 404, one they may see but not act on 403 (both audited).
pub(crate) async fn resolve_row(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    id_or_name: &str,
    action: Action,
) -> Result<TaskRow> {
    let not_found = || {
        Error::from(Problem::not_found(format!(
            "task {id_or_name} does not exist"
        )))
    };
    let row: Option<TaskRow> = match Uuid::parse_str(id_or_name) {
        Ok(id) => {
            sqlx::query_as(&format!(
                "SELECT {columns} FROM tasks t WHERE t.id = $1",
                columns = *TASK_COLUMNS
            ))
            .bind(id)
            .fetch_optional(db)
            .await?
        }
        Err(_) => None,
    };
    let row = match row {
        Some(row) => row,
        None => sqlx::query_as(&format!(
            "SELECT {columns} FROM tasks t WHERE t.task_name = $1 AND t.created_by = $2
             ORDER BY t.created_at DESC LIMIT 1",
            columns = *TASK_COLUMNS
        ))
        .bind(id_or_name)
        .bind(user.id)
        .fetch_optional(db)
        .await?
        .ok_or_else(not_found)?,
    };
    // A task without a project (none are left after the teams migration) is in no one's scope.
    let project = row.project_id.unwrap_or_default();
    let check = Check::new(action, "task", row.id)
        .in_project(project)
        .owned_by(row.created_by);
    match access.require(&user.subject, check).await {
        // The same words for a hidden task as for a missing one.
        Err(Error::Problem(p, _)) if p.status == 404 => Err(not_found()),
        Err(e) => Err(e),
        Ok(()) => Ok(row),
    }
}

/// Like [`resolve_row`], for callers that need only the id.
pub(crate) async fn resolve(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    id_or_name: &str,
    action: Action,
) -> Result<Uuid> {
    Ok(resolve_row(db, access, user, id_or_name, action).await?.id)
}

pub async fn get(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    id_or_name: &str,
) -> Result<Task> {
    resolve_row(db, access, user, id_or_name, Action::TaskRead)
        .await?
        .into_task()
}

pub async fn result(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    id_or_name: &str,
) -> Result<TaskResult> {
    let task = get(db, access, user, id_or_name).await?;
    let jobs = jobs::jobs_of(db, task.id)
        .await?
        .into_iter()
        .map(|job| JobResult {
            id: job.id,
            status: job.status,
            attempts: job.attempts,
            setbacks: job.setbacks,
            result: job.result,
            started_at: job.started_at,
            ended_at: job.ended_at,
        })
        .collect();
    let answer = match (task.input_mode, task.status) {
        (InputMode::Prompt, TaskStatus::Completed) => task.summary.clone(),
        _ => None,
    };
    Ok(TaskResult {
        task_id: task.id,
        status: task.status,
        jobs,
        answer,
    })
}

/// `GET /v1/tasks/{id}/steps`: the Project Manager steps of the caller's task (none for
/// `script` / `commands` tasks).
pub async fn steps(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    id_or_name: &str,
) -> Result<TaskSteps> {
    let id = resolve(db, access, user, id_or_name, Action::TaskRead).await?;
    let steps = crate::pm::planner::steps(db, id)
        .await?
        .into_iter()
        .map(|s| TaskStep {
            index: s.step_index,
            model: s.model,
            node_slug: s.node_slug,
            request: s.request,
            response: s.response,
            decision: s.decision,
            job_id: s.job_id,
            output: s.output,
            error: s.error,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            model_ms: s.model_ms,
            job_ms: s.job_ms,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
        .collect();
    Ok(TaskSteps { task_id: id, steps })
}

/// Cancels a task that has not finished, with its unfinished jobs. A finished task is a 409:
/// there is nothing left to cancel, and saying otherwise would be a lie.
/// Cancels the task (`jobs::cancel`) and returns the jobs that were running, whose sandboxes
/// the caller asks their nodes to stop once this has committed.
pub async fn cancel(
    db: &PgPool,
    access: &Access,
    worker_tokens: &TokenKeys,
    user: &CurrentUser,
    id_or_name: &str,
) -> Result<(CancelResponse, Vec<RunningJob>)> {
    let id = resolve(db, access, user, id_or_name, Action::TaskCancel).await?;
    let running = match jobs::cancel(db, id, worker_tokens).await? {
        Canceled::AlreadyFinished(status) => {
            return Err(Problem::conflict(format!(
                "task {id} is already {status}; nothing to cancel"
            ))
            .into());
        }
        Canceled::Now { running } => running,
    };
    tracing::info!(task_id = %id, running = running.len(), "task canceled");
    Ok((
        CancelResponse {
            task_id: id,
            canceled: true,
        },
        running,
    ))
}

pub async fn logs(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    id_or_name: &str,
    stream: TaskLogStream,
) -> Result<TaskLogs> {
    let (want_out, want_err) = match stream {
        TaskLogStream::All => (true, true),
        TaskLogStream::Stdout => (true, false),
        TaskLogStream::Stderr => (false, true),
    };
    let id = resolve(db, access, user, id_or_name, Action::TaskRead).await?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    for job in jobs::jobs_of(db, id).await? {
        let text = |key: &str| {
            job.result
                .as_ref()
                .and_then(|r| r.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if want_out {
            stdout.push_str(&text("stdout"));
        }
        if want_err {
            stderr.push_str(&text("stderr"));
        }
    }
    Ok(TaskLogs {
        task_id: id,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_not_rewritten() {
        assert!(check_name("'; DROP TABLE tasks; --").is_ok());
        assert!(check_name("   ").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn duplicates_get_the_next_suffix() {
        assert_eq!(next_free_name("a", &[]).as_deref(), Some("a"));
        assert_eq!(next_free_name("a", &["a".into()]).as_deref(), Some("a-2"));
        assert_eq!(
            next_free_name("a", &["a".into(), "a-2".into()]).as_deref(),
            Some("a-3")
        );
        assert_eq!(
            next_free_name("a", &["a".into(), "a-x".into()]).as_deref(),
            Some("a-2")
        );
        let huge = ["a".into(), "a-18446744073709551615".into(), "a-2".into()];
        assert_eq!(next_free_name("a", &huge).as_deref(), Some("a-3"));
        let top = ["a".into(), "a-2".into(), "a-4294967295".into()];
        assert_eq!(next_free_name("a", &top).as_deref(), Some("a-3"));
    }
}
