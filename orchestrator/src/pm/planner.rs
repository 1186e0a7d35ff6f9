//! Prompt tasks (`input_mode: prompt`) on the jobs seam, and their user-visible record.
//!
//! [`PmPlanner`] opens a prompt task with an open plan and no job, and hands it to the workflow
//! engine (`crate::workflow::engine`), which plans, runs sandbox steps, verifies them and ends the
//! task; `script` and `commands` tasks run as [`ShellPlanner`] decides. Every model call and
//! every job of the workflow is a row of `task_steps` (`GET /v1/tasks/{id}/steps`), written here.
//!
//! The prompt is never run as shell: only commands the model chose run, in the sandbox.

use cynode_contracts::user::{InputMode, TaskStatus};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::Result;
use crate::jobs::{NewTask, Plan, Planner, ShellPlanner};

/// Token counts of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PmUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A step as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Step {
    pub id: Uuid,
    pub step_index: i32,
    pub model: String,
    pub node_slug: String,
    pub request: Value,
    pub response: Option<String>,
    pub decision: Option<Value>,
    pub job_id: Option<Uuid>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub model_ms: i64,
    pub job_ms: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A task's steps, in order.
pub async fn steps(db: impl sqlx::PgExecutor<'_>, task_id: Uuid) -> Result<Vec<Step>> {
    Ok(sqlx::query_as::<_, Step>(
        "SELECT id, step_index, model, node_slug, request, response, decision, job_id, output,
                error, prompt_tokens, completion_tokens, model_ms, job_ms, created_at, updated_at
         FROM task_steps WHERE task_id = $1 ORDER BY step_index",
    )
    .bind(task_id)
    .fetch_all(db)
    .await?)
}

/// A step to record: a model call (model, node, messages, answer, what it decided) or a sandbox
/// job (no model: `model` and `node_slug` empty, `decision` the commands, `job_id` set).
#[derive(Debug, Clone)]
pub struct NewStep {
    pub task_id: Uuid,
    pub model: String,
    pub node_slug: String,
    pub request: Value,
    pub response: Option<String>,
    pub decision: Option<Value>,
    pub job_id: Option<Uuid>,
    pub error: Option<String>,
    pub usage: PmUsage,
    pub model_ms: i64,
}

/// Appends a step to the task's record; with a `job_id` the task already has a step of, nothing
/// is added (a resumed dispatch records its job once).
pub async fn record(db: impl sqlx::PgExecutor<'_>, step: &NewStep) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_steps (id, task_id, step_index, model, node_slug, request, response,
            decision, job_id, error, prompt_tokens, completion_tokens, model_ms)
         SELECT $1, $2, coalesce((SELECT max(step_index) + 1 FROM task_steps WHERE task_id = $2), 0),
            $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
         WHERE $8::uuid IS NULL
            OR NOT EXISTS (SELECT 1 FROM task_steps WHERE task_id = $2 AND job_id = $8)",
    )
    .bind(Uuid::new_v4())
    .bind(step.task_id)
    .bind(&step.model)
    .bind(&step.node_slug)
    .bind(&step.request)
    .bind(&step.response)
    .bind(&step.decision)
    .bind(step.job_id)
    .bind(&step.error)
    .bind(step.usage.prompt_tokens as i64)
    .bind(step.usage.completion_tokens as i64)
    .bind(step.model_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Records what a job's step produced, as the model reads it (capped), and how long it ran.
pub async fn record_output(
    db: impl sqlx::PgExecutor<'_>,
    job_id: Uuid,
    output: &Value,
    job_ms: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE task_steps SET output = $2, job_ms = $3, updated_at = now() WHERE job_id = $1",
    )
    .bind(job_id)
    .bind(output)
    .bind(job_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// The planner of every task: `script`/`commands` as [`ShellPlanner`]; `prompt` as an open
/// plan driven by the workflow engine.
#[derive(Debug, Clone)]
pub struct PmPlanner {
    pub shell: ShellPlanner,
    /// Prompt tasks to drive, for `workflow::engine::drive_requested`. A channel, not the state
    /// itself: the state holds this planner, and the reference cycle would keep the state (and
    /// its database connections) alive after the runtime that ran it has gone.
    requests: mpsc::UnboundedSender<Uuid>,
}

impl PmPlanner {
    /// The planner and the receiving end of its requests.
    pub fn new(shell: ShellPlanner) -> (Self, mpsc::UnboundedReceiver<Uuid>) {
        let (requests, received) = mpsc::unbounded_channel();
        (Self { shell, requests }, received)
    }

    fn spawn(&self, task_id: Uuid) {
        // The receiver goes only when the process stops; the task then resumes at the next
        // start (or in another orchestrator's resume loop).
        let _ = self.requests.send(task_id);
    }
}

impl Planner for PmPlanner {
    fn plan(&self, task: &NewTask<'_>) -> Plan {
        match task.input_mode {
            InputMode::Prompt => Plan::Open(Vec::new()),
            InputMode::Script | InputMode::Commands => self.shell.plan(task),
        }
    }

    fn opened(&self, task_id: Uuid, input_mode: InputMode) {
        if input_mode == InputMode::Prompt {
            self.spawn(task_id);
        }
    }

    fn step_finished(&self, task_id: Uuid, _job_id: Uuid, _task_status: TaskStatus) {
        self.spawn(task_id);
    }
}
