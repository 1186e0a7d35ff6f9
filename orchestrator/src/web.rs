//! What both HTTP servers share: health and readiness, body limit (service-kit's, which reads an
//! oversized body before its 413), request deadline, access log,
//! problem+json fallback.

use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_service_kit::body_limit::BodyLimit;
use cynode_service_kit::http::{ApiError, not_found_fallback};

use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::{AppState, readiness};

/// Like axum's `Path`, but a path it cannot decode (bad percent-encoding, not UTF-8) is a 400
/// problem+json like every other client mistake, not axum's plain-text answer.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(Problem::validation(format!("request path: {}", rejection.body_text())).into())
            }
        }
    }
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = String, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 `ready`, or 503 with the reason in plain text.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = String, description = "ready"),
    (status = 503, body = String, description = "why the orchestrator is not ready"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match readiness::check(&state).await {
        Ok(_) => "ready".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// Bounds each request's time and logs one structured line per request. Neither bodies nor
/// headers are logged: they carry passwords and tokens.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
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
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .http
        .observe(matched.as_deref(), method.as_str(), status, elapsed);
    tracing::info!(
        %method,
        route,
        status,
        duration_ms = elapsed.as_millis() as u64,
        "request"
    );
    response
}

/// Adds the shared routes and layers and binds the state.
pub fn finish(router: Router<AppState>, state: AppState) -> Router {
    let limit = state.config.max_request_body_bytes;
    let router = router
        .route(routes::HEALTHZ, axum::routing::get(healthz))
        .route(routes::READYZ, axum::routing::get(readyz))
        .fallback(not_found_fallback);
    // Bodies are read (bounded) before any answer, so a 413 or 401 reaches a client that is
    // still sending; inside `edge`, so the request deadline covers that too.
    BodyLimit::new(limit)
        .apply_to(router)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// Declares the bearer schemes the OpenAPI operations refer to.
#[derive(Debug)]
pub struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("bearer", "user access JWT"),
            ("node_jwt", "node JWT from registration"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(what))
                        .build(),
                ),
            );
        }
    }
}
