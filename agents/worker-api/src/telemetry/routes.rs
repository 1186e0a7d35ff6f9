//! The Telemetry API (`GET /v1/worker/telemetry/…`, paths in
//! [`cynode_contracts::routes::worker`]), behind the same bearer check as `jobs:run` (applied by
//! [`crate::routes::router`]). Handlers only parse, ask the store and map errors: a client's
//! mistake is a `400` problem naming it, an unknown container `404`, a disabled telemetry `503`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::get;
use chrono::Utc;
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::problem::Problem;
use cynode_contracts::routes::worker;
use cynode_contracts::telemetry::{
    ContainerDetail, ContainerList, ContainerRuntime, ContainersQuery, LogPage, LogsQuery,
    NodeInfo, NodeStats,
};
use cynode_service_kit::http::{ApiError, ApiQuery};

use super::{QueryError, ReadError, Telemetry, host};
use crate::routes::AppState;

/// How long `node:stats` waits for Podman's version.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(5);

/// The telemetry routes; the caller adds the bearer check.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(worker::TELEMETRY_NODE_INFO, get(node_info))
        .route(worker::TELEMETRY_NODE_STATS, get(node_stats))
        .route(worker::TELEMETRY_CONTAINERS, get(containers))
        .route(worker::TELEMETRY_CONTAINER, get(container))
        .route(worker::TELEMETRY_LOGS, get(logs))
}

fn telemetry(state: &AppState) -> &Telemetry {
    state.jobs.sandboxes().telemetry()
}

async fn node_info(State(state): State<AppState>) -> Result<Json<NodeInfo>, ApiError> {
    telemetry(&state)
        .node_info()
        .cloned()
        .map(Json)
        .ok_or_else(|| read_error(ReadError::Disabled))
}

async fn node_stats(State(state): State<AppState>) -> Result<Json<NodeStats>, ApiError> {
    let state_dir = telemetry(&state)
        .state_dir()
        .ok_or_else(|| read_error(ReadError::Disabled))?
        .to_owned();
    let podman = state.jobs.sandboxes().podman().clone();
    let version = match tokio::time::timeout(RUNTIME_TIMEOUT, podman.version()).await {
        Ok(Ok(v)) => v.version,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Podman did not give its version");
            None
        }
        Err(_) => {
            tracing::warn!("Podman did not give its version in time");
            None
        }
    };
    let (cpu, memory, disk) =
        tokio::task::spawn_blocking(move || (host::cpu(), host::memory(), host::disk(&state_dir)))
            .await
            .map_err(ApiError::internal)?;
    Ok(Json(NodeStats {
        version: PAYLOAD_VERSION,
        captured_at: Utc::now(),
        cpu,
        memory,
        disk,
        container_runtime: ContainerRuntime {
            runtime: "podman".into(),
            version,
        },
    }))
}

async fn containers(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ContainersQuery>,
) -> Result<Json<ContainerList>, ApiError> {
    telemetry(&state)
        .read(move |store| store.containers(&query))
        .await
        .map(Json)
        .map_err(read_error)
}

async fn container(
    State(state): State<AppState>,
    Path(container_id): Path<String>,
) -> Result<Json<ContainerDetail>, ApiError> {
    let id = container_id.clone();
    let found = telemetry(&state)
        .read(move |store| Ok(store.container(&id)?))
        .await
        .map_err(read_error)?;
    found.map(Json).ok_or_else(|| {
        Problem::not_found(format!(
            "container `{container_id}` is not in this node's inventory"
        ))
        .into()
    })
}

async fn logs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    telemetry(&state)
        .read(move |store| store.logs(&query))
        .await
        .map(Json)
        .map_err(read_error)
}

fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::Disabled => Problem::unavailable(error.to_string()).into(),
        ReadError::Query(QueryError::Invalid(detail)) => Problem::validation(detail).into(),
        other => ApiError::internal(other),
    }
}
