//! The orchestrator's only way to a model (ARCHITECTURE.md §4 "Orchestrator inference"): the
//! worker API's OpenAI-compatible routes of a dispatchable node that serves the model, called
//! with that node's own bearer token. Which nodes serve what comes from their latest capability
//! report (`inference.available_models`, `loaded_models`); the orchestrator never talks to a
//! model server directly.

use std::time::Duration;

use cynode_contracts::routes::worker::{INFERENCE_CHAT_COMPLETIONS, INFERENCE_MODELS};
use cynode_service_kit::secrets::Secret;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;
use crate::scheduler;
use crate::worker_tokens::TokenKeys;

/// A node that serves a model, and how to reach its worker API.
#[derive(Debug, Clone)]
pub struct ModelRoute {
    pub node_id: Uuid,
    pub node_slug: String,
    pub worker_url: String,
    pub token: Secret,
    /// The model is in memory there now (its report lists it as loaded).
    pub loaded: bool,
    /// Sum of the node's reported GPU memory (MB); 0 without a GPU.
    pub vram_mb: i64,
    /// The node carries the `orchestrator_host` label.
    pub orchestrator_host: bool,
}

/// Why a call to a node's model did not give an answer; each says what happened without naming
/// the node's internal address or token.
#[derive(Debug, thiserror::Error)]
pub enum NodeInferenceError {
    #[error("the node's worker API could not be reached: {0}")]
    Unreachable(String),
    #[error("the model did not answer within {0}s")]
    Timeout(u64),
    #[error("the node refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the node's answer was unreadable: {0}")]
    Unreadable(String),
}

const ROUTE_COLUMNS: &str = "n.id, n.node_slug, n.worker_api_target_url, n.worker_api_bearer_token,
       coalesce(latest.snapshot->'inference'->'loaded_models' ? $1, false) AS loaded,
       coalesce((SELECT sum((d->>'vram_mb')::bigint) FROM jsonb_array_elements(
           CASE WHEN jsonb_typeof(latest.snapshot->'gpu'->'devices') = 'array'
                THEN latest.snapshot->'gpu'->'devices' ELSE '[]'::jsonb END) d), 0)::bigint AS vram_mb,
       coalesce(latest.snapshot->'node'->'labels' ? 'orchestrator_host', false) AS orchestrator_host";

const LATEST_REPORT: &str = "CROSS JOIN LATERAL (
           SELECT c.capability_snapshot AS snapshot FROM node_capabilities c
           WHERE c.node_id = n.id ORDER BY c.created_at DESC LIMIT 1) latest";

type RouteRow = (Uuid, String, String, String, bool, i64, bool);

fn route(keys: &TokenKeys, row: RouteRow) -> Result<ModelRoute> {
    let (node_id, node_slug, worker_url, token, loaded, vram_mb, orchestrator_host) = row;
    Ok(ModelRoute {
        node_id,
        node_slug,
        worker_url,
        token: keys.open(node_id, &token)?,
        loaded,
        vram_mb,
        orchestrator_host,
    })
}

/// Dispatchable nodes whose latest report lists `model`: those with it loaded first, then by
/// slug, so that the choice is stable.
pub async fn nodes_serving(
    db: &PgPool,
    stale_after: Duration,
    model: &str,
    keys: &TokenKeys,
) -> Result<Vec<ModelRoute>> {
    let rows: Vec<RouteRow> = sqlx::query_as(&format!(
        "SELECT {ROUTE_COLUMNS} FROM nodes n {LATEST_REPORT}
         WHERE {dispatchable}
           AND jsonb_typeof(latest.snapshot->'inference'->'available_models') = 'array'
           AND latest.snapshot->'inference'->'available_models' ? $1
         ORDER BY loaded DESC, n.node_slug",
        dispatchable = scheduler::dispatchable(stale_after)
    ))
    .bind(model)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(|row| route(keys, row)).collect()
}

/// Every model some dispatchable node serves, sorted, without repeats.
pub async fn served_models(db: &PgPool, stale_after: Duration) -> Result<Vec<String>> {
    let models: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT m FROM nodes n {LATEST_REPORT},
             jsonb_array_elements_text(CASE
                 WHEN jsonb_typeof(latest.snapshot->'inference'->'available_models') = 'array'
                 THEN latest.snapshot->'inference'->'available_models' ELSE '[]'::jsonb END) m
         WHERE {dispatchable} ORDER BY m",
        dispatchable = scheduler::dispatchable(stale_after)
    ))
    .fetch_all(db)
    .await?;
    Ok(models)
}

/// `POST {worker}/v1/worker/inference/v1/chat/completions` with `body` as it is (streaming or
/// not: the caller reads the response). A non-2xx answer is returned as `Refused` with the
/// worker's OpenAI-shaped message.
pub async fn chat(
    http: &reqwest::Client,
    route: &ModelRoute,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<reqwest::Response, NodeInferenceError> {
    let url = format!(
        "{}{INFERENCE_CHAT_COMPLETIONS}",
        route.worker_url.trim_end_matches('/')
    );
    let answer = http
        .post(url)
        .bearer_auth(route.token.expose())
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport(&e, timeout))?;
    refused(answer).await
}

/// The model ids the node's model server lists now (`GET …/v1/models`).
pub async fn models(
    http: &reqwest::Client,
    route: &ModelRoute,
    timeout: Duration,
) -> Result<Vec<String>, NodeInferenceError> {
    let url = format!(
        "{}{INFERENCE_MODELS}",
        route.worker_url.trim_end_matches('/')
    );
    let answer = http
        .get(url)
        .bearer_auth(route.token.expose())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport(&e, timeout))?;
    let body: serde_json::Value = refused(answer)
        .await?
        .json()
        .await
        .map_err(|e| NodeInferenceError::Unreadable(e.to_string()))?;
    Ok(body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect())
}

fn transport(e: &reqwest::Error, timeout: Duration) -> NodeInferenceError {
    if e.is_timeout() {
        NodeInferenceError::Timeout(timeout.as_secs())
    } else {
        // reqwest's message names the URL; the node's address stays in our log only.
        tracing::warn!(error = %e, "node inference call failed");
        NodeInferenceError::Unreachable("connection failed".into())
    }
}

async fn refused(answer: reqwest::Response) -> Result<reqwest::Response, NodeInferenceError> {
    let status = answer.status();
    if status.is_success() {
        return Ok(answer);
    }
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("no reason given")
        .to_owned();
    Err(NodeInferenceError::Refused {
        status: status.as_u16(),
        message,
    })
}
