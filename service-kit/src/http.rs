//! The edge of every axum server: errors become RFC 9457 problem+json exactly once, here.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::{PROBLEM_CONTENT_TYPE, Problem};
use serde::de::DeserializeOwned;

/// An error on its way to the client. Handlers return `Result<_, ApiError>`.
#[derive(Debug)]
pub struct ApiError {
    pub problem: Problem,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// A server fault: the cause goes to the log, the client gets a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Problem::internal().into()
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self {
            problem,
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.problem, self.retry_after_secs)
    }
}

/// Renders a problem with its status and `application/problem+json`.
pub fn problem_response(problem: &Problem, retry_after_secs: Option<u64>) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    if let Some(secs) = retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A JSON body extractor whose rejections are problem+json naming what is wrong: the missing or
/// unknown field, the wrong type, the syntax error, or the size limit (413).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Option<ApiJson<T>>`: `None` for a request without a body (no `Content-Type`, nothing
/// sent), else the body as [`ApiJson`] reads it, with the same rejections.
impl<S, T> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let headers = req.headers();
        let empty = !headers.contains_key(header::CONTENT_TYPE)
            && !headers.contains_key(header::TRANSFER_ENCODING)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|len| len.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// A typed query string whose rejections are `400` problem+json naming the parameter (axum's
/// own `Query` answers in plain text).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(Problem::validation(format!(
                "query parameter {}",
                rejection
                    .body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
            ))
            .into()),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return payload_too_large().into();
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return Problem::new(
            cynode_contracts::problem::types::VALIDATION,
            "Unsupported media type",
            415,
            "expected a body with Content-Type: application/json",
        )
        .into();
    }
    // serde's message names the field: "missing field `prompt`", "unknown field `x`", ...
    let detail = match &rejection {
        JsonRejection::JsonDataError(e) => std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.body_text()),
        JsonRejection::JsonSyntaxError(e) => format!(
            "malformed JSON: {}",
            std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text())
        ),
        other => other.body_text(),
    };
    Problem::validation(detail).into()
}

/// The `413` every server gives for a body over its limit.
pub fn payload_too_large() -> Problem {
    Problem::new(
        cynode_contracts::problem::types::PAYLOAD_TOO_LARGE,
        "Payload too large",
        413,
        "request body exceeds the size limit",
    )
}

/// Fallback for unknown routes, so that even a 404 is problem+json.
pub async fn not_found_fallback(uri: axum::http::Uri) -> ApiError {
    Problem::not_found(format!("no route for {}", uri.path())).into()
}

/// Resolves on SIGTERM or SIGINT: the trigger for graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tower::ServiceExt;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body1 {
        name: String,
        count: u32,
    }

    fn app() -> Router {
        Router::new()
            .route("/", post(|ApiJson(_b): ApiJson<Body1>| async { "ok" }))
            .layer(DefaultBodyLimit::max(64))
    }

    async fn send(body: &str) -> (u16, Option<String>, Problem) {
        let req = Request::post("/")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn rejections_are_problems_naming_the_field() {
        let (status, ctype, p) = send(r#"{"name":"a"}"#).await;
        assert_eq!(status, 400);
        assert_eq!(ctype.as_deref(), Some(PROBLEM_CONTENT_TYPE));
        assert!(p.detail.unwrap().contains("count"));

        let (status, _, p) = send(r#"{"name":"a","count":1,"extra":2}"#).await;
        assert_eq!(status, 400);
        assert!(p.detail.unwrap().contains("extra"));

        let (status, _, p) = send(r#"{"name":"a","count":"x"}"#).await;
        assert_eq!(status, 400);
        assert!(p.detail.unwrap().contains("invalid type"));

        let (status, _, p) = send(r#"{"name":"#).await;
        assert_eq!(status, 400);
        assert!(p.detail.unwrap().starts_with("malformed JSON"));
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(200));
        let (status, _, p) = send(&big).await;
        assert_eq!(status, 413);
        assert_eq!(p.status, 413);
    }
}
