//! `db.task.*` and `db.job.*`: tasks and jobs are read, and only their status is written
//! (through `jobs`, the owner of task and job status).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::agent::{Agent, AgentType};
use super::super::failure::ToolFailure;
use crate::jobs::{self, Canceled, Conclusion};
use crate::mcp::Mcp;
use crate::sandbox_stop;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    pub task_id: Uuid,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndStatus {
    Completed,
    Failed,
    Canceled,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub task_id: Uuid,
    pub status: EndStatus,
    /// The summary of a completed task, or the reason of a failed one.
    #[schemars(length(max = 65536))]
    pub summary: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    pub job_id: Uuid,
}

type TaskRow = (
    Uuid,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<Uuid>,
    Uuid,
    DateTime<Utc>,
    DateTime<Utc>,
);

pub async fn get(state: &Mcp, _agent: &Agent, args: TaskRef) -> Result<Value, ToolFailure> {
    let row: Option<TaskRow> = sqlx::query_as(
        "SELECT id, task_name, status, prompt, input_mode, summary, project_id, created_by, \
                created_at, updated_at FROM tasks WHERE id = $1",
    )
    .bind(args.task_id)
    .fetch_optional(&state.db)
    .await?;
    let Some((id, name, status, prompt, input_mode, summary, project_id, owner, created, updated)) =
        row
    else {
        return Err(ToolFailure::not_found(format!(
            "task {} does not exist",
            args.task_id
        )));
    };
    let attachments: Vec<String> = sqlx::query_scalar(
        "SELECT path FROM task_artifacts WHERE task_id = $1 ORDER BY created_at, path",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await?;
    let jobs: Vec<Value> = jobs::jobs_of(&state.db, id)
        .await?
        .into_iter()
        .map(|j| json!({"job_id": j.id, "status": j.status, "attempts": j.attempts}))
        .collect();
    Ok(json!({
        "task_id": id,
        "task_name": name,
        "status": status,
        "prompt": prompt,
        "input_mode": input_mode,
        "summary": summary,
        "project_id": project_id,
        "created_by": owner,
        "created_at": created,
        "updated_at": updated,
        "attachments": attachments,
        "jobs": jobs,
    }))
}

/// The task exists (`not_found` otherwise) and has not ended (`conflict`).
pub(super) async fn require_open(state: &Mcp, task_id: Uuid) -> Result<(), ToolFailure> {
    let closed: Option<bool> = sqlx::query_scalar("SELECT closed FROM tasks WHERE id = $1")
        .bind(task_id)
        .fetch_optional(&state.db)
        .await?;
    match closed {
        None => Err(ToolFailure::not_found(format!(
            "task {task_id} does not exist"
        ))),
        Some(true) => Err(ToolFailure::conflict(format!(
            "task {task_id} has already ended"
        ))),
        Some(false) => Ok(()),
    }
}

pub async fn update_status(
    state: &Mcp,
    _agent: &Agent,
    args: StatusChange,
) -> Result<Value, ToolFailure> {
    require_open(state, args.task_id).await?;
    let status = match args.status {
        EndStatus::Completed => {
            jobs::conclude(
                &state.db,
                args.task_id,
                Conclusion::Answer(args.summary.unwrap_or_default()),
            )
            .await?
        }
        EndStatus::Failed => {
            let reason = args
                .summary
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    ToolFailure::invalid("a failed status needs a summary (the reason)")
                })?;
            jobs::conclude(&state.db, args.task_id, Conclusion::Fail(reason)).await?
        }
        EndStatus::Canceled => {
            match jobs::cancel(&state.db, args.task_id, &state.worker_tokens).await? {
                Canceled::AlreadyFinished(status) => {
                    return Err(ToolFailure::conflict(format!(
                        "task {} is already {status}",
                        args.task_id
                    )));
                }
                Canceled::Now { running } => {
                    sandbox_stop::stop_sandboxes(&state.http, &running, sandbox_stop::Stop::Cancel)
                        .await;
                }
            }
            cynode_contracts::user::TaskStatus::Canceled
        }
    };
    state.signals.changed();
    Ok(json!({"task_id": args.task_id, "status": status}))
}

pub async fn job(state: &Mcp, agent: &Agent, args: JobRef) -> Result<Value, ToolFailure> {
    let job = jobs::job(&state.db, args.job_id)
        .await?
        .filter(|j| agent.agent_type == AgentType::Pm || agent.task_id == Some(j.task_id))
        .ok_or_else(|| ToolFailure::not_found(format!("job {} does not exist", args.job_id)))?;
    Ok(json!({
        "job_id": job.id,
        "task_id": job.task_id,
        "status": job.status,
        "attempts": job.attempts,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "result": job.result,
    }))
}
