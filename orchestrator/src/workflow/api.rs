//! The workflow API on the control plane (`/v1/workflow/{start,resume,checkpoint,release}`,
//! `workflow_mcp_agents.md` §1.4): an external workflow runner takes a task's lease, saves and
//! reads its checkpoint and releases the lease, through the same [`store`] functions as the
//! engine's own drivers, so a task has one driver whoever runs it.
//!
//! Every route needs `Authorization: Bearer $WORKFLOW_RUNNER_BEARER_TOKEN`. Deviation from
//! upstream: with the token unset the API is closed (401), not open. Tasks have no `plan_id`
//! yet, so the start gate allows every start; `X-Cynode-Workflow-Requested-By: pma` is accepted
//! (and logged) for when plans exist.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_contracts::workflow::{
    CheckpointRequest, DEFAULT_LEASE_SECS, MAX_LEASE_SECS, REQUESTED_BY_HEADER, REQUESTED_BY_PMA,
    ReleaseRequest, ResumeRequest, ResumeResponse, StartRequest, StartResponse, StartStatus,
};
use cynode_service_kit::http::ApiJson;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::Node;
use super::store::{self, Acquired};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The routes, for the control plane's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::workflow::START, post(start))
        .route(routes::workflow::RESUME, post(resume))
        .route(routes::workflow::CHECKPOINT, post(checkpoint))
        .route(routes::workflow::RELEASE, post(release))
}

/// A caller that presented the workflow runner's bearer token.
#[derive(Debug)]
pub struct WorkflowRunner;

impl FromRequestParts<AppState> for WorkflowRunner {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let Some(expected) = &state.workflow_token else {
            return Err(Problem::unauthorized(
                "the workflow API is closed: WORKFLOW_RUNNER_BEARER_TOKEN is not set",
            )
            .into());
        };
        let given = crate::auth::bearer(parts)?;
        // Digests, so that neither the content nor the length shows in the timing.
        let same = Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.expose()));
        if bool::from(same) {
            Ok(Self)
        } else {
            Err(Problem::unauthorized("token is invalid").into())
        }
    }
}

async fn task_exists(state: &AppState, task_id: Uuid) -> Result<()> {
    let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1)")
        .bind(task_id)
        .fetch_one(&state.db)
        .await?;
    if found {
        Ok(())
    } else {
        Err(Problem::not_found(format!("task {task_id} not found")).into())
    }
}

/// Takes the task's lease for `holder_id` (the gate allows every start: tasks have no plan).
#[utoipa::path(post, path = "/v1/workflow/start", tag = "workflow", request_body = StartRequest,
    security(("workflow_bearer" = [])), params(
        ("X-Cynode-Workflow-Requested-By" = Option<String>, Header, description = "`pma` marks a start the PM agent asked for"),
    ), responses(
    (status = 200, body = StartResponse, description = "started, or already running for this holder and lease"),
    (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 404, body = Problem, description = "unknown task"),
    (status = 409, body = Problem, description = "another holder (or lease) holds the task"),
))]
pub async fn start(
    State(state): State<AppState>,
    _runner: WorkflowRunner,
    headers: HeaderMap,
    ApiJson(req): ApiJson<StartRequest>,
) -> Result<Json<StartResponse>> {
    if req.holder_id.trim().is_empty() || req.holder_id.chars().count() > 256 {
        return Err(Problem::validation("holder_id must be 1 to 256 characters, not blank").into());
    }
    let secs = req.expires_in_sec.unwrap_or(DEFAULT_LEASE_SECS);
    if !(1..=MAX_LEASE_SECS).contains(&secs) {
        return Err(
            Problem::validation(format!("expires_in_sec must be 1 to {MAX_LEASE_SECS}")).into(),
        );
    }
    task_exists(&state, req.task_id).await?;
    let by_pma = headers
        .get(REQUESTED_BY_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(REQUESTED_BY_PMA));
    let lease_id = req.idempotency_key.unwrap_or_else(Uuid::new_v4);
    let status = match store::acquire(
        &state.db,
        req.task_id,
        &req.holder_id,
        lease_id,
        Duration::from_secs(secs),
    )
    .await?
    {
        Acquired::Started => StartStatus::Started,
        Acquired::AlreadyRunning => StartStatus::AlreadyRunning,
        Acquired::Held => {
            return Err(Problem::conflict(format!(
                "task {} already has an active workflow",
                req.task_id
            ))
            .into());
        }
    };
    tracing::info!(task_id = %req.task_id, holder = %req.holder_id, by_pma, ?status, "workflow start");
    Ok(Json(StartResponse {
        run_id: lease_id,
        lease_id,
        status,
    }))
}

/// The task's checkpoint.
#[utoipa::path(post, path = "/v1/workflow/resume", tag = "workflow", request_body = ResumeRequest,
    security(("workflow_bearer" = [])), responses(
    (status = 200, body = ResumeResponse), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 404, body = Problem, description = "no checkpoint for the task"),
))]
pub async fn resume(
    State(state): State<AppState>,
    _runner: WorkflowRunner,
    ApiJson(req): ApiJson<ResumeRequest>,
) -> Result<Json<ResumeResponse>> {
    let Some(cp) = store::checkpoint(&state.db, req.task_id).await? else {
        return Err(Problem::not_found(format!("task {} has no checkpoint", req.task_id)).into());
    };
    Ok(Json(ResumeResponse {
        task_id: cp.task_id,
        state: cp.state.to_string(),
        last_node_id: cp.last_node_id,
        updated_at: cp.updated_at,
    }))
}

/// Saves the task's checkpoint (upsert).
#[utoipa::path(post, path = "/v1/workflow/checkpoint", tag = "workflow", request_body = CheckpointRequest,
    security(("workflow_bearer" = [])), responses(
    (status = 204, description = "saved"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 404, body = Problem, description = "unknown task"),
))]
pub async fn checkpoint(
    State(state): State<AppState>,
    _runner: WorkflowRunner,
    ApiJson(req): ApiJson<CheckpointRequest>,
) -> Result<StatusCode> {
    let value: Value = serde_json::from_str(&req.state)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| Problem::validation("state must be a JSON object, as JSON text"))?;
    if Node::from_id(&req.last_node_id).is_none() {
        let known: Vec<&str> = Node::ALL.iter().map(|n| n.id()).collect();
        return Err(Problem::validation(format!(
            "last_node_id must be one of {}",
            known.join(", ")
        ))
        .into());
    }
    task_exists(&state, req.task_id).await?;
    store::save(&state.db, req.task_id, &value, &req.last_node_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the lease if it is still `lease_id`; idempotent.
#[utoipa::path(post, path = "/v1/workflow/release", tag = "workflow", request_body = ReleaseRequest,
    security(("workflow_bearer" = [])), responses(
    (status = 204, description = "released (or not held under this lease)"),
    (status = 400, body = Problem), (status = 401, body = Problem),
))]
pub async fn release(
    State(state): State<AppState>,
    _runner: WorkflowRunner,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<StatusCode> {
    store::release(&state.db, req.task_id, req.lease_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declares the workflow API's bearer scheme for the OpenAPI document.
#[derive(Debug)]
pub struct WorkflowBearer;

impl utoipa::Modify for WorkflowBearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "workflow_bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("WORKFLOW_RUNNER_BEARER_TOKEN"))
                        .build(),
                ),
            );
    }
}
