//! The orchestrator's MCP gateway for sandbox jobs with `use_mcp` (`workflow_mcp_agents.md` §2,
//! §4.3: "tokens are issued to the worker, never to agents; the proxy attaches them").
//!
//! The orchestrator sends a job's grant with the delivery ([`McpGrant`]: its MCP URL and a
//! bearer token scoped to the job). The worker checks it ([`McpGateway::grant`]), keeps it in
//! this process's memory only, and serves the job's own Unix socket with [`job_router`]; the
//! pod's sidecar forwards `http://127.0.0.1:12083/mcp` (the sandbox's `CYNODE_MCP_URL`) to that
//! socket. Each request goes on to the grant's URL with `Authorization: Bearer <token>` set by
//! the worker: whatever credentials the sandbox sends (`Authorization`, `Cookie`) are dropped,
//! so the job's identity is the socket it came through and the token never enters the pod.
//!
//! MCP's streamable HTTP transport passes through unchanged: `POST` (JSON-RPC, answered with
//! `application/json` or a `text/event-stream`), `GET` (a server stream) and `DELETE` (end of a
//! session), with their headers (`Mcp-Session-Id`, `MCP-Protocol-Version`, `Accept`,
//! `Last-Event-ID`, …). Request bodies are capped at 10 MiB, answers stream back as they come,
//! and each request has the sidecar's deadline (120 s; a server stream is cut then and the
//! client resumes it with `Last-Event-ID`). The gateway's own answers, a 401 for an expired
//! token included, reach the job as they are.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, Uri, header};
use axum::response::Response;
use axum::routing::any;
// The sidecar serves the gateway's own path inside the pod; everything under it is forwarded to
// the same place under the grant's URL.
use cynode_contracts::mcp::MCP_PATH;
use cynode_contracts::problem::{Problem, types};
use cynode_contracts::worker::McpGrant;
use cynode_service_kit::http::ApiError;
use cynode_service_kit::secrets::Secret;
use url::Url;

use crate::body::BodyError;

/// One request, from its start to the last byte of the answer: the sidecar's deadline.
const TIMEOUT: Duration = cynode_inference_proxy::args::DEFAULT_TIMEOUT;

/// Headers that never go on to the gateway: those of one hop (RFC 9110 §7.6.1; framing is
/// reqwest's), the sandbox's credentials (the worker sets the one that counts), and anything
/// that would speak for the caller's address: the socket alone says who is calling.
const DROPPED_REQUEST_HEADERS: [&str; 17] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "host",
    "content-length",
    "authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
];
/// Headers of the gateway's answer that stay here: one hop's, and cookies (no credential of
/// the worker's session enters the pod).
const DROPPED_RESPONSE_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "set-cookie",
];

/// The node's MCP gateway (`--mcp-gateway-url`): where grants may point, and the one HTTP
/// client every job's socket forwards with.
#[derive(Debug, Clone)]
pub struct McpGateway {
    url: Url,
    http: reqwest::Client,
}

/// Why a job's grant is refused; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("mcp.url must be an http(s) URL: {0}")]
    BadUrl(String),
    #[error("mcp.url must be on this node's MCP gateway {0} (scheme, host and port)")]
    OtherOrigin(String),
    #[error("mcp.token must be non-empty printable ASCII without spaces")]
    BadToken,
}

/// A checked grant: where to forward and with which token. Lives in this process only.
#[derive(Debug, Clone)]
pub struct McpTarget {
    url: Url,
    token: Secret,
}

impl McpGateway {
    pub fn new(url: Url) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // The gateway is the orchestrator, reached directly: never through a proxy from the
            // environment, and a redirect is the job's to follow (it never takes the token
            // anywhere but the grant's URL).
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { url, http })
    }

    /// Checks a job's grant: an http(s) URL on this gateway's origin (the only TCP port, besides
    /// inference, this worker may connect to), and a token that can be a header value.
    pub fn grant(&self, grant: McpGrant) -> Result<McpTarget, GrantError> {
        let url = Url::parse(&grant.url).map_err(|e| GrantError::BadUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(GrantError::BadUrl(format!(
                "`{url}` is not http(s) with a host"
            )));
        }
        if url.origin() != self.url.origin() {
            return Err(GrantError::OtherOrigin(
                self.url.origin().ascii_serialization(),
            ));
        }
        if grant.token.is_empty() || !grant.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GrantError::BadToken);
        }
        Ok(McpTarget {
            url,
            token: Secret::new(grant.token),
        })
    }
}

/// What one job's socket forwards, and how many requests it did.
#[derive(Debug)]
struct JobGrant {
    http: reqwest::Client,
    target: McpTarget,
    requests: AtomicU64,
}

/// A job's MCP socket: its router, and the count of calls it forwarded for the job's result.
#[derive(Debug)]
pub struct JobMcp {
    grant: Arc<JobGrant>,
}

impl JobMcp {
    pub fn new(gateway: &McpGateway, target: McpTarget) -> Self {
        Self {
            grant: Arc::new(JobGrant {
                http: gateway.http.clone(),
                target,
                requests: AtomicU64::new(0),
            }),
        }
    }

    /// What the job's socket serves: [`MCP_PATH`] and below, forwarded; anything else 404.
    pub fn router(&self) -> Router {
        job_router(Arc::clone(&self.grant))
    }

    /// For the job's `run_diagnostics.mcp`.
    pub fn usage(&self) -> serde_json::Value {
        serde_json::json!({ "requests": self.grant.requests.load(Ordering::Relaxed) })
    }
}

fn job_router(grant: Arc<JobGrant>) -> Router {
    Router::new()
        .route(MCP_PATH, any(forward))
        .route(&format!("{MCP_PATH}/{{*rest}}"), any(forward))
        .fallback(|uri: Uri| async move {
            ApiError::from(Problem::not_found(format!(
                "{} is not forwarded: the MCP gateway is at {MCP_PATH}",
                uri.path()
            )))
        })
        .with_state(grant)
}

async fn forward(
    State(grant): State<Arc<JobGrant>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if ![Method::POST, Method::GET, Method::DELETE].contains(&method) {
        return Err(Problem::new(
            types::VALIDATION,
            "Method not allowed",
            405,
            format!("MCP's HTTP transport uses POST, GET and DELETE, not {method}"),
        )
        .into());
    }
    let url = target_url(&grant.target.url, &uri)?;
    let body = crate::body::read_capped(body).await.map_err(|e| match e {
        BodyError::TooLarge => {
            Problem::payload_too_large(crate::body::MAX_BODY_BYTES as u64).into()
        }
        BodyError::Unreadable => ApiError::from(Problem::validation(e.to_string())),
    })?;
    grant.requests.fetch_add(1, Ordering::Relaxed);
    let mut request = grant
        .http
        .request(method, url)
        .headers(forwarded(&headers, &DROPPED_REQUEST_HEADERS))
        .bearer_auth(grant.target.token.expose())
        .timeout(TIMEOUT);
    if !body.is_empty() {
        request = request.body(body);
    }
    let answer = request.send().await.map_err(|e| {
        // reqwest names the URL, never the token.
        tracing::warn!(error = %e, "a job's MCP call did not reach the gateway");
        if e.is_timeout() {
            Problem::new(
                types::UNAVAILABLE,
                "Gateway timeout",
                504,
                "the orchestrator's MCP gateway did not answer in time",
            )
        } else {
            Problem::new(
                types::UNAVAILABLE,
                "Bad gateway",
                502,
                "the orchestrator's MCP gateway is not reachable",
            )
        }
    })?;
    let status = answer.status();
    let headers = forwarded(answer.headers(), &DROPPED_RESPONSE_HEADERS);
    // Streamed as it comes, whatever its type: an event stream is never held back, and a JSON
    // answer needs no buffer either.
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The grant's URL with what follows [`MCP_PATH`] appended and the request's query. A `.` or
/// `..` segment (also percent-encoded) is refused: it could climb out of the gateway's path.
fn target_url(base: &Url, uri: &Uri) -> Result<Url, ApiError> {
    let rest = uri.path().strip_prefix(MCP_PATH).unwrap_or_default();
    let climbs = rest.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if climbs {
        return Err(Problem::validation(format!(
            "`{}`: `.` and `..` path segments are not forwarded",
            uri.path()
        ))
        .into());
    }
    let mut url = base.clone();
    if !rest.is_empty() {
        url.set_path(&format!("{}{rest}", base.path().trim_end_matches('/')));
    }
    url.set_query(uri.query());
    Ok(url)
}

/// `headers` without `dropped` and without those the `Connection` header names (one hop's too).
fn forwarded(headers: &HeaderMap, dropped: &[&str]) -> HeaderMap {
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if dropped.contains(&name.as_str()) || named_by_connection.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> McpGateway {
        McpGateway::new("http://127.0.0.1:12083/mcp".parse().unwrap()).unwrap()
    }

    fn grant(url: &str, token: &str) -> McpGrant {
        McpGrant {
            url: url.into(),
            token: token.into(),
        }
    }

    #[test]
    fn a_grant_must_be_on_the_gateway_and_its_token_a_header_value() {
        let g = gateway();
        let target = g
            .grant(grant("http://127.0.0.1:12083/mcp", "tok.en-1_~"))
            .unwrap();
        assert_eq!(target.url.as_str(), "http://127.0.0.1:12083/mcp");
        assert!(!format!("{target:?}").contains("tok.en"), "{target:?}");
        // Another path on the same origin is the orchestrator's choice.
        assert!(g.grant(grant("http://127.0.0.1:12083/v2/mcp", "t")).is_ok());
        for url in [
            "http://127.0.0.1:12084/mcp",
            "https://127.0.0.1:12083/mcp",
            "http://localhost:12083/mcp",
            "http://10.0.0.1:12083/mcp",
        ] {
            assert!(
                matches!(g.grant(grant(url, "t")), Err(GrantError::OtherOrigin(_))),
                "{url}"
            );
        }
        assert!(matches!(
            g.grant(grant("unix:/run/x.sock", "t")),
            Err(GrantError::BadUrl(_))
        ));
        assert!(matches!(
            g.grant(grant("not a url", "t")),
            Err(GrantError::BadUrl(_))
        ));
        for token in ["", "a b", "a\r\nX-Evil: 1", "caf\u{e9}"] {
            let err = g
                .grant(grant("http://127.0.0.1:12083/mcp", token))
                .unwrap_err();
            assert_eq!(err, GrantError::BadToken);
            assert!(err.to_string().starts_with("mcp.token"));
        }
    }

    #[test]
    fn paths_under_mcp_map_under_the_grant_and_cannot_climb_out() {
        let base: Url = "http://127.0.0.1:12083/gw/mcp".parse().unwrap();
        let map = |uri: &str| target_url(&base, &uri.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(map("/mcp").unwrap(), "http://127.0.0.1:12083/gw/mcp");
        assert_eq!(
            map("/mcp?session=1").unwrap(),
            "http://127.0.0.1:12083/gw/mcp?session=1"
        );
        assert_eq!(
            map("/mcp/sse").unwrap(),
            "http://127.0.0.1:12083/gw/mcp/sse"
        );
        for climb in [
            "/mcp/../admin",
            "/mcp/%2E%2e/admin",
            "/mcp/./x",
            "/mcp/.%2e",
        ] {
            assert!(map(climb).is_err(), "{climb}");
        }
    }

    #[test]
    fn credentials_and_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer evil"),
            ("cookie", "session=x"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("host", "localhost"),
            ("x-forwarded-for", "10.0.0.1"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-session-id", "s-1"),
            ("mcp-protocol-version", "2025-06-18"),
            ("last-event-id", "7"),
        ] {
            headers.append(HeaderName::from_static(name), value.parse().unwrap());
        }
        let out = forwarded(&headers, &DROPPED_REQUEST_HEADERS);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "accept",
                "mcp-session-id",
                "mcp-protocol-version",
                "last-event-id"
            ]
        );
    }
}
