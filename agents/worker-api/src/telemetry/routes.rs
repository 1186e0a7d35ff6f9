//! The Telemetry API (`GET /v1/worker/telemetry/…`, paths in
//! [`cynode_contracts::routes::worker`]), behind the same bearer check as `jobs:run` (applied by
//! [`crate::routes::router`]). Handlers only parse, ask the store and map errors: a client's
//! mistake is a `400` problem naming it, an unknown container `404`, a disabled telemetry `503`.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRef, Path, State};
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
use podman_api::Podman;

use super::{QueryError, ReadError, Telemetry, host};

/// How long `node:stats` waits for Podman's version.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(5);

/// What the telemetry routes read: the node's telemetry, and Podman for its version.
#[derive(Debug, Clone)]
pub struct TelemetryApi {
    pub telemetry: Telemetry,
    pub podman: Podman,
}

/// The telemetry routes, on any state they can take their [`TelemetryApi`] from; the caller
/// adds the bearer check.
pub fn router<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
    TelemetryApi: FromRef<S>,
{
    axum::Router::new()
        .route(worker::TELEMETRY_NODE_INFO, get(node_info))
        .route(worker::TELEMETRY_NODE_STATS, get(node_stats))
        .route(worker::TELEMETRY_CONTAINERS, get(containers))
        .route(worker::TELEMETRY_CONTAINER, get(container))
        .route(worker::TELEMETRY_LOGS, get(logs))
}

async fn node_info(State(api): State<TelemetryApi>) -> Result<Json<NodeInfo>, ApiError> {
    api.telemetry
        .node_info()
        .cloned()
        .map(Json)
        .ok_or_else(|| read_error(ReadError::Disabled))
}

async fn node_stats(State(api): State<TelemetryApi>) -> Result<Json<NodeStats>, ApiError> {
    let state_dir = api
        .telemetry
        .state_dir()
        .ok_or_else(|| read_error(ReadError::Disabled))?
        .to_owned();
    let podman = api.podman;
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
    State(api): State<TelemetryApi>,
    ApiQuery(query): ApiQuery<ContainersQuery>,
) -> Result<Json<ContainerList>, ApiError> {
    api.telemetry
        .read(move |store| store.containers(&query))
        .await
        .map(Json)
        .map_err(read_error)
}

async fn container(
    State(api): State<TelemetryApi>,
    Path(container_id): Path<String>,
) -> Result<Json<ContainerDetail>, ApiError> {
    let id = container_id.clone();
    let found = api
        .telemetry
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
    State(api): State<TelemetryApi>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Json<LogPage>, ApiError> {
    api.telemetry
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
