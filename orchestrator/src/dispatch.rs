//! The dispatcher: hands queued jobs to dispatchable nodes' worker APIs.
//!
//! The job queue ([`crate::jobs`]) does every write: a job is claimed in one transaction
//! (`FOR UPDATE SKIP LOCKED`, so any number of orchestrator processes can run this loop) and
//! leaves it `running` with a lease: a fresh `lease_id` and an expiry a little beyond the HTTP
//! timeout. Only the holder of the current lease may record the outcome, so a dispatcher that
//! lost its lease (cancel, or a reaper after a crash) cannot overwrite anything. Leases that
//! expire (the process died mid-dispatch) are put back in the queue exactly once by whichever
//! process sees them first. A refused, failing or silent worker puts the job back with a backoff
//! until the attempts run out; a worker that shut down mid-run (its typed "job interrupted"
//! answer) puts it back at once without using up an attempt. When a task is canceled, the nodes
//! running its jobs are told to stop their sandboxes ([`crate::sandbox_stop`]). This module only
//! talks HTTP to workers and decides what their answer means.
//!
//! The loop sleeps until something can be done: a new job (in-process signal, or PostgreSQL
//! `NOTIFY` from a gateway in another process), a node becoming dispatchable, a retry or a lease
//! coming due. A slow fallback tick covers a lost notification.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::problem::types::JOB_INTERRUPTED;
use cynode_contracts::routes;
use cynode_contracts::worker::{McpGrant, RunJobRequest, RunJobResponse, RunStatus, SandboxSpec};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use crate::jobs::{self, Claim, JOBS_CHANNEL, MAX_BACKOFF, Planner};
use crate::mcp::agent::{Agent, AgentKeys, MAX_TTL};
use crate::metrics::Metrics;
use crate::worker_tokens::TokenKeys;
use crate::{nodes, sandbox_stop};

/// What the dispatcher needs: the pool and settings, the client and token keys that reach the
/// nodes' worker APIs, the metrics, its wake-up, what a `use_mcp` job's grant is made of (the
/// MCP endpoint and the agent token keys) and the planner told about finished steps.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub worker_tokens: Arc<TokenKeys>,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub mcp_keys: Arc<AgentKeys>,
    pub mcp_url: Option<String>,
    pub planner: Arc<dyn Planner>,
}

/// Upper bound on sleeping when nothing is due, in case a notification was lost.
const FALLBACK_TICK: Duration = Duration::from_secs(10);
/// How long shutdown waits for dispatches in flight before leaving them to lease expiry.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs until `stop` is cancelled, then waits briefly for dispatches in flight.
pub async fn run(state: Dispatcher, stop: CancellationToken) {
    let listener = tokio::spawn(listen(state.db.clone(), state.wake.clone()));
    let permits = Arc::new(Semaphore::new(state.config.dispatch_concurrency));
    loop {
        if let Err(e) = jobs::reap_expired(&state.db, &state.config).await {
            tracing::warn!(error = %e, "requeueing expired leases failed");
        }
        match jobs::requeue_drained(&state.db, &state.worker_tokens).await {
            Ok(stopped) if !stopped.is_empty() => {
                let http = state.http.clone();
                tokio::spawn(async move {
                    sandbox_stop::stop_sandboxes(&http, &stopped, sandbox_stop::Stop::Requeue).await
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "requeueing jobs of drained nodes failed"),
        }
        // Claim while there is capacity and work: as many jobs per claim as there are free
        // slots (up to `dispatch_claim_batch`), since the claim's commit is what a claim costs.
        loop {
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
                () = stop.cancelled() => return drain(listener, permits, &state).await,
            };
            let mut slots = vec![first];
            while slots.len() < state.config.dispatch_claim_batch {
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => slots.push(permit),
                    Err(_) => break,
                }
            }
            let wanted = slots.len();
            match jobs::claim(&state.db, &state.config, &state.worker_tokens, wanted).await {
                Ok(claims) => {
                    let got = claims.len();
                    for (claim, permit) in claims.into_iter().zip(slots) {
                        state.metrics.claimed(claim.waited);
                        let state = state.clone();
                        tokio::spawn(async move {
                            deliver(&state, claim).await;
                            drop(permit);
                            // A free slot may let the next job go.
                            state.wake.notify_one();
                        });
                    }
                    if got < wanted {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    break;
                }
            }
        }
        let sleep = match jobs::next_due(&state.db).await {
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
            () = stop.cancelled() => return drain(listener, permits, &state).await,
        }
    }
}

async fn drain(listener: tokio::task::JoinHandle<()>, permits: Arc<Semaphore>, state: &Dispatcher) {
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

/// What became of one delivery.
enum Outcome {
    /// The worker ran the job; its full response is kept.
    Ran(RunStatus, Value),
    /// Worker down, overloaded, misconfigured or silent: try again later.
    Retry(String),
    /// The worker shut down while the job ran and stopped it: not the job's failure, it runs
    /// again without using up an attempt.
    Interrupted(String),
    /// The worker refused the job itself (a 4xx about the request): retrying cannot help.
    Refused(String),
}

impl Outcome {
    /// The metrics label.
    fn name(&self) -> &'static str {
        match self {
            Self::Ran(..) => "ran",
            Self::Retry(_) => "retry",
            Self::Interrupted(_) => "interrupted",
            Self::Refused(_) => "refused",
        }
    }
}

async fn deliver(state: &Dispatcher, claim: Claim) {
    let started = std::time::Instant::now();
    let outcome = {
        let heartbeat = keep_leased(state, &claim);
        tokio::pin!(heartbeat);
        tokio::select! {
            outcome = call_worker(state, &claim) => outcome,
            never = &mut heartbeat => match never {},
        }
    };
    state.metrics.dispatched(outcome.name(), started.elapsed());
    let node_health = match &outcome {
        Outcome::Retry(_) | Outcome::Interrupted(_) => {
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
        Outcome::Ran(status, response) => {
            jobs::complete(&state.db, &claim, Ok((status, response))).await
        }
        Outcome::Retry(reason) => {
            tracing::warn!(job_id = %claim.job_id, node_slug = %claim.node_slug, attempts = claim.attempts, %reason, "dispatch failed; node paused, job will retry");
            jobs::retry(&state.db, &state.config, &claim, &reason).await
        }
        Outcome::Interrupted(reason) => {
            tracing::warn!(job_id = %claim.job_id, node_slug = %claim.node_slug, %reason, "the node stopped mid-run; node paused, job requeued");
            jobs::interrupted(&state.db, &claim, &reason)
                .await
                .map(|()| None)
        }
        Outcome::Refused(reason) => {
            tracing::warn!(job_id = %claim.job_id, node_slug = %claim.node_slug, %reason, "worker refused the job");
            jobs::complete(&state.db, &claim, Err(reason)).await
        }
    };
    match recorded {
        Ok(Some(recorded)) if recorded.plan_open => {
            state
                .planner
                .step_finished(claim.task_id, claim.job_id, recorded.task_status);
        }
        Ok(_) => {}
        // The lease will expire and the job will be requeued; nothing is lost.
        Err(e) => {
            tracing::error!(job_id = %claim.job_id, error = %e, "recording the dispatch outcome failed")
        }
    }
}

/// Renews the claim's lease every third of its length while the worker runs the job, so that a
/// long job stays ours and the jobs of a crashed orchestrator are free again within one lease.
/// Runs until dropped. A failed renewal (database away) is retried at the next beat; should the
/// lease run out meanwhile, another orchestrator may deliver the job again, and the worker's
/// ledger answers that delivery with the one run's result.
async fn keep_leased(state: &Dispatcher, claim: &Claim) -> std::convert::Infallible {
    let lease = state.config.dispatch_lease;
    let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + lease / 3, lease / 3);
    loop {
        beats.tick().await;
        match jobs::renew_lease(&state.db, claim, lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(job_id = %claim.job_id, "lease gone (canceled or requeued); its outcome will not be recorded");
                return std::future::pending().await;
            }
            Err(e) => {
                tracing::warn!(job_id = %claim.job_id, error = %e, "renewing the job's lease failed; retrying at the next beat")
            }
        }
    }
}

/// The MCP access of a `use_mcp` job: this orchestrator's MCP endpoint and a token for the
/// job's sandbox agent (its task's owner, the task, the job), minted now and never stored. It
/// lives as long as the job may run (plus a minute), at most [`MAX_TTL`].
async fn mcp_grant(
    state: &Dispatcher,
    claim: &Claim,
    sandbox: &SandboxSpec,
) -> Result<McpGrant, String> {
    let url = state
        .mcp_url
        .clone()
        .ok_or("this orchestrator serves no MCP gateway")?;
    let (owner, project): (Uuid, Option<Uuid>) =
        sqlx::query_as("SELECT created_by, project_id FROM tasks WHERE id = $1")
            .bind(claim.task_id)
            .fetch_one(&state.db)
            .await
            .map_err(|e| format!("reading the job's task failed: {e}"))?;
    let agent = Agent::sandbox(owner, claim.task_id, claim.job_id, project);
    let runs_for = Duration::from_secs(sandbox.timeout_seconds.unwrap_or(0).max(0) as u64);
    let ttl = (runs_for + Duration::from_secs(60)).min(MAX_TTL);
    Ok(McpGrant {
        url,
        token: state.mcp_keys.issue(&agent, ttl),
    })
}

async fn call_worker(state: &Dispatcher, claim: &Claim) -> Outcome {
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
    let mcp = match sandbox.use_mcp {
        true => match mcp_grant(state, claim, &sandbox).await {
            Ok(grant) => Some(grant),
            Err(e) => return Outcome::Refused(e),
        },
        false => None,
    };
    let request = RunJobRequest {
        version: PAYLOAD_VERSION,
        task_id: claim.task_id,
        job_id: claim.job_id,
        sandbox,
        mcp,
    };
    let url = format!(
        "{}{}",
        claim.url.trim_end_matches('/'),
        routes::worker::JOBS_RUN
    );
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
                crate::web::error_chain(&e)
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
                crate::web::error_chain(&e)
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
    let problem = serde_json::from_slice::<Value>(&body).ok();
    let field = |name: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let reason = format!(
        "node {} answered {status}: {}",
        claim.node_slug,
        field("detail")
    );
    if status.as_u16() == 503 && field("type") == JOB_INTERRUPTED {
        return Outcome::Interrupted(reason);
    }
    // Auth and capacity problems are the node's, not the job's.
    if status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 404 | 408 | 429) {
        Outcome::Retry(reason)
    } else {
        Outcome::Refused(reason)
    }
}
