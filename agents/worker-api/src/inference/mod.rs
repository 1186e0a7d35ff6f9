//! The node's model, made usable from the two places that need it (`node.md` §3-4):
//!
//! - the orchestrator, through bearer-authenticated OpenAI-compatible routes of this API
//!   (`/v1/worker/inference/v1/models`, `…/chat/completions`), see [`routes`];
//! - a sandbox job with `use_inference`, through the per-job Unix socket
//!   ([`crate::job_socket`], serving [`routes::job_router`]) behind the pod's sidecar
//!   ([`sidecar`], the `cynode-inference-proxy` binary).
//!
//! Both forward with one [`Backend`]: only the content type of a client's headers reaches the
//! model server, the body is capped (10 MiB), every request has a deadline, answers stream back
//! as they arrive (server-sent events and Ollama's NDJSON are never buffered whole), errors are
//! in the OpenAI shape and name nothing internal, and token usage is counted where it is asked
//! for ([`Usage`]).

pub mod routes;
pub mod sidecar;
pub mod usage;

use crate::metrics::METRICS;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;

pub use usage::{Usage, UsageScanner};

/// Largest non-streamed answer read back (a model's JSON answer is far smaller).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// How long the list of served models is trusted before a request for an unlisted model asks
/// the server again.
const MODEL_LIST_TTL: Duration = Duration::from_secs(30);

/// The node's model server, as this worker reaches it.
#[derive(Debug, Clone)]
pub struct Backend {
    base: Url,
    http: reqwest::Client,
    timeout: Duration,
    models: Arc<Mutex<Option<ModelList>>>,
}

/// The served model ids and when they were asked for.
type ModelList = (Instant, Vec<String>);

/// An answer in the OpenAI error shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    pub code: &'static str,
}

impl OpenAiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code,
        }
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 | 403 => "authentication_error",
            404 => "invalid_request_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind(), "param": null, "code": self.code}})
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Why the model server could not be used; each maps to one OpenAI-shaped answer.
fn unreachable() -> OpenAiError {
    OpenAiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "inference_unavailable",
        "the node's inference backend is not answering",
    )
}

impl Backend {
    pub fn new(base: Url, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // The model server is on this host: never through a proxy from the environment.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            base,
            http,
            timeout,
            models: Arc::new(Mutex::new(None)),
        })
    }

    /// Model ids the server lists now (`GET /v1/models`).
    pub async fn list_models(&self) -> Result<Vec<String>, OpenAiError> {
        let url = self.url(cynode_contracts::routes::inference::openai::MODELS)?;
        let answer = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|_| unreachable())?;
        if !answer.status().is_success() {
            return Err(unreachable());
        }
        let body: serde_json::Value = answer.json().await.map_err(|_| {
            OpenAiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_upstream_answer",
                "the node's inference backend answered with an unreadable model list",
            )
        })?;
        let ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        *self.models.lock().await = Some((Instant::now(), ids.clone()));
        Ok(ids)
    }

    /// Whether the server serves `model`; a miss in a fresh list asks the server again, so a
    /// model pulled a moment ago is found.
    async fn serves(&self, model: &str) -> Result<bool, OpenAiError> {
        if let Some((at, ids)) = self.models.lock().await.as_ref()
            && at.elapsed() < MODEL_LIST_TTL
            && ids.iter().any(|id| id == model)
        {
            return Ok(true);
        }
        Ok(self.list_models().await?.iter().any(|id| id == model))
    }

    fn url(&self, path: &str) -> Result<Url, OpenAiError> {
        self.base.join(path.trim_start_matches('/')).map_err(|_| {
            OpenAiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "invalid request path",
            )
        })
    }

    /// Forwards one request to `path` on the model server and streams the answer back.
    ///
    /// A JSON body is checked before anything is sent: it must parse, and where the route needs
    /// a model (`needs_model`) it must name one the server lists (404 `model_not_found`
    /// otherwise, whatever the server itself would do with an unknown name).
    pub async fn forward(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&HeaderValue>,
        body: Bytes,
        needs_model: bool,
        usage: Option<Arc<Usage>>,
    ) -> Response {
        match self
            .try_forward(method, path, content_type, body, needs_model, usage)
            .await
        {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn try_forward(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&HeaderValue>,
        body: Bytes,
        needs_model: bool,
        usage: Option<Arc<Usage>>,
    ) -> Result<Response, OpenAiError> {
        // Served models only (checked below), so the label set stays small.
        let mut model = None;
        if method == Method::POST {
            let request: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                OpenAiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("malformed JSON body: {e}"),
                )
            })?;
            if !request.is_object() {
                return Err(OpenAiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "the request body must be a JSON object",
                ));
            }
            if needs_model {
                let model = request["model"].as_str().unwrap_or_default();
                if model.is_empty() {
                    return Err(OpenAiError::new(
                        StatusCode::BAD_REQUEST,
                        "missing_model",
                        "`model` is required",
                    ));
                }
                if !self.serves(model).await? {
                    return Err(OpenAiError::new(
                        StatusCode::NOT_FOUND,
                        "model_not_found",
                        format!("the model `{model}` does not exist on this node"),
                    ));
                }
            }
            model = request["model"].as_str().map(str::to_owned);
        }
        let model = model.unwrap_or_else(|| "none".to_owned());
        if let Some(usage) = &usage {
            usage.count_request();
            METRICS.sandbox_inference_request(&model);
        }
        let mut request = self
            .http
            .request(method, self.url(path)?)
            .timeout(self.timeout);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type.clone());
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let answer = request.send().await.map_err(|e| {
            if e.is_timeout() {
                OpenAiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "the model did not answer in time",
                )
            } else {
                unreachable()
            }
        })?;
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let answer_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let streamed = answer_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.starts_with("text/event-stream") || v.starts_with("application/x-ndjson")
            });
        let mut response = if streamed {
            let event_stream = answer_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            Response::new(Body::from_stream(passthrough(
                answer,
                usage,
                model,
                event_stream,
            )))
        } else {
            let bytes = read_capped(answer).await?;
            if let Some(usage) = &usage {
                let mut scanner = UsageScanner::default();
                scanner.whole(&bytes);
                let found = scanner.found();
                usage.add(found);
                METRICS.sandbox_inference_tokens(&model, found.prompt, found.completion);
            }
            Response::new(Body::from(bytes))
        };
        *response.status_mut() = status;
        if let Some(answer_type) = answer_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, answer_type);
        }
        if streamed {
            // Tell any proxy in front of us not to hold the events back.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        Ok(response)
    }
}

async fn read_capped(answer: reqwest::Response) -> Result<Bytes, OpenAiError> {
    let too_big = || {
        OpenAiError::new(
            StatusCode::BAD_GATEWAY,
            "bad_upstream_answer",
            "the inference backend's answer is too large",
        )
    };
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut collected = Vec::new();
    let mut stream = answer.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            OpenAiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the inference backend broke off its answer",
            )
        })?;
        if collected.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_big());
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// The answer's chunks as they arrive, with usage scanned on the way. If the backend breaks off
/// mid-stream the client gets a final error event (SSE) or error line (NDJSON) and a clean end.
fn passthrough(
    answer: reqwest::Response,
    usage: Option<Arc<Usage>>,
    model: String,
    event_stream: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let mut scanner = usage.as_ref().map(|_| UsageScanner::default());
    let mut upstream = answer.bytes_stream();
    async_stream(move |tx| async move {
        while let Some(chunk) = upstream.next().await {
            match chunk {
                Ok(bytes) => {
                    if let Some(scanner) = scanner.as_mut() {
                        scanner.feed(&bytes);
                    }
                    if tx.send(Ok(bytes)).await.is_err() {
                        break;
                    }
                }
                Err(_) => {
                    tracing::warn!("the inference backend broke off a streamed answer");
                    let error = json!({"error": {"message": "the inference backend failed mid-stream",
                        "type": "server_error", "param": null, "code": "upstream_error"}});
                    let line = if event_stream {
                        format!("data: {error}\n\n")
                    } else {
                        format!("{error}\n")
                    };
                    let _ = tx.send(Ok(Bytes::from(line))).await;
                    break;
                }
            }
        }
        if let (Some(usage), Some(scanner)) = (usage, scanner) {
            let found = scanner.found();
            usage.add(found);
            METRICS.sandbox_inference_tokens(&model, found.prompt, found.completion);
        }
    })
}

/// A stream fed by a task through a small channel: the producer waits while the client is slow,
/// so nothing is buffered beyond a few chunks.
fn async_stream<F, Fut>(producer: F) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(producer(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
