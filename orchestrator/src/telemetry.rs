//! Pulling each node's Worker Telemetry API (`node:info`, `node:stats`) on a schedule, for
//! operators (`GET /v1/nodes/{slug}` shows the last snapshot and when it was taken).
//!
//! Telemetry is informational: a node that does not answer, answers late or answers nonsense is
//! logged and keeps its previous snapshot, and nothing else changes (dispatch and placement
//! never read it). Every request has its own timeout, and all nodes are asked at once, so one
//! silent node delays nobody.

use std::sync::Arc;
use std::time::Duration;

use cynode_contracts::routes::worker::{TELEMETRY_NODE_INFO, TELEMETRY_NODE_STATS};
use cynode_contracts::telemetry::{NodeInfo, NodeStats};
use cynode_contracts::user::NodeTelemetry;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::nodes::{self, TelemetryTarget};
use crate::worker_tokens::TokenKeys;

/// What the puller needs: the pool and settings, and the client and token keys that reach the
/// nodes' worker APIs.
#[derive(Debug, Clone)]
pub struct Puller {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub worker_tokens: Arc<TokenKeys>,
}

/// Upper bound of each telemetry request.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs until `stop` is cancelled, pulling every `telemetry_pull_interval` (never when it is 0).
pub async fn run(state: Puller, stop: CancellationToken) {
    let every = state.config.telemetry_pull_interval;
    if every.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => pull_all(&state).await,
            () = stop.cancelled() => return,
        }
    }
}

async fn pull_all(state: &Puller) {
    let targets = match nodes::telemetry_targets(
        &state.db,
        state.config.node_stale_after,
        &state.worker_tokens,
    )
    .await
    {
        Ok(targets) => targets,
        Err(e) => {
            tracing::warn!(error = %e, "telemetry: cannot list nodes");
            return;
        }
    };
    futures::future::join_all(targets.iter().map(|target| pull(state, target))).await;
}

async fn pull(state: &Puller, target: &TelemetryTarget) {
    let (info, stats) = tokio::join!(
        get::<NodeInfo>(state, target, TELEMETRY_NODE_INFO),
        get::<NodeStats>(state, target, TELEMETRY_NODE_STATS),
    );
    let snapshot = match (info, stats) {
        (Ok(info), Ok(stats)) => NodeTelemetry {
            pulled_at: chrono::Utc::now(),
            info,
            stats,
        },
        (Err(e), _) | (_, Err(e)) => {
            tracing::info!(node_slug = %target.node_slug, reason = %e, "telemetry: node did not answer; keeping its last snapshot");
            return;
        }
    };
    if let Err(e) = nodes::record_telemetry(&state.db, target.node_id, &snapshot).await {
        tracing::warn!(node_slug = %target.node_slug, error = %e, "telemetry: cannot store the snapshot");
    }
}

async fn get<T: DeserializeOwned>(
    state: &Puller,
    target: &TelemetryTarget,
    path: &str,
) -> Result<T, String> {
    let url = format!("{}{path}", target.url.trim_end_matches('/'));
    let resp = state
        .http
        .get(&url)
        .bearer_auth(target.token.expose())
        .timeout(PULL_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{path}: {}", resp.status()));
    }
    resp.json::<T>().await.map_err(|e| format!("{path}: {e}"))
}
