//! HTTP surface: `/healthz`, `/readyz`, `POST /v1/worker/jobs:run`,
//! `GET /v1/worker/jobs/{job_id}/logs` (live output, server-sent events),
//! `POST /v1/worker/jobs/{job_id}/stop`, `POST /v1/worker/jobs/{job_id}/requeue`, the managed
//! sandboxes `…/v1/worker/sandboxes…` ([`crate::managed::routes`]), the
//! Telemetry API `GET /v1/worker/telemetry/…` ([`crate::telemetry::routes`]) (paths from
//! [`cynode_contracts::routes`]). Every request body is read (bounded) before any answer, so that
//! a `413` or `401` reaches a client that is still sending.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use cynode_contracts::problem::Problem;
use cynode_contracts::worker::{RunJobRequest, RunJobResponse};
use cynode_contracts::{logs, routes};
use cynode_service_kit::body_limit::BodyLimit;
use cynode_service_kit::http::{ApiError, ApiJson, not_found_fallback};

use crate::auth::{BearerToken, require_bearer};
use crate::problems::{invalid_job, uuid_param};
use crate::readiness;
use crate::sandbox::{RunError, SandboxError, Stop};
use crate::state::AppState;

pub fn router(state: AppState, token: BearerToken, request_limit: usize) -> Router {
    let inference = state.jobs.sandboxes().inference().cloned();
    let jobs = Router::new()
        .route(routes::worker::JOBS_RUN, post(run_job))
        .route(routes::worker::JOB_STOP, post(stop_job))
        .route(routes::worker::JOB_LOGS, get(job_logs))
        .route(routes::worker::JOB_REQUEUE, post(requeue_job))
        .merge(crate::telemetry::routes::router())
        .merge(crate::managed::routes::router())
        .route_layer(middleware::from_fn_with_state(
            token.clone(),
            require_bearer,
        ));
    // The OpenAI-compatible routes read their own bodies, with the same 10 MiB cap and drain,
    // so that a refusal comes in the OpenAI error shape their clients parse.
    let inference = crate::inference::routes::worker_router(inference)
        .route_layer(middleware::from_fn_with_state(token, require_bearer));
    let router = Router::new()
        .route(routes::HEALTHZ, get(|| async { "ok" }))
        .route(routes::READYZ, get(readyz))
        .merge(jobs)
        .fallback(not_found_fallback);
    BodyLimit::new(request_limit)
        .apply_to(router)
        .merge(inference)
        .layer(middleware::from_fn(crate::metrics::track_http))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match readiness::check(state.jobs.sandboxes(), state.limits.default_image()).await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

async fn run_job(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RunJobRequest>,
) -> Result<Json<RunJobResponse>, ApiError> {
    let plan = state.limits.plan(request).map_err(invalid_job)?;
    // The run belongs to the lifecycle, not to this request: if the caller hangs up, it still
    // finishes, removes its container and keeps its result for the delivery that comes again.
    state.jobs.deliver(plan).await.map(Json).map_err(run_error)
}

async fn stop_job(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<RunJobResponse>, ApiError> {
    let job_id = uuid_param(&job_id, "job")?;
    state
        .jobs
        .stop(job_id, Stop::Cancel)
        .await
        .map(Json)
        .map_err(run_error)
}

/// `204` once the run was interrupted (nothing kept); `200` with its result if it had ended.
async fn requeue_job(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let job_id = uuid_param(&job_id, "job")?;
    match state.jobs.stop(job_id, Stop::Requeue).await {
        Ok(result) => Ok(Json(result).into_response()),
        Err(RunError::Interrupted(_)) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(run_error(e)),
    }
}

/// The job's output as server-sent events (`cynode_contracts::logs`): a live run's lines from
/// its start as they come, then `end` when it has ended; a finished job's stored output and
/// `end` at once; `404` for a job this node does not know.
async fn job_logs(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let job_id = uuid_param(&job_id, "job")?;
    let followed = state.jobs.follow(job_id).await.map_err(run_error)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(crate::sandbox::send_log(job_id, followed, tx));
    let body = axum::body::Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    }));
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, logs::CONTENT_TYPE)
        .header(axum::http::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .map_err(ApiError::internal)
}

fn run_error(error: RunError) -> ApiError {
    match &error {
        RunError::OtherTask { .. } => Problem::conflict(error.to_string()).into(),
        RunError::Interrupted(_) => Problem::job_interrupted(error.to_string()).into(),
        RunError::Unknown(_) => Problem::not_found(error.to_string()).into(),
        RunError::Sandbox(e) => match e.as_ref() {
            SandboxError::AlreadyRunning(_) => Problem::conflict(error.to_string()).into(),
            SandboxError::ImageMissing(_) => Problem::unavailable(error.to_string()).into(),
            _ => ApiError::internal(error),
        },
        RunError::Ledger(_) | RunError::Abandoned(_) => ApiError::internal(error),
    }
}
