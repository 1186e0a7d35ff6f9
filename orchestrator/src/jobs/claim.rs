//! Claiming due jobs: placement, leases, and a lease kept alive while the worker runs the job.

use std::time::Duration;

use cynode_contracts::user::{JobRequirements, JobStatus};
use cynode_service_kit::secrets::Secret;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::notify;
use super::status::{Note, settle};
use crate::config::Config;
use crate::error::Result;
use crate::scheduler::{self, Demand};
use crate::worker_tokens::TokenKeys;

/// A job this process holds the lease of, and the node it goes to.
#[derive(Debug)]
pub struct Claim {
    pub job_id: Uuid,
    pub task_id: Uuid,
    pub lease_id: Uuid,
    pub attempts: i32,
    pub payload: Value,
    pub node_id: Uuid,
    pub node_slug: String,
    pub url: String,
    pub token: Secret,
    /// How long it waited since it became due.
    pub waited: Duration,
}

/// How many of the oldest due jobs one claim looks at for ones that some node can take now,
/// so that jobs waiting for a busy or missing node do not hold up those behind them.
const CLAIM_WINDOW: i64 = 64;
/// How long a job that no node fits steps aside before it is looked at again, unless a node
/// changes first ([`recheck_waiting`]).
const PLACEMENT_RECHECK: Duration = Duration::from_secs(5);

/// A queued job as placement sees it.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    /// The node that last failed to take it.
    node_id: Option<Uuid>,
    requirements: Option<sqlx::types::Json<JobRequirements>>,
    use_inference: bool,
    memory_mib: Option<i64>,
    wait_reason: Option<String>,
}

/// Takes up to `max` of the oldest due jobs that some node can run now, each with the node
/// [`scheduler::place`] chooses for it (counting the jobs placed before it in the same claim),
/// in one transaction, and leases each for `dispatch_lease` (the dispatcher renews it while the
/// worker runs the job, see [`renew_lease`]). Jobs looked at on the way that cannot be placed
/// keep the reason for their owner; those no node fits step aside for [`PLACEMENT_RECHECK`].
/// One transaction for several jobs: its commit is what a claim costs.
pub async fn claim(
    db: &PgPool,
    config: &Config,
    keys: &TokenKeys,
    max: usize,
) -> Result<Vec<Claim>> {
    let mut tx = db.begin().await?;
    // Locking the nodes serialises claims, so that two cannot fill a node's last slot.
    let mut nodes = scheduler::nodes(&mut tx, config.node_stale_after, true).await?;
    // The status as a literal, so the planner can use the partial index of queued jobs.
    let due: Vec<Due> = sqlx::query_as(&format!(
        "SELECT j.id, j.node_id, j.requirements, j.wait_reason,
                coalesce((j.payload->>'use_inference')::boolean, false) AS use_inference,
                (j.payload->'resources'->>'memory_mib')::bigint AS memory_mib
         FROM jobs j WHERE j.status = '{}' AND j.next_attempt_at <= now()
         ORDER BY j.next_attempt_at, j.created_at LIMIT $1",
        JobStatus::Queued.as_str()
    ))
    .bind(CLAIM_WINDOW)
    .fetch_all(&mut *tx)
    .await?;
    let none = JobRequirements::default();
    let mut placed = Vec::new();
    for job in &due {
        if placed.len() == max {
            break;
        }
        let demand = Demand {
            requirements: job.requirements.as_deref().unwrap_or(&none),
            use_inference: job.use_inference,
            avoid: job.node_id,
        };
        match scheduler::place(demand, &nodes) {
            Ok(node) => {
                // Another dispatcher may be cancelling or holding it: then look further.
                let locked: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE id = $1 AND status = $2 FOR UPDATE SKIP LOCKED",
                )
                .bind(job.id)
                .bind(JobStatus::Queued.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if locked.is_some() {
                    nodes[node].took(job.memory_mib.unwrap_or(0));
                    placed.push((job.id, node));
                }
            }
            Err(wait) => {
                let reason = wait.to_string();
                if !wait.ends_when_a_job_ends() || job.wait_reason.as_deref() != Some(&reason) {
                    set_aside(&mut tx, job.id, &reason, !wait.ends_when_a_job_ends()).await?;
                }
            }
        }
    }
    let mut claims = Vec::with_capacity(placed.len());
    for (job_id, node) in placed {
        let node = &nodes[node];
        claims.push(lease(&mut tx, config, keys, job_id, node).await?);
    }
    tx.commit().await?;
    for claim in &claims {
        tracing::info!(job_id = %claim.job_id, task_id = %claim.task_id, node_slug = %claim.node_slug, attempts = claim.attempts, "job dispatched");
    }
    Ok(claims)
}

/// Leases `job_id` (locked by the caller) to `node`, inside the claim's transaction.
async fn lease(
    tx: &mut PgConnection,
    config: &Config,
    keys: &TokenKeys,
    job_id: Uuid,
    node: &scheduler::NodeFacts,
) -> Result<Claim> {
    // The statement's clock: the next claim's tie-break sees the order jobs were given out.
    let (url, token): (String, String) = sqlx::query_as(
        "UPDATE nodes SET last_claimed_at = clock_timestamp() WHERE id = $1
         RETURNING worker_api_target_url, worker_api_bearer_token",
    )
    .bind(node.id)
    .fetch_one(&mut *tx)
    .await?;
    let token = keys.open(node.id, &token)?;
    let lease_id = Uuid::new_v4();
    let (task_id, attempts, payload, waited): (Uuid, i32, Value, f64) = sqlx::query_as(
        "UPDATE jobs SET status = $5, node_id = $2, lease_id = $3, wait_reason = NULL,
            lease_expires_at = now() + make_interval(secs => $4),
            attempts = attempts + 1, started_at = coalesce(started_at, now())
         WHERE id = $1
         RETURNING task_id, attempts, payload,
            greatest(extract(epoch FROM now() - next_attempt_at), 0)::float8",
    )
    .bind(job_id)
    .bind(node.id)
    .bind(lease_id)
    .bind(config.dispatch_lease.as_secs_f64())
    .bind(JobStatus::Running.as_str())
    .fetch_one(&mut *tx)
    .await?;
    // A retry note from an earlier attempt is no longer true.
    settle(tx, task_id, Note::Clear).await?;
    Ok(Claim {
        job_id,
        task_id,
        lease_id,
        attempts,
        payload,
        node_id: node.id,
        node_slug: node.node_slug.clone(),
        url,
        token,
        waited: Duration::from_secs_f64(waited),
    })
}

/// Records why a job could not be placed; one no node fits also steps aside for
/// [`PLACEMENT_RECHECK`]. Skips a job someone else holds (it is being canceled or claimed).
async fn set_aside(
    tx: &mut PgConnection,
    job_id: Uuid,
    reason: &str,
    step_aside: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET wait_reason = $2,
            next_attempt_at = CASE WHEN $3 THEN now() + make_interval(secs => $4)
                                   ELSE next_attempt_at END
         WHERE id = (SELECT id FROM jobs WHERE id = $1 AND status = $5 FOR UPDATE SKIP LOCKED)",
    )
    .bind(job_id)
    .bind(reason)
    .bind(step_aside)
    .bind(PLACEMENT_RECHECK.as_secs_f64())
    .bind(JobStatus::Queued.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A node changed (registered, reported, acked, undrained): jobs that stepped aside because no
/// node fitted are due again at once, and every dispatcher is woken to look.
pub async fn recheck_waiting(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET next_attempt_at = now()
         WHERE status = $1 AND next_attempt_at > now() AND wait_reason IS NOT NULL",
    )
    .bind(JobStatus::Queued.as_str())
    .execute(&mut *conn)
    .await?;
    notify(conn).await?;
    Ok(())
}

/// Extends the lease of a job still in flight by another `lease` from now. `false` when the
/// lease is no longer ours (canceled, or reaped while this process could not renew it): the
/// delivery goes on, but its outcome will not be recorded (see [`complete`](super::complete)).
pub async fn renew_lease(db: &PgPool, claim: &Claim, lease: Duration) -> Result<bool> {
    let renewed = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_id = $2 AND status = $4",
    )
    .bind(claim.job_id)
    .bind(claim.lease_id)
    .bind(lease.as_secs_f64())
    .bind(JobStatus::Running.as_str())
    .execute(db)
    .await?;
    Ok(renewed.rows_affected() == 1)
}
