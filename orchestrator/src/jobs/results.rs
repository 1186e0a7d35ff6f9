//! What a delivery recorded, by the lease holder only: a result, a retry or an interruption.

use cynode_contracts::user::{JobStatus, TaskStatus};
use cynode_contracts::worker::RunStatus;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::Claim;
use super::setbacks::{Setback, backoff, failure, push_setback, requeue_or_fail};
use super::status::{Note, lock_jobs, settle};
use crate::config::Config;
use crate::error::Result;

/// A run's job status and, when it failed, what the task's owner reads. A command that exits
/// non-zero is a failed job, and so is a run that timed out.
pub fn judge(run: RunStatus, result: &Value) -> (JobStatus, Option<String>) {
    let exit_code = result.get("exit_code").and_then(Value::as_i64);
    match run {
        RunStatus::Completed if exit_code.unwrap_or(0) == 0 => (JobStatus::Completed, None),
        RunStatus::Completed | RunStatus::Failed => (
            JobStatus::Failed,
            Some(match exit_code {
                Some(code) => format!("job failed with exit code {code}"),
                None => result
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("job failed")
                    .to_owned(),
            }),
        ),
        RunStatus::Timeout => (
            JobStatus::Failed,
            Some("job timed out in the sandbox".to_owned()),
        ),
        // Stopped on the node without a cancel here (one here clears the lease first, and the
        // answer is dropped): the job and its task end canceled all the same.
        RunStatus::Canceled => (
            JobStatus::Canceled,
            Some("job was stopped on its node".to_owned()),
        ),
    }
}

/// The task after a job was recorded, for the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub task_status: TaskStatus,
    pub plan_open: bool,
}

/// Locks the claimed job's task for a lease holder. `None` when the lease is gone (canceled,
/// or reaped after it expired): then nothing may be recorded.
async fn hold_lease(tx: &mut PgConnection, claim: &Claim) -> Result<Option<bool>> {
    lock_jobs(tx, claim.task_id).await?;
    let holds: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND lease_id = $2 AND status = $3)",
    )
    .bind(claim.job_id)
    .bind(claim.lease_id)
    .bind(JobStatus::Running.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if !holds {
        return Ok(None);
    }
    let plan_open: bool = sqlx::query_scalar("SELECT plan_open FROM tasks WHERE id = $1")
        .bind(claim.task_id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(plan_open))
}

/// Records the end of a claimed job, if the lease is still ours: the worker's `run` status and
/// full response, or (`run` = `None`) a job the worker refused, with a
/// [`JobFailure`](cynode_contracts::user::JobFailure) `result`.
pub async fn complete(
    db: &PgPool,
    claim: &Claim,
    outcome: Result<(RunStatus, Value), String>,
) -> Result<Option<Recorded>> {
    let (status, note, result) = match outcome {
        Ok((run, response)) => {
            let (status, note) = judge(run, &response);
            (status, note, response)
        }
        Err(reason) => (JobStatus::Failed, Some(reason.clone()), failure(&reason)),
    };
    let mut tx = db.begin().await?;
    let Some(plan_open) = hold_lease(&mut tx, claim).await? else {
        tracing::warn!(job_id = %claim.job_id, "lease lost before the result arrived (canceled or requeued); result dropped");
        return Ok(None);
    };
    sqlx::query(
        "UPDATE jobs SET status = $2, result = $3, ended_at = now(), lease_id = NULL,
            lease_expires_at = NULL, last_error = NULL
         WHERE id = $1",
    )
    .bind(claim.job_id)
    .bind(status.as_str())
    .bind(&result)
    .execute(&mut *tx)
    .await?;
    let note = note.as_deref().map_or(Note::Keep, Note::Set);
    let task_status = settle(&mut tx, claim.task_id, note).await?;
    tx.commit().await?;
    tracing::info!(job_id = %claim.job_id, task_id = %claim.task_id, status = %status, task_status = %task_status, "job finished");
    Ok(Some(Recorded {
        task_status,
        plan_open,
    }))
}

/// A delivery failed in a retryable way: back to the queue with a doubling backoff, or failed
/// when the attempts are used up, if we still hold the lease. `reason` (worker URLs, error
/// chains) goes to `jobs.last_error` only; the task's owner sees a generic account. Returns
/// the task when the job failed for good.
pub async fn retry(
    db: &PgPool,
    config: &Config,
    claim: &Claim,
    reason: &str,
) -> Result<Option<Recorded>> {
    let delay = backoff(config.dispatch_retry_base, claim.attempts);
    let gave_up = format!(
        "dispatch gave up after {} attempts: the worker node did not take the job",
        claim.attempts
    );
    let queued_note = format!("node {} did not take the job; will retry", claim.node_slug);
    let mut tx = db.begin().await?;
    let Some(plan_open) = hold_lease(&mut tx, claim).await? else {
        return Ok(None);
    };
    let (status, task_status) = requeue_or_fail(
        &mut tx,
        Setback {
            job_id: claim.job_id,
            task_id: claim.task_id,
            give_up: claim.attempts >= config.dispatch_max_attempts,
            delay,
            last_error: reason,
            queued_note: &queued_note,
            gave_up: &gave_up,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((status == JobStatus::Failed).then_some(Recorded {
        task_status,
        plan_open,
    }))
}

/// The worker shut down while the job ran and says it was interrupted: the job goes back to
/// the queue at once, if we still hold the lease, and the attempt is given back, because the
/// job did not fail (the node going away is the node's affair; the dispatcher pauses it).
pub async fn interrupted(db: &PgPool, claim: &Claim, reason: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    if hold_lease(&mut tx, claim).await?.is_none() {
        return Ok(());
    }
    let note = format!(
        "node {} stopped while the job ran; it will run again",
        claim.node_slug
    );
    sqlx::query(&format!(
        "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL, last_error = $3,
            attempts = greatest(attempts - 1, 0), next_attempt_at = now(), {}
         WHERE id = $1",
        push_setback(4)
    ))
    .bind(claim.job_id)
    .bind(JobStatus::Queued.as_str())
    .bind(reason)
    .bind(&note)
    .execute(&mut *tx)
    .await?;
    settle(&mut tx, claim.task_id, Note::Set(&note)).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use JobStatus as J;

    #[test]
    fn a_non_zero_exit_or_a_timeout_is_a_failed_job() {
        let ran = |code: i64| json!({"status": "completed", "exit_code": code});
        assert_eq!(judge(RunStatus::Completed, &ran(0)), (J::Completed, None));
        assert_eq!(
            judge(RunStatus::Completed, &ran(127)),
            (J::Failed, Some("job failed with exit code 127".into()))
        );
        assert_eq!(judge(RunStatus::Failed, &ran(0)).0, J::Failed);
        assert_eq!(
            judge(RunStatus::Timeout, &ran(-1)),
            (J::Failed, Some("job timed out in the sandbox".into()))
        );
    }

    #[test]
    fn a_run_stopped_on_its_node_is_a_canceled_job() {
        let stopped = json!({"status": "canceled", "exit_code": -1});
        assert_eq!(judge(RunStatus::Canceled, &stopped).0, J::Canceled);
    }
}
