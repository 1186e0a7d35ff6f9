//! Canceling a task, and the running jobs whose nodes must be told to stop.

use cynode_contracts::user::{JobStatus, TaskStatus};
use cynode_service_kit::secrets::Secret;
use sqlx::PgPool;
use uuid::Uuid;

use super::status::{Note, lock_jobs, parse, set_task_status};
use crate::error::Result;
use crate::worker_tokens::TokenKeys;

/// What [`cancel`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canceled {
    /// Canceled now. `running` were with a node's worker API: their sandboxes still run until
    /// the node is told to stop them (see `sandbox_stop::stop_sandboxes`).
    Now { running: Vec<RunningJob> },
    /// The task had already finished in this state; nothing changed.
    AlreadyFinished(TaskStatus),
}

/// A job that was running on a node, and how to reach that node's worker API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub job_id: Uuid,
    pub node_slug: String,
    pub url: String,
    pub token: Secret,
}

/// Cancels a task that has not finished, with its unfinished jobs. Clearing their leases makes
/// a dispatch in flight unable to record its outcome. Returns the jobs that were running, so
/// that the caller, after this commit, asks their nodes to stop the sandboxes.
pub async fn cancel(db: &PgPool, task_id: Uuid, keys: &TokenKeys) -> Result<Canceled> {
    let mut tx = db.begin().await?;
    lock_jobs(&mut tx, task_id).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(task_id)
        .fetch_one(&mut *tx)
        .await?;
    let status: TaskStatus = parse(&status)?;
    if status.is_terminal() {
        return Ok(Canceled::AlreadyFinished(status));
    }
    let running = running_on(&mut *tx, task_id, keys).await?;
    set_task_status(&mut tx, task_id, TaskStatus::Canceled, Note::Keep).await?;
    tx.commit().await?;
    Ok(Canceled::Now { running })
}

/// The task's running jobs and the nodes running them (read only: cancel reads them under its
/// locks, the live log stream as they are).
pub async fn running_on(
    db: impl sqlx::PgExecutor<'_>,
    task_id: Uuid,
    keys: &TokenKeys,
) -> Result<Vec<RunningJob>> {
    let running: Vec<(Uuid, Uuid, String, String, String)> = sqlx::query_as(
        "SELECT j.id, n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token
         FROM jobs j JOIN nodes n ON n.id = j.node_id
         WHERE j.task_id = $1 AND j.status = $2
           AND n.worker_api_target_url IS NOT NULL AND n.worker_api_bearer_token IS NOT NULL
         ORDER BY j.id",
    )
    .bind(task_id)
    .bind(JobStatus::Running.as_str())
    .fetch_all(db)
    .await?;
    running
        .into_iter()
        .map(|(job_id, node_id, node_slug, url, token)| {
            Ok(RunningJob {
                job_id,
                node_slug,
                url,
                token: keys.open(node_id, &token)?,
            })
        })
        .collect()
}
