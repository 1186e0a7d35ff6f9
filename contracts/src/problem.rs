//! RFC 9457 problem details, the error body of every REST endpoint (OpenAI routes excepted).

use serde::{Deserialize, Serialize};

/// Media type of a problem body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Problem type URIs. `https://cynode.ai/problems/*` is the spec's namespace.
pub mod types {
    pub const VALIDATION: &str = "https://cynode.ai/problems/validation";
    pub const UNSUPPORTED_VERSION: &str = "https://cynode.ai/problems/unsupported-payload-version";
    pub const AUTHENTICATION: &str = "https://cynode.ai/problems/authentication";
    pub const AUTHORIZATION: &str = "https://cynode.ai/problems/authorization";
    /// A change authenticated by the console's session cookie came without its CSRF token.
    pub const CSRF: &str = "https://cynode.ai/problems/csrf";
    pub const NOT_FOUND: &str = "https://cynode.ai/problems/not-found";
    pub const CONFLICT: &str = "https://cynode.ai/problems/conflict";
    pub const PAYLOAD_TOO_LARGE: &str = "https://cynode.ai/problems/payload-too-large";
    pub const RATE_LIMITED: &str = "https://cynode.ai/problems/rate-limited";
    pub const UNAVAILABLE: &str = "https://cynode.ai/problems/unavailable";
    /// A worker API shut down while the job ran: it was stopped, has no result on the node and
    /// may run again. Not the job's failure: the dispatcher re-queues it without counting it.
    pub const JOB_INTERRUPTED: &str = "https://cynode.ai/problems/job-interrupted";
    pub const INTERNAL: &str = "https://cynode.ai/problems/internal";
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Problem {
    pub fn new(problem_type: &str, title: &str, status: u16, detail: impl Into<String>) -> Self {
        Self {
            problem_type: problem_type.to_owned(),
            title: title.to_owned(),
            status,
            detail: Some(detail.into()),
            instance: None,
        }
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(types::VALIDATION, "Invalid request", 400, detail)
    }

    pub fn unsupported_version(received: u32) -> Self {
        Self::new(
            types::UNSUPPORTED_VERSION,
            "Unsupported payload version",
            400,
            format!(
                "received version {received}; supported versions: [{}]",
                crate::version::PAYLOAD_VERSION
            ),
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(types::AUTHENTICATION, "Unauthorized", 401, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(types::AUTHORIZATION, "Forbidden", 403, detail)
    }

    /// `403` [`types::CSRF`]: the request may have been made by another site's page.
    pub fn csrf() -> Self {
        Self::new(
            types::CSRF,
            "CSRF token missing or wrong",
            403,
            "a change made with the console's session cookie must carry the session's csrf_token in X-CSRF-Token",
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(types::NOT_FOUND, "Not found", 404, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(types::CONFLICT, "Conflict", 409, detail)
    }

    pub fn payload_too_large(limit_bytes: u64) -> Self {
        Self::new(
            types::PAYLOAD_TOO_LARGE,
            "Payload too large",
            413,
            format!("request body exceeds the limit of {limit_bytes} bytes"),
        )
    }

    pub fn rate_limited(detail: impl Into<String>) -> Self {
        Self::new(types::RATE_LIMITED, "Too many requests", 429, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(types::UNAVAILABLE, "Service unavailable", 503, detail)
    }

    /// `503` [`types::JOB_INTERRUPTED`]: the job was stopped by the worker's shutdown.
    pub fn job_interrupted(detail: impl Into<String>) -> Self {
        Self::new(types::JOB_INTERRUPTED, "Job interrupted", 503, detail)
    }

    /// A server fault. The detail is generic on purpose: internals and secrets stay in the log.
    pub fn internal() -> Self {
        Self::new(
            types::INTERNAL,
            "Internal server error",
            500,
            "the server failed to handle the request; see its log",
        )
    }

    /// One readable line, as a CLI shows it: `Not found: task x does not exist`.
    pub fn one_line(&self) -> String {
        match &self.detail {
            Some(detail) if !detail.is_empty() => format!("{}: {}", self.title, detail),
            _ => self.title.clone(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.one_line(), self.status)
    }
}

impl std::error::Error for Problem {}
