//! The two tables of the workflow, and the only code that touches them: checkpoints
//! (`workflow_checkpoints`) and leases (`task_workflow_leases`). The engine's drivers and the
//! workflow API both go through these functions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Result;

/// A task's saved workflow state.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Checkpoint {
    pub task_id: Uuid,
    pub state: Value,
    pub last_node_id: String,
    pub updated_at: DateTime<Utc>,
}

/// The task's checkpoint, if it has one.
pub async fn checkpoint(
    db: impl sqlx::PgExecutor<'_>,
    task_id: Uuid,
) -> Result<Option<Checkpoint>> {
    Ok(sqlx::query_as::<_, Checkpoint>(
        "SELECT task_id, state, last_node_id, updated_at FROM workflow_checkpoints
         WHERE task_id = $1",
    )
    .bind(task_id)
    .fetch_optional(db)
    .await?)
}

/// Upserts the task's checkpoint (`state` must be a JSON object).
pub async fn save(
    db: impl sqlx::PgExecutor<'_>,
    task_id: Uuid,
    state: &Value,
    last_node_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO workflow_checkpoints (id, task_id, state, last_node_id)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (task_id) DO UPDATE
            SET state = EXCLUDED.state, last_node_id = EXCLUDED.last_node_id, updated_at = now()",
    )
    .bind(Uuid::new_v4())
    .bind(task_id)
    .bind(state)
    .bind(last_node_id)
    .execute(db)
    .await?;
    Ok(())
}

/// What asking for a task's lease came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lease was free (never taken, released or expired) and is now ours.
    Started,
    /// The same holder already holds it with the same `lease_id`, unexpired.
    AlreadyRunning,
    /// Someone else holds it (or the same holder under another `lease_id`).
    Held,
}

/// Takes the task's lease for `holder_id` as `lease_id` for `ttl`, if it is free. One statement
/// (the upsert locks the row), so two callers never both get [`Acquired::Started`].
pub async fn acquire(
    db: &sqlx::PgPool,
    task_id: Uuid,
    holder_id: &str,
    lease_id: Uuid,
    ttl: Duration,
) -> Result<Acquired> {
    let taken = sqlx::query(
        "INSERT INTO task_workflow_leases (id, task_id, lease_id, holder_id, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         ON CONFLICT (task_id) DO UPDATE
            SET lease_id = EXCLUDED.lease_id, holder_id = EXCLUDED.holder_id,
                expires_at = EXCLUDED.expires_at, updated_at = now()
            WHERE task_workflow_leases.holder_id IS NULL
               OR task_workflow_leases.expires_at <= now()",
    )
    .bind(Uuid::new_v4())
    .bind(task_id)
    .bind(lease_id)
    .bind(holder_id)
    .bind(ttl.as_secs_f64())
    .execute(db)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Acquired::Started);
    }
    let same: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM task_workflow_leases
            WHERE task_id = $1 AND holder_id = $2 AND lease_id = $3
              AND (expires_at IS NULL OR expires_at > now()))",
    )
    .bind(task_id)
    .bind(holder_id)
    .bind(lease_id)
    .fetch_one(db)
    .await?;
    Ok(if same {
        Acquired::AlreadyRunning
    } else {
        Acquired::Held
    })
}

/// Extends a lease we still hold by `ttl` from now; `false` when it is no longer ours
/// (released, expired and taken, or expired).
pub async fn renew(
    db: &sqlx::PgPool,
    task_id: Uuid,
    holder_id: &str,
    lease_id: Uuid,
    ttl: Duration,
) -> Result<bool> {
    let renewed = sqlx::query(
        "UPDATE task_workflow_leases
         SET expires_at = now() + make_interval(secs => $4), updated_at = now()
         WHERE task_id = $1 AND holder_id = $2 AND lease_id = $3 AND expires_at > now()",
    )
    .bind(task_id)
    .bind(holder_id)
    .bind(lease_id)
    .bind(ttl.as_secs_f64())
    .execute(db)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Frees the lease if it is still `lease_id`; releasing a free or foreign lease changes nothing.
pub async fn release(db: impl sqlx::PgExecutor<'_>, task_id: Uuid, lease_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE task_workflow_leases SET holder_id = NULL, expires_at = NULL, updated_at = now()
         WHERE task_id = $1 AND lease_id = $2 AND holder_id IS NOT NULL",
    )
    .bind(task_id)
    .bind(lease_id)
    .execute(db)
    .await?;
    Ok(())
}

/// Open prompt tasks nobody holds the lease of: the ones a driver should resume.
pub async fn unheld_prompt_tasks(db: impl sqlx::PgExecutor<'_>) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT t.id FROM tasks t
         WHERE t.input_mode = 'prompt' AND t.plan_open AND NOT t.closed
           AND NOT EXISTS (SELECT 1 FROM task_workflow_leases l
                WHERE l.task_id = t.id AND l.holder_id IS NOT NULL
                  AND (l.expires_at IS NULL OR l.expires_at > now()))",
    )
    .fetch_all(db)
    .await?)
}

/// Replaces the state of an existing checkpoint, keeping its `last_node_id`: what a node saves
/// before a side effect it must not repeat on a resume (a job's id before the job exists).
pub async fn update_state(
    db: impl sqlx::PgExecutor<'_>,
    task_id: Uuid,
    state: &Value,
) -> Result<()> {
    sqlx::query(
        "UPDATE workflow_checkpoints SET state = $2, updated_at = now() WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(state)
    .execute(db)
    .await?;
    Ok(())
}
