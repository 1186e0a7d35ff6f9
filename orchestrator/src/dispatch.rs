//! The dispatcher: hands queued jobs to dispatchable nodes' worker APIs.
//!
//! A job is claimed in one transaction (`FOR UPDATE SKIP LOCKED`, so any number of orchestrator
//! processes can run this loop) and leaves it `running` with a lease: a fresh `lease_id` and an
//! expiry a little beyond the HTTP timeout. Only the holder of the current lease may record the
//! outcome, so a dispatcher that lost its lease (cancel, or a reaper after a crash) cannot
//! overwrite anything. Leases that expire (the process died mid-dispatch) are put back in the
//! queue exactly once by whichever process sees them first. A refused, failing or silent worker
//! puts the job back with a backoff until the attempts run out.
//!
//! The loop sleeps until something can be done: a new job (in-process signal, or PostgreSQL
//! `NOTIFY` from a gateway in another process), a node becoming dispatchable, a retry or a lease
//! coming due. A slow fallback tick covers a lost notification.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::worker::{RunJobRequest, RunJobResponse, RunStatus, SandboxSpec};
use cynode_service_kit::secrets::Secret;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::AppState;
use crate::error::{Error, Result};
use crate::nodes;
use crate::tasks::JOBS_CHANNEL;

/// Upper bound on sleeping when nothing is due, in case a notification was lost.
const FALLBACK_TICK: Duration = Duration::from_secs(10);
/// How long past the HTTP timeout a lease lasts, so a slow answer still lands inside it.
const LEASE_MARGIN: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long shutdown waits for dispatches in flight before leaving them to lease expiry.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A job this process holds the lease of.
#[derive(Debug)]
struct Claim {
    job_id: Uuid,
    task_id: Uuid,
    lease_id: Uuid,
    attempts: i32,
    payload: Value,
    node_id: Uuid,
    node_slug: String,
    url: String,
    token: Secret,
}

/// Runs until `shutdown` resolves, then waits briefly for dispatches in flight.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    let listener = tokio::spawn(listen(state.db.clone(), state.wake.clone()));
    let permits = Arc::new(Semaphore::new(state.config.dispatch_concurrency));
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = reap_expired(&state).await {
            tracing::warn!(error = %e, "requeueing expired leases failed");
        }
        // Claim while there is capacity and work.
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
                () = &mut shutdown => return drain(listener, permits, &state).await,
            };
            match claim(&state).await {
                Ok(Some(claim)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        deliver(&state, claim).await;
                        drop(permit);
                        // A free slot may let the next job go.
                        state.wake.notify_one();
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed");
                    break;
                }
            }
        }
        let sleep = match next_due(&state.db).await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(FALLBACK_TICK),
            Ok(None) => FALLBACK_TICK,
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher cannot read the queue");
                Duration::from_secs(1)
            }
        }
        .max(Duration::from_millis(10));
        tokio::select! {
            () = state.wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            () = &mut shutdown => return drain(listener, permits, &state).await,
        }
    }
}

async fn drain(listener: tokio::task::JoinHandle<()>, permits: Arc<Semaphore>, state: &AppState) {
    listener.abort();
    let all = state.config.dispatch_concurrency as u32;
    if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "dispatches still in flight at shutdown; their leases will expire and requeue them"
        );
    }
}

/// Forwards `NOTIFY cynode_jobs` to the in-process wake signal, reconnecting on error.
async fn listen(db: PgPool, wake: Arc<Notify>) {
    loop {
        let result: Result<(), sqlx::Error> = async {
            let mut listener = PgListener::connect_with(&db).await?;
            listener.listen(JOBS_CHANNEL).await?;
            // Anything queued while we were not listening must not wait for the fallback tick.
            wake.notify_one();
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "job notification listener failed; reconnecting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Takes the oldest due job and the least busy dispatchable node, in one transaction. A job
/// coming back from a failed delivery prefers any other node to the one that failed it.
async fn claim(state: &AppState) -> Result<Option<Claim>> {
    let mut tx = state.db.begin().await?;
    let job: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, node_id FROM jobs WHERE status = 'queued' AND next_attempt_at <= now()
         ORDER BY next_attempt_at, created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some((job_id, last_node)) = job else {
        return Ok(None);
    };
    let node: Option<(Uuid, String, String, String)> = sqlx::query_as(&format!(
        "SELECT n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token
         FROM nodes n WHERE {}
         ORDER BY n.id IS NOT DISTINCT FROM $1,
                  (SELECT count(*) FROM jobs r WHERE r.node_id = n.id AND r.status = 'running'),
                  n.node_slug
         LIMIT 1",
        nodes::dispatchable(state.config.node_stale_after)
    ))
    .bind(last_node)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((node_id, node_slug, url, token)) = node else {
        return Ok(None);
    };
    let lease_id = Uuid::new_v4();
    let lease = state.config.dispatch_http_timeout + LEASE_MARGIN;
    let (task_id, attempts, payload): (Uuid, i32, Value) = sqlx::query_as(
        "UPDATE jobs SET status = 'running', node_id = $2, lease_id = $3,
            lease_expires_at = now() + make_interval(secs => $4),
            attempts = attempts + 1, started_at = coalesce(started_at, now())
         WHERE id = $1
         RETURNING task_id, attempts, payload",
    )
    .bind(job_id)
    .bind(node_id)
    .bind(lease_id)
    .bind(lease.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    // A retry note from an earlier attempt is no longer true.
    sqlx::query(
        "UPDATE tasks SET status = 'running', summary = NULL WHERE id = $1 AND status = 'queued'",
    )
    .bind(task_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(%job_id, %task_id, node_slug = %node_slug, attempts, "job dispatched");
    Ok(Some(Claim {
        job_id,
        task_id,
        lease_id,
        attempts,
        payload,
        node_id,
        node_slug,
        url,
        token: Secret::new(token),
    }))
}

/// What became of one delivery.
enum Outcome {
    /// The worker ran the job; its full response is kept.
    Ran(RunStatus, Value),
    /// Worker down, overloaded, misconfigured or silent: try again later.
    Retry(String),
    /// The worker refused the job itself (a 4xx about the request): retrying cannot help.
    Refused(String),
}

async fn deliver(state: &AppState, claim: Claim) {
    let outcome = call_worker(state, &claim).await;
    let node_health = match &outcome {
        Outcome::Retry(_) => {
            nodes::pause_dispatch(
                &state.db,
                claim.node_id,
                state.config.dispatch_retry_base,
                MAX_BACKOFF,
            )
            .await
        }
        Outcome::Ran(..) | Outcome::Refused(_) => {
            nodes::dispatch_succeeded(&state.db, claim.node_id).await
        }
    };
    if let Err(e) = node_health {
        tracing::warn!(node_slug = %claim.node_slug, error = %e, "recording the node's dispatch health failed");
    }
    let recorded = match outcome {
        Outcome::Ran(status, response) => finish(state, &claim, status, response).await,
        Outcome::Retry(reason) => {
            tracing::warn!(job_id = %claim.job_id, node_slug = %claim.node_slug, attempts = claim.attempts, %reason, "dispatch failed; node paused, job will retry");
            retry(state, &claim, &reason).await
        }
        Outcome::Refused(reason) => {
            tracing::warn!(job_id = %claim.job_id, node_slug = %claim.node_slug, %reason, "worker refused the job");
            let result = json!({"version": PAYLOAD_VERSION, "status": "failed", "error": reason});
            finish(state, &claim, RunStatus::Failed, result).await
        }
    };
    if let Err(e) = recorded {
        // The lease will expire and the job will be requeued; nothing is lost.
        tracing::error!(job_id = %claim.job_id, error = %e, "recording the dispatch outcome failed");
    }
}

async fn call_worker(state: &AppState, claim: &Claim) -> Outcome {
    let mut sandbox: SandboxSpec = match serde_json::from_value(claim.payload.clone()) {
        Ok(s) => s,
        Err(e) => return Outcome::Refused(format!("job payload is not a sandbox spec: {e}")),
    };
    // The run must end before we stop waiting for it, or the job is delivered again while it
    // still runs (and may run twice).
    let cap = i64::try_from(state.config.max_job_timeout_seconds()).unwrap_or(i64::MAX);
    sandbox.timeout_seconds = Some(match sandbox.timeout_seconds {
        Some(t) if t > 0 => t.min(cap),
        _ => cap,
    });
    let request = RunJobRequest {
        version: PAYLOAD_VERSION,
        task_id: claim.task_id,
        job_id: claim.job_id,
        sandbox,
    };
    let url = format!("{}/v1/worker/jobs:run", claim.url.trim_end_matches('/'));
    let sent = state
        .http
        .post(&url)
        .bearer_auth(claim.token.expose())
        .timeout(state.config.dispatch_http_timeout)
        .json(&request)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome::Retry(format!(
                "worker of node {} did not answer within {:?}",
                claim.node_slug, state.config.dispatch_http_timeout
            ));
        }
        Err(e) => {
            return Outcome::Retry(format!(
                "worker of node {} is unreachable: {}",
                claim.node_slug,
                error_chain(&e)
            ));
        }
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Retry(format!(
                "reading the answer of node {} failed: {}",
                claim.node_slug,
                error_chain(&e)
            ));
        }
    };
    if status.is_success() {
        let parsed = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| {
                let typed: RunJobResponse = serde_json::from_value(value.clone()).ok()?;
                (typed.job_id == claim.job_id && typed.task_id == claim.task_id)
                    .then_some((typed.status, value))
            });
        return match parsed {
            Some((run_status, value)) => Outcome::Ran(run_status, value),
            None => Outcome::Retry(format!(
                "node {} answered {status} without a RunJobResponse for this job",
                claim.node_slug
            )),
        };
    }
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let reason = format!("node {} answered {status}: {detail}", claim.node_slug);
    // Auth and capacity problems are the node's, not the job's.
    if status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 404 | 408 | 429) {
        Outcome::Retry(reason)
    } else {
        Outcome::Refused(reason)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Records a finished run, if we still hold the lease.
async fn finish(state: &AppState, claim: &Claim, status: RunStatus, result: Value) -> Result<()> {
    let (job_status, summary) = match status {
        RunStatus::Completed => ("completed", None),
        RunStatus::Failed => (
            "failed",
            Some(match result.get("exit_code").and_then(Value::as_i64) {
                Some(code) => format!("job failed with exit code {code}"),
                None => result
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("job failed")
                    .to_owned(),
            }),
        ),
        RunStatus::Timeout => ("failed", Some("job timed out in the sandbox".to_owned())),
    };
    let mut tx = state.db.begin().await?;
    let done = sqlx::query(
        "UPDATE jobs SET status = $3, result = $4, ended_at = now(), lease_id = NULL,
            lease_expires_at = NULL, last_error = NULL
         WHERE id = $1 AND lease_id = $2 AND status = 'running'",
    )
    .bind(claim.job_id)
    .bind(claim.lease_id)
    .bind(job_status)
    .bind(&result)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        tracing::warn!(job_id = %claim.job_id, "lease lost before the result arrived (canceled or requeued); result dropped");
        return Ok(());
    }
    sqlx::query(
        "UPDATE tasks SET status = $2, closed = true, summary = $3
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(claim.task_id)
    .bind(job_status)
    .bind(summary)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(job_id = %claim.job_id, task_id = %claim.task_id, status = job_status, "job finished");
    Ok(())
}

fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 16) as u32;
    base.saturating_mul(2u32.saturating_pow(exp))
        .min(MAX_BACKOFF)
}

/// Puts the job back in the queue (or fails it when attempts are used up), if we hold the lease.
/// `reason` (worker URLs, error chains) goes to `jobs.last_error` and the log only; the task's
/// owner sees a generic account.
async fn retry(state: &AppState, claim: &Claim, reason: &str) -> Result<()> {
    let delay = backoff(state.config.dispatch_retry_base, claim.attempts);
    let gave_up = format!(
        "dispatch gave up after {} attempts: the worker node did not take the job",
        claim.attempts
    );
    let mut tx = state.db.begin().await?;
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE jobs SET
            status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'queued' END,
            lease_id = NULL, lease_expires_at = NULL, last_error = $4,
            next_attempt_at = now() + make_interval(secs => $5),
            result = CASE WHEN attempts >= $3
                THEN jsonb_build_object('version', 1, 'status', 'failed', 'error', $6::text) END,
            ended_at = CASE WHEN attempts >= $3 THEN now() END
         WHERE id = $1 AND lease_id = $2 AND status = 'running'
         RETURNING status",
    )
    .bind(claim.job_id)
    .bind(claim.lease_id)
    .bind(state.config.dispatch_max_attempts)
    .bind(reason)
    .bind(delay.as_secs_f64())
    .bind(&gave_up)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((status,)) = row {
        let summary = if status == "failed" {
            gave_up
        } else {
            format!("node {} did not take the job; will retry", claim.node_slug)
        };
        settle_task(&mut tx, claim.task_id, &status, &summary).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Moves the task along with a job that went back to the queue or failed for good; `summary`
/// is what its owner reads.
async fn settle_task(
    tx: &mut sqlx::PgConnection,
    task_id: Uuid,
    job_status: &str,
    summary: &str,
) -> Result<()> {
    if job_status == "failed" {
        sqlx::query(
            "UPDATE tasks SET status = 'failed', closed = true, summary = $2
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(task_id)
        .bind(summary)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE tasks SET status = 'queued', summary = $2 WHERE id = $1 AND status = 'running'",
        )
        .bind(task_id)
        .bind(summary)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Requeues jobs whose lease ran out (their dispatcher died). `SKIP LOCKED` plus the status
/// condition make each expired lease requeued by exactly one process, once.
pub async fn reap_expired(state: &AppState) -> Result<u64> {
    let mut tx = state.db.begin().await?;
    let reason = "lease expired: the orchestrator holding it stopped before the worker answered";
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "UPDATE jobs j SET
            status = CASE WHEN j.attempts >= $1 THEN 'failed' ELSE 'queued' END,
            lease_id = NULL, lease_expires_at = NULL, last_error = $2, next_attempt_at = now(),
            result = CASE WHEN j.attempts >= $1
                THEN jsonb_build_object('version', 1, 'status', 'failed', 'error', $2::text) END,
            ended_at = CASE WHEN j.attempts >= $1 THEN now() END
         WHERE j.id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < now()
                        FOR UPDATE SKIP LOCKED)
         RETURNING j.id, j.task_id, j.status",
    )
    .bind(state.config.dispatch_max_attempts)
    .bind(reason)
    .fetch_all(&mut *tx)
    .await?;
    for (job_id, task_id, status) in &rows {
        tracing::warn!(%job_id, %task_id, status, "expired lease reclaimed");
        let summary = if status == "failed" {
            format!("dispatch gave up: {reason}")
        } else {
            format!("{reason}; will retry")
        };
        settle_task(&mut tx, *task_id, status, &summary).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// The next moment something becomes due: a retry's backoff ends, a lease expires or a paused
/// node may take jobs again.
async fn next_due(db: &PgPool) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT least(
            (SELECT min(next_attempt_at) FROM jobs WHERE status = 'queued' AND next_attempt_at > now()),
            (SELECT min(lease_expires_at) FROM jobs WHERE status = 'running'),
            (SELECT min(dispatch_paused_until) FROM nodes WHERE dispatch_paused_until > now()))",
    )
    .fetch_one(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1), Duration::from_secs(1));
        assert_eq!(backoff(base, 3), Duration::from_secs(4));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }
}
