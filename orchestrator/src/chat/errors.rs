//! Errors of the OpenAI routes, in OpenAI's shape `{"error":{"message","type","param","code"}}`,
//! never problem+json.

use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::{PROBLEM_CONTENT_TYPE, Problem};
use cynode_contracts::user::{OpenAiError, OpenAiErrorBody};

use crate::error;

/// An error of the OpenAI routes.
#[derive(Debug)]
pub struct ChatError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
}

impl ChatError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    pub(super) fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "chat request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the cause is in the orchestrator's log",
        )
    }

    pub(super) fn timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "cynodeai_completion_timeout",
            format!("the model did not answer within {secs}s"),
        )
    }

    /// `timeout` / `error` for the audit log.
    pub(super) fn outcome(&self) -> &'static str {
        if self.status == StatusCode::GATEWAY_TIMEOUT {
            "timeout"
        } else {
            "error"
        }
    }
}

/// The OpenAI `code` for a problem+json status.
fn code_for(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request",
        401 => "invalid_api_key",
        403 => "permission_denied",
        404 => "not_found",
        413 => "request_too_large",
        429 => "rate_limit_exceeded",
        503 => "service_unavailable",
        504 => "cynodeai_completion_timeout",
        _ => "internal_error",
    }
}

impl From<Problem> for ChatError {
    fn from(problem: Problem) -> Self {
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(
            status,
            code_for(problem.status),
            problem.detail.unwrap_or(problem.title),
        )
    }
}

impl From<error::Error> for ChatError {
    fn from(e: error::Error) -> Self {
        match e {
            error::Error::Problem(problem, _) => problem.into(),
            other => {
                // Text PostgreSQL cannot store is the client's (see `error.rs`); the shared
                // conversion knows which.
                let response = other.into_response();
                if response.status() == StatusCode::BAD_REQUEST {
                    Self::invalid(Some("messages"), "text must not contain NUL characters")
                } else {
                    Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "internal error; the cause is in the orchestrator's log",
                    )
                }
            }
        }
    }
}

impl From<sqlx::Error> for ChatError {
    fn from(e: sqlx::Error) -> Self {
        error::Error::Db(e).into()
    }
}

pub fn error_body(
    status: StatusCode,
    code: &str,
    message: String,
    param: Option<&str>,
) -> Response {
    (
        status,
        Json(OpenAiError {
            error: OpenAiErrorBody {
                message,
                kind: "cynodeai_error".into(),
                param: param.map(str::to_owned),
                code: code.to_owned(),
            },
        }),
    )
        .into_response()
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        error_body(self.status, self.code, self.message, self.param)
    }
}

/// Layer of the OpenAI routes: a problem+json answer from an extractor (authentication, the
/// body limit, ...) becomes the same error in OpenAI's shape.
pub async fn openai_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    if !is_problem {
        return response;
    }
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let problem: Option<Problem> = serde_json::from_slice(&body).ok();
    let message = problem
        .and_then(|p| p.detail.or(Some(p.title)))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let mut converted = error_body(status, code_for(status.as_u16()), message, None);
    if let Some(value) = retry_after {
        converted.headers_mut().insert(header::RETRY_AFTER, value);
    }
    converted
}
