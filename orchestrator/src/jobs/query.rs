//! Reads of the queue: a job, a task's jobs, and when something next becomes due.

use chrono::{DateTime, Utc};
use cynode_contracts::user::{JobSetback, JobStatus, NodeState};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::status::parse;
use crate::error::{Error, Result};

/// One job as the queue keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: Uuid,
    pub task_id: Uuid,
    pub status: JobStatus,
    pub payload: Value,
    /// The worker's full `RunJobResponse`, or a [`JobFailure`](cynode_contracts::user::JobFailure).
    pub result: Option<Value>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub setbacks: Vec<JobSetback>,
}

type JobRow = (
    Uuid,
    Uuid,
    String,
    Value,
    Option<Value>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
    Value,
);

fn record(
    (id, task_id, status, payload, result, started_at, ended_at, attempts, setbacks): JobRow,
) -> Result<JobRecord> {
    Ok(JobRecord {
        id,
        task_id,
        status: parse(&status)?,
        payload,
        result,
        started_at,
        ended_at,
        attempts,
        setbacks: serde_json::from_value(setbacks).map_err(Error::internal)?,
    })
}

const JOB_COLUMNS: &str =
    "id, task_id, status, payload, result, started_at, ended_at, attempts, setbacks";

/// One job (a planner reading a step's result).
pub async fn job(db: impl sqlx::PgExecutor<'_>, job_id: Uuid) -> Result<Option<JobRecord>> {
    sqlx::query_as::<_, JobRow>(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(job_id)
        .fetch_optional(db)
        .await?
        .map(record)
        .transpose()
}

/// A task's jobs, oldest first.
pub async fn jobs_of(db: impl sqlx::PgExecutor<'_>, task_id: Uuid) -> Result<Vec<JobRecord>> {
    sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE task_id = $1 ORDER BY created_at, id"
    ))
    .bind(task_id)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(record)
    .collect()
}

/// The next moment something becomes due: a retry's backoff ends, a lease expires, a paused
/// node may take jobs again or a drained node's deadline passes while it runs jobs.
pub async fn next_due(db: &PgPool) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT least(
            (SELECT min(next_attempt_at) FROM jobs WHERE status = $1 AND next_attempt_at > now()),
            (SELECT min(lease_expires_at) FROM jobs WHERE status = $2),
            (SELECT min(dispatch_paused_until) FROM nodes WHERE dispatch_paused_until > now()),
            (SELECT min(n.drain_deadline) FROM nodes n WHERE n.status = $3
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.node_id = n.id AND j.status = $2)))",
    )
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Running.as_str())
    .bind(NodeState::Drained.as_str())
    .fetch_one(db)
    .await?)
}
