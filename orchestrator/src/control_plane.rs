//! Control-plane HTTP API (port 12082): node registration, capability, configuration, ack;
//! the workflow API (`crate::workflow::api`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cynode_contracts::node::{
    NodeBootstrapPayload, NodeCapabilityReport, NodeConfigAck, NodeConfigurationPayload,
    RegisterRequest,
};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_service_kit::http::{ApiJson, not_found_fallback};
use utoipa::OpenApi;

use crate::auth::CurrentNode;
use crate::error::Result;
use crate::nodes;
use crate::state::{AppState, http};
use crate::web::SecuritySchemes;
use crate::workflow::api::WorkflowBearer;
use crate::{web, workflow};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "CyNodeAI control plane", description = "Node registration, capability ingest and configuration delivery"),
    paths(register, capability, get_config, ack_config, web::healthz, http::readyz,
        workflow::api::start, workflow::api::resume, workflow::api::checkpoint,
        workflow::api::release),
    modifiers(&SecuritySchemes, &WorkflowBearer),
)]
pub struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(routes::node::REGISTER, post(register))
        .route(routes::node::CAPABILITY, post(capability))
        .route(routes::node::CONFIG, get(get_config).post(ack_config))
        .route(routes::OPENAPI, get(|| async { Json(ApiDoc::openapi()) }))
        .merge(workflow::api::routes());
    http::finish(routes.fallback(not_found_fallback), state)
}

/// Registers a node with the pre-shared key: 201 for a new node (with its `auth.node_secret`),
/// 200 for a known one, which must present that secret as `node_secret`.
#[utoipa::path(post, path = "/v1/nodes/register", tag = "nodes", request_body = RegisterRequest, responses(
    (status = 201, body = NodeBootstrapPayload, description = "new node"),
    (status = 200, body = NodeBootstrapPayload, description = "known node"),
    (status = 400, body = Problem, description = "bad report or malformed node_secret"),
    (status = 401, body = Problem, description = "wrong PSK, or a known slug without its node_secret"),
    (status = 413, body = Problem),
))]
async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<NodeBootstrapPayload>)> {
    let (payload, created) = nodes::register(
        &state.nodes(),
        &req.psk,
        &req.capability,
        req.node_secret.as_deref(),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(payload)))
}

/// Stores a capability report of the calling node.
#[utoipa::path(post, path = "/v1/nodes/capability", tag = "nodes", request_body = NodeCapabilityReport,
    security(("node_jwt" = [])), responses(
    (status = 204, description = "stored"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "report names another node"),
))]
async fn capability(
    State(state): State<AppState>,
    node: CurrentNode,
    ApiJson(report): ApiJson<NodeCapabilityReport>,
) -> Result<StatusCode> {
    nodes::report_capability(&state.nodes(), &node, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling node's configuration.
#[utoipa::path(get, path = "/v1/nodes/config", tag = "nodes", security(("node_jwt" = [])), responses(
    (status = 200, body = NodeConfigurationPayload), (status = 401, body = Problem),
    (status = 404, body = Problem, description = "unknown node"),
))]
async fn get_config(
    State(state): State<AppState>,
    node: CurrentNode,
) -> Result<Json<NodeConfigurationPayload>> {
    Ok(Json(nodes::configuration(&state.nodes(), &node).await?))
}

/// Acknowledges a configuration version as applied or failed.
#[utoipa::path(post, path = "/v1/nodes/config", tag = "nodes", request_body = NodeConfigAck,
    security(("node_jwt" = [])), responses(
    (status = 204, description = "recorded"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "ack names another node"),
    (status = 409, body = Problem, description = "config_version is not the node's current one"),
))]
async fn ack_config(
    State(state): State<AppState>,
    node: CurrentNode,
    ApiJson(ack): ApiJson<NodeConfigAck>,
) -> Result<StatusCode> {
    nodes::acknowledge(&state.nodes(), &node, &ack).await?;
    Ok(StatusCode::NO_CONTENT)
}
