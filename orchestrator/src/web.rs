//! HTTP helpers the routes share: a path extractor that answers problem+json, the liveness
//! route and the OpenAPI security schemes. What wraps every route (readiness, body limit,
//! deadline, access log) needs the servers' state and is theirs: `app::http`.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use cynode_contracts::problem::Problem;
use serde::de::DeserializeOwned;

use crate::error::Error;

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

/// The value of the request cookie `name`, if the request has exactly that cookie (RFC 6265
/// section 5.4: `name=value` pairs separated by `; `, in one or more `Cookie` headers).
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = String, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
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

/// An error with its sources, `a: b: c`, for logs (reqwest's own text names only the top).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; cynode_session=tok"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=\"2\";c="));
        assert_eq!(super::cookie(&headers, "cynode_session"), Some("tok"));
        assert_eq!(super::cookie(&headers, "b"), Some("2"));
        assert_eq!(super::cookie(&headers, "c"), None);
        assert_eq!(super::cookie(&headers, "session"), None);
        assert_eq!(super::cookie(&HeaderMap::new(), "a"), None);
    }
}
