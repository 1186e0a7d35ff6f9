//! HTTP surface: `/healthz`, `/readyz`, `POST /v1/worker/jobs:run` (paths from
//! [`cynode_contracts::routes`]). Every request body is read (bounded) before any answer, so that
//! a `413` or `401` reaches a client that is still sending.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_contracts::worker::{RunJobRequest, RunJobResponse};
use cynode_service_kit::body_limit::BodyLimit;
use cynode_service_kit::http::{ApiError, ApiJson, not_found_fallback};
use tokio::sync::{mpsc, watch};

use crate::auth::{BearerToken, require_bearer};
use crate::ledger::{JobLedger, LedgerError};
use crate::readiness;
use crate::sandbox::{InvalidJob, Limits, SandboxError, Sandboxes};

/// Everything a handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    pub limits: Arc<Limits>,
    pub sandboxes: Sandboxes,
    /// Makes a repeated delivery of a job return its first result instead of running it again.
    pub ledger: JobLedger,
    /// Turns `true` when the worker shuts down: running jobs stop and their containers go.
    pub shutdown: watch::Receiver<bool>,
    /// Each running job holds a clone; the server waits until every clone is gone, so that even
    /// jobs whose caller hung up have removed their containers before the process exits.
    pub running: mpsc::Sender<()>,
}

pub fn router(state: AppState, token: BearerToken, request_limit: usize) -> Router {
    let inference = state.sandboxes.inference().map(|s| s.backend.clone());
    let jobs = Router::new()
        .route(routes::worker::JOBS_RUN, post(run_job))
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
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match readiness::check(&state.sandboxes, state.limits.default_image()).await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

async fn run_job(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RunJobRequest>,
) -> Result<Json<RunJobResponse>, ApiError> {
    let plan = state.limits.plan(request).map_err(invalid_job)?;
    // The run owns its container: if the caller hangs up, the task still finishes, removes it
    // and records its result for the delivery that will come again.
    let running = state.running.clone();
    let run = tokio::spawn(async move {
        let _running = running;
        let turn = state.ledger.turn(plan.job_id).await;
        let earlier = state
            .ledger
            .earlier_result(&turn, plan.task_id, plan.job_id)
            .await
            .map_err(ledger_error)?;
        if let Some(result) = earlier {
            tracing::info!(task_id = %plan.task_id, job_id = %plan.job_id, "repeated delivery: returning the earlier result");
            return Ok(result);
        }
        let result = state
            .sandboxes
            .run(plan, state.shutdown)
            .await
            .map_err(sandbox_error)?;
        if let Err(e) = state.ledger.record(&turn, &result).await {
            tracing::error!(job_id = %result.job_id, error = %e, "cannot keep the job's result; a repeated delivery would run it again");
        }
        Ok(result)
    });
    match run.await {
        Ok(outcome) => outcome.map(Json),
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn ledger_error(error: LedgerError) -> ApiError {
    match error {
        LedgerError::OtherTask { .. } => Problem::conflict(error.to_string()).into(),
        LedgerError::Unreadable { .. } => ApiError::internal(error),
    }
}

fn invalid_job(error: InvalidJob) -> ApiError {
    match error {
        InvalidJob::UnsupportedVersion(v) => Problem::unsupported_version(v).into(),
        other => Problem::validation(other.to_string()).into(),
    }
}

fn sandbox_error(error: SandboxError) -> ApiError {
    match error {
        SandboxError::AlreadyRunning(_) => Problem::conflict(error.to_string()).into(),
        SandboxError::ImageMissing(_) | SandboxError::ShuttingDown => {
            Problem::unavailable(error.to_string()).into()
        }
        other => ApiError::internal(other),
    }
}
