//! What the workflow reads of a task, in one place: the task itself (through the task row and
//! [`crate::jobs`]), its acceptance criteria, the effective preferences and the artifacts. The
//! last two are MCP tool calls of the Project Manager (`db.preference.effective`,
//! `artifact.list`) through the gateway's pipeline, so they are checked and audited like any
//! agent's.

use cynode_contracts::user::TaskStatus;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::mcp::{Agent, Mcp, invoke};

/// A prompt task as the workflow sees it.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub task_id: Uuid,
    pub prompt: String,
    /// Whom the model calls are charged to.
    pub owner: Principal,
}

/// The prompt task `task_id`; `None` when it is not a prompt task (another planner's plan is
/// not the workflow's) or does not exist.
pub async fn task(mcp: &Mcp, task_id: Uuid) -> Result<Option<TaskContext>> {
    let row: Option<(String, Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT prompt, created_by, api_key_id FROM tasks WHERE id = $1 AND input_mode = 'prompt'",
    )
    .bind(task_id)
    .fetch_optional(&mcp.db)
    .await?;
    Ok(row.map(|(prompt, user_id, api_key_id)| TaskContext {
        task_id,
        prompt,
        owner: Principal {
            user_id,
            api_key_id,
        },
    }))
}

/// Whether the workflow may go on: the task is not finished (done, failed, canceled) and its
/// plan is still open. A cancel shows here, and the driver stops.
pub async fn open(mcp: &Mcp, task_id: Uuid) -> Result<bool> {
    let row: Option<(String, bool)> =
        sqlx::query_as("SELECT status, plan_open FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(&mcp.db)
            .await?;
    let Some((status, plan_open)) = row else {
        return Ok(false);
    };
    let status: TaskStatus = status.parse().map_err(Error::internal)?;
    Ok(plan_open && !status.is_terminal())
}

/// The task's acceptance criteria. Tasks carry none of their own yet: the verifier judges
/// against each step's expected evidence and the user's request.
pub fn acceptance_criteria(_task: &TaskContext) -> Vec<String> {
    Vec::new()
}

/// One tool call as the Project Manager; a refusal or failure is the workflow's error.
async fn pm_tool(mcp: &Mcp, tool: &str, arguments: Value) -> Result<Value> {
    let Value::Object(arguments) = arguments else {
        return Err(Error::internal("tool arguments must be an object"));
    };
    invoke(mcp, &Ok(Agent::pm()), tool, Some(arguments))
        .await
        .map_err(|f| Error::internal(format!("{tool}: {} ({})", f.message, f.kind.code())))
}

/// The preferences in force for the task, with the scope each came from (the applied set the
/// spec asks the PM to record): `{"effective": {..}, "sources": [..]}`.
pub async fn preferences_effective(mcp: &Mcp, task: &TaskContext) -> Result<Value> {
    pm_tool(
        mcp,
        "db.preference.effective",
        json!({"task_id": task.task_id, "include_sources": true}),
    )
    .await
}

/// The task's files (metadata: path, type, size, checksum).
pub async fn artifacts(mcp: &Mcp, task: &TaskContext) -> Result<Vec<Value>> {
    let listed = pm_tool(mcp, "artifact.list", json!({"task_id": task.task_id})).await?;
    Ok(listed["artifacts"].as_array().cloned().unwrap_or_default())
}
