//! Jobs whose delivery ended without an answer: expired leases, and drained nodes past their
//! deadline.

use std::time::Duration;

use cynode_contracts::user::{JobStatus, NodeState};
use sqlx::PgPool;
use uuid::Uuid;

use super::setbacks::{Setback, push_setback, requeue_or_fail};
use super::status::{Note, lock_jobs, settle};
use super::{RunningJob, notify};
use crate::config::Config;
use crate::error::Result;
use crate::worker_tokens::TokenKeys;

/// Requeues jobs whose lease ran out (their dispatcher died), one task per transaction. The
/// lease condition is checked again under the locks, so each expired lease is requeued by
/// exactly one process, once.
pub async fn reap_expired(db: &PgPool, config: &Config) -> Result<u64> {
    let reason = "lease expired: the orchestrator holding it stopped before the worker answered";
    let expired: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, task_id FROM jobs WHERE status = $1 AND lease_expires_at < now()",
    )
    .bind(JobStatus::Running.as_str())
    .fetch_all(db)
    .await?;
    let mut reaped = 0;
    for (job_id, task_id) in expired {
        let mut tx = db.begin().await?;
        lock_jobs(&mut tx, task_id).await?;
        let attempts: Option<i32> = sqlx::query_scalar(
            "SELECT attempts FROM jobs WHERE id = $1 AND status = $2 AND lease_expires_at < now()",
        )
        .bind(job_id)
        .bind(JobStatus::Running.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(attempts) = attempts else {
            continue;
        };
        let (status, _) = requeue_or_fail(
            &mut tx,
            Setback {
                job_id,
                task_id,
                give_up: attempts >= config.dispatch_max_attempts,
                delay: Duration::ZERO,
                last_error: reason,
                queued_note: &format!("{reason}; will retry"),
                gave_up: &format!("dispatch gave up: {reason}"),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(%job_id, %task_id, status = %status, "expired lease reclaimed");
        reaped += 1;
    }
    Ok(reaped)
}

/// Jobs still running on a drained node whose drain deadline has passed go back to the queue at
/// once, their attempt given back (the job did not fail) and their lease ended, so the delivery
/// in flight records nothing. One task per transaction, checked again under its locks. Returns
/// them, so the dispatcher tells their nodes to stop the sandboxes.
pub async fn requeue_drained(db: &PgPool, keys: &TokenKeys) -> Result<Vec<RunningJob>> {
    let past_deadline = format!(
        "j.status = '{running}' AND n.status = '{drained}' AND n.drain_deadline <= now()",
        running = JobStatus::Running.as_str(),
        drained = NodeState::Drained.as_str()
    );
    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
        "SELECT j.id, j.task_id FROM jobs j JOIN nodes n ON n.id = j.node_id WHERE {past_deadline}"
    ))
    .fetch_all(db)
    .await?;
    let mut requeued = Vec::new();
    for (job_id, task_id) in due {
        let mut tx = db.begin().await?;
        lock_jobs(&mut tx, task_id).await?;
        let node: Option<(Uuid, String, String, String)> = sqlx::query_as(&format!(
            "SELECT n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token
             FROM jobs j JOIN nodes n ON n.id = j.node_id WHERE j.id = $1 AND {past_deadline}"
        ))
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((node_id, node_slug, url, token)) = node else {
            continue;
        };
        let note = format!(
            "node {node_slug} was drained and its deadline passed; the job will run on another node"
        );
        sqlx::query(&format!(
            "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL, last_error = $3,
                attempts = greatest(attempts - 1, 0), next_attempt_at = now(), {}
             WHERE id = $1",
            push_setback(3)
        ))
        .bind(job_id)
        .bind(JobStatus::Queued.as_str())
        .bind(&note)
        .execute(&mut *tx)
        .await?;
        settle(&mut tx, task_id, Note::Set(&note)).await?;
        notify(&mut tx).await?;
        tx.commit().await?;
        tracing::warn!(%job_id, %task_id, %node_slug, "drain deadline passed; job requeued");
        requeued.push(RunningJob {
            job_id,
            node_slug,
            url,
            token: keys.open(node_id, &token)?,
        });
    }
    Ok(requeued)
}
