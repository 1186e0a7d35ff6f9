//! Tasks and jobs going into the queue, and the end of an open plan.

use cynode_contracts::user::{JobStatus, TaskStatus};
use cynode_contracts::worker::SandboxSpec;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::setbacks::failure;
use super::status::{Note, lock_jobs, parse, settle};
use super::{NewTask, Plan, notify};
use crate::error::{Error, Result};

async fn insert_job(tx: &mut PgConnection, task_id: Uuid, spec: &SandboxSpec) -> Result<Uuid> {
    insert_job_as(tx, task_id, Uuid::new_v4(), spec).await
}

async fn insert_job_as(
    tx: &mut PgConnection,
    task_id: Uuid,
    id: Uuid,
    spec: &SandboxSpec,
) -> Result<Uuid> {
    // The statement's clock, not the transaction's: steps of one plan keep their order.
    sqlx::query(
        "INSERT INTO jobs (id, task_id, status, payload, created_at, requirements)
         SELECT $1, $2, $3, $4, clock_timestamp(), t.requirements FROM tasks t WHERE t.id = $2",
    )
    .bind(id)
    .bind(task_id)
    .bind(JobStatus::Queued.as_str())
    .bind(serde_json::to_value(spec).map_err(Error::internal)?)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// A job that ran nowhere and failed: it keeps `reason` where the task's result shows it.
pub(super) async fn insert_failed_job(
    tx: &mut PgConnection,
    task_id: Uuid,
    payload: &Value,
    reason: &str,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, task_id, status, payload, result, ended_at)
         VALUES ($1, $2, $3, $4, $5, now())",
    )
    .bind(id)
    .bind(task_id)
    .bind(JobStatus::Failed.as_str())
    .bind(payload)
    .bind(failure(reason))
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Inserts the task and what `plan` says it runs, inside the caller's transaction. The caller
/// signals the in-process dispatcher after committing.
pub async fn open_task(tx: &mut PgConnection, task: &NewTask<'_>, plan: Plan) -> Result<()> {
    let plan_open = matches!(plan, Plan::Open(_));
    sqlx::query(
        "INSERT INTO tasks (id, created_by, api_key_id, project_id, task_name, prompt, input_mode,
                            status, closed, plan_open, requirements)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $10)",
    )
    .bind(task.id)
    .bind(task.created_by.user_id)
    .bind(task.created_by.api_key_id)
    .bind(task.project_id)
    .bind(task.name)
    .bind(task.prompt)
    .bind(task.input_mode.as_str())
    .bind(TaskStatus::Queued.as_str())
    .bind(plan_open)
    .bind(
        task.requirements
            .filter(|r| !r.is_empty())
            .map(serde_json::to_value)
            .transpose()
            .map_err(Error::internal)?,
    )
    .execute(&mut *tx)
    .await?;
    match plan {
        Plan::Run(specs) | Plan::Open(specs) => {
            for spec in &specs {
                insert_job(tx, task.id, spec).await?;
            }
            if !specs.is_empty() {
                notify(tx).await?;
            }
            settle(tx, task.id, Note::Keep).await?;
        }
        Plan::Refuse(reason) => {
            let payload = json!({"input_mode": task.input_mode.as_str()});
            insert_failed_job(tx, task.id, &payload, &reason).await?;
            settle(tx, task.id, Note::Set(&reason)).await?;
        }
    }
    Ok(())
}

/// Adds a job to a task whose plan is open (a planner's follow-up step). A finished task, or
/// one whose plan is closed, takes no more jobs.
pub async fn enqueue(db: &PgPool, task_id: Uuid, spec: &SandboxSpec) -> Result<Uuid> {
    enqueue_as(db, task_id, Uuid::new_v4(), spec).await
}

/// [`enqueue`] with the job's id chosen by the planner, idempotent: if the task already has a
/// job with this id, that job stays as it is (whatever its status) and nothing is added. A
/// planner that derives the id from what the job is for never enqueues it twice.
pub async fn enqueue_as(
    db: &PgPool,
    task_id: Uuid,
    job_id: Uuid,
    spec: &SandboxSpec,
) -> Result<Uuid> {
    let mut tx = db.begin().await?;
    lock_jobs(&mut tx, task_id).await?;
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT task_id FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
    match existing {
        Some(owner) if owner == task_id => return Ok(job_id),
        Some(_) => {
            return Err(Error::internal(format!(
                "job {job_id} belongs to another task than {task_id}"
            )));
        }
        None => {}
    }
    let (status, plan_open): (String, bool) =
        sqlx::query_as("SELECT status, plan_open FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await?;
    let status: TaskStatus = parse(&status)?;
    if status.is_terminal() || !plan_open {
        return Err(Error::internal(format!(
            "task {task_id} takes no more jobs (status {status}, plan closed: {})",
            !plan_open
        )));
    }
    insert_job_as(&mut tx, task_id, job_id, spec).await?;
    notify(&mut tx).await?;
    settle(&mut tx, task_id, Note::Keep).await?;
    tx.commit().await?;
    Ok(job_id)
}

/// How a planner ends a task whose plan is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Conclusion {
    /// Done: the task completes (once its remaining jobs have) with `answer` as its summary.
    Answer(String),
    /// The task fails with this reason, recorded as a failed step like a refused plan.
    Fail(String),
}

/// Closes a task's plan. Returns the task's status afterwards.
pub async fn conclude(db: &PgPool, task_id: Uuid, conclusion: Conclusion) -> Result<TaskStatus> {
    let mut tx = db.begin().await?;
    let status = conclude_in(&mut tx, task_id, conclusion).await?;
    tx.commit().await?;
    Ok(status)
}

/// [`conclude`] inside the caller's transaction, for a planner whose own record of the end must
/// commit with it (the workflow's final checkpoint).
pub async fn conclude_in(
    tx: &mut PgConnection,
    task_id: Uuid,
    conclusion: Conclusion,
) -> Result<TaskStatus> {
    lock_jobs(tx, task_id).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(task_id)
        .fetch_one(&mut *tx)
        .await?;
    let status: TaskStatus = parse(&status)?;
    if status.is_terminal() {
        return Ok(status);
    }
    let status = match &conclusion {
        Conclusion::Answer(answer) => {
            sqlx::query("UPDATE tasks SET plan_open = false, summary = $2 WHERE id = $1")
                .bind(task_id)
                .bind(answer)
                .execute(&mut *tx)
                .await?;
            settle(tx, task_id, Note::Keep).await?
        }
        Conclusion::Fail(reason) => {
            sqlx::query("UPDATE tasks SET plan_open = false WHERE id = $1")
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            insert_failed_job(tx, task_id, &json!({"planner": true}), reason).await?;
            settle(tx, task_id, Note::Set(reason)).await?
        }
    };
    Ok(status)
}
