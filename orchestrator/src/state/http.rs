//! What wraps every route of the user gateway and the control plane: readiness, the body limit
//! (service-kit's, which reads an oversized body before its 413), the request deadline, the access
//! log and the problem+json fallback; and the metrics listener's one route.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_service_kit::body_limit::BodyLimit;
use cynode_service_kit::http::{ApiError, not_found_fallback};

use super::AppState;
use crate::readiness;
use crate::web::healthz;

/// `GET /readyz`: 200 `ready`, or 503 with the reason in plain text.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = String, description = "ready"),
    (status = 503, body = String, description = "why the orchestrator is not ready"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match readiness::check(&state.pm).await {
        Ok(_) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// Bounds each request's time and logs one structured line per request. Neither bodies nor
/// headers are logged: they carry passwords and tokens.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let route = matched
        .clone()
        .unwrap_or_else(|| req.uri().path().to_owned());
    let response = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::from(Problem::unavailable(
            "the request took too long and was abandoned",
        ))
        .into_response(),
    };
    let mut response = response;
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(routes::user::REQUEST_ID_HEADER, value);
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .http
        .observe(matched.as_deref(), method.as_str(), status, elapsed);
    tracing::info!(
        %method,
        route,
        request_id,
        status,
        duration_ms = elapsed.as_millis() as u64,
        "request"
    );
    response
}

/// The client's request id when it is a sane one (1 to 128 visible ASCII characters: it goes
/// into a log line and a header), else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(routes::user::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Adds the shared routes and layers and binds the state. The caller sets the fallback (a 404
/// problem, [`not_found_fallback`], or the user gateway's console).
pub fn finish(router: Router<AppState>, state: AppState) -> Router {
    let limit = state.config.max_request_body_bytes;
    let router = router
        .route(routes::HEALTHZ, get(healthz))
        .route(routes::READYZ, get(readyz));
    // Bodies are read (bounded) before any answer, so a 413 or 401 reaches a client that is
    // still sending; inside `edge`, so the request deadline covers that too.
    BodyLimit::new(limit)
        .apply_to(router)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            routes::METRICS,
            get(|State(state): State<AppState>| async move {
                state.metrics.scrape(&state.db).await
            }),
        )
        .fallback(not_found_fallback)
        .with_state(state)
}
