//! What the workflow reads of a task, in one place: the task itself (through the task row and
//! [`crate::jobs`]), its acceptance criteria, the effective preferences and the artifacts.
//! Preferences and artifacts are placeholders here, each one function to replace once their
//! stores exist.

use cynode_contracts::user::TaskStatus;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{Error, Result};

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
pub async fn task(state: &AppState, task_id: Uuid) -> Result<Option<TaskContext>> {
    let row: Option<(String, Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT prompt, created_by, api_key_id FROM tasks WHERE id = $1 AND input_mode = 'prompt'",
    )
    .bind(task_id)
    .fetch_optional(&state.db)
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
pub async fn open(state: &AppState, task_id: Uuid) -> Result<bool> {
    let row: Option<(String, bool)> =
        sqlx::query_as("SELECT status, plan_open FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(&state.db)
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

/// The preferences in force for the task (spec: `db.preference.effective`). Replace with the
/// preference store's resolution.
pub async fn preferences_effective(_state: &AppState, _task: &TaskContext) -> Result<Value> {
    Ok(json!({}))
}

/// The task's input artifacts (spec: `artifact.*`). Replace with the artifact store's listing.
pub async fn artifacts(_state: &AppState, _task: &TaskContext) -> Result<Vec<Value>> {
    Ok(Vec::new())
}
