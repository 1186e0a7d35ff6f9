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
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token this node expects, from the node config delivered by the orchestrator. Only its
/// SHA-256 digest is kept for comparing.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8; 32]>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    pub fn new(secret: Secret) -> Self {
        Self(Arc::new(digest(secret.expose())))
    }

    /// Whether an `Authorization` header value carries this token. Fixed-length digests are
    /// compared in constant time, so neither where the bytes differ nor the token's length shows
    /// in the timing (comparing the raw bytes returns at once when the lengths differ).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(bearer_value) else {
            return false;
        };
        bool::from(digest(presented).ct_eq(&*self.0))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
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
