//! Bearer-token check of the orchestrator's calls: constant-time, and nothing of the token in
//! logs or answers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::Problem;
use cynode_service_kit::http::ApiError;
use cynode_service_kit::secrets::Secret;
use subtle::ConstantTimeEq;

/// The token this node expects, from the node config delivered by the orchestrator.
#[derive(Debug, Clone)]
pub struct BearerToken(Arc<Secret>);

impl BearerToken {
    pub fn new(secret: Secret) -> Self {
        Self(Arc::new(secret))
    }

    /// Whether an `Authorization` header value carries this token. The comparison time does not
    /// depend on where the bytes differ.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(bearer_value) else {
            return false;
        };
        bool::from(presented.as_bytes().ct_eq(self.0.expose().as_bytes()))
    }
}

fn bearer_value(header: &str) -> Option<&str> {
    let (scheme, value) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
}

/// Middleware: 401 problem+json unless the request carries the token.
pub async fn require_bearer(
    State(token): State<BearerToken>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !token.accepts(header) {
        let detail = if header.is_none() {
            "missing Authorization: Bearer token"
        } else {
            "invalid bearer token"
        };
        return ApiError::from(Problem::unauthorized(detail)).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_with_the_bearer_scheme_passes() {
        let token = BearerToken::new(Secret::new("abc123"));
        assert!(token.accepts(Some("Bearer abc123")));
        assert!(token.accepts(Some("bearer abc123")));
        assert!(!token.accepts(Some("Bearer abc1234")));
        assert!(!token.accepts(Some("Bearer abc12")));
        assert!(!token.accepts(Some("Basic abc123")));
        assert!(!token.accepts(Some("abc123")));
        assert!(!token.accepts(Some("Bearer ")));
        assert!(!token.accepts(None));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = BearerToken::new(Secret::new("abc123"));
        assert!(!format!("{token:?}").contains("abc123"));
    }
}
