//! The worker API's Prometheus metrics, served at `GET /metrics` on a listener of their own
//! (`--metrics-listen`, off by default; keep it on loopback): requests of every route (the
//! inference routes included) by template, method and status; sandboxes running now; how long a
//! sandbox took to start and a run took, by how it ended; sandboxes' model requests and tokens
//! by model. No label holds a job id or any other user data.
//!
//! One registry per process, like Prometheus' own client libraries keep: the recording points
//! are deep in the job lifecycle, and a process has one set of these counts.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use cynode_contracts::routes;
use cynode_contracts::worker::RunJobResponse;
use cynode_service_kit::http::not_found_fallback;
use cynode_service_kit::metrics::{HttpMetrics, latency_buckets, render};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    /// The run's `RunStatus` as its wire string (`RunStatus::as_str`).
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    /// `prompt` or `completion`.
    direction: &'static str,
}

#[derive(Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    http: HttpMetrics,
    running: Gauge,
    start: Histogram,
    runs: Family<EndLabels, Histogram, fn() -> Histogram>,
    inference_requests: Family<ModelLabels, Counter>,
    inference_tokens: Family<TokenLabels, Counter>,
}

/// This process's metrics.
pub static METRICS: LazyLock<WorkerMetrics> = LazyLock::new(WorkerMetrics::new);

impl WorkerMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("cynode_worker");
        let http = HttpMetrics::register(&mut registry);
        let running = Gauge::default();
        registry.register(
            "sandboxes_running",
            "Jobs with a live run on this node now",
            running.clone(),
        );
        let start = Histogram::new(latency_buckets());
        registry.register(
            "sandbox_start_seconds",
            "From a job's admission to its sandbox's process starting (image, pod, container)",
            start.clone(),
        );
        let runs: Family<EndLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "sandbox_run_seconds",
            "A sandbox run from its start to its end, by how it ended",
            runs.clone(),
        );
        let inference_requests = Family::<ModelLabels, Counter>::default();
        registry.register(
            "sandbox_inference_requests",
            "Model requests sandboxes made through their sidecar, by model (`none`: a route without one)",
            inference_requests.clone(),
        );
        let inference_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "sandbox_inference_tokens",
            "Tokens in the answers to sandboxes' model requests, by model and direction",
            inference_tokens.clone(),
        );
        Self {
            registry,
            http,
            running,
            start,
            runs,
            inference_requests,
            inference_tokens,
        }
    }

    /// How many jobs have a live run now.
    pub fn set_running(&self, live: usize) {
        self.running.set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    /// A run that was admitted at `admitted` ended with `result`.
    pub fn run_ended(&self, admitted: chrono::DateTime<chrono::Utc>, result: &RunJobResponse) {
        let seconds = |d: chrono::TimeDelta| d.to_std().unwrap_or(Duration::ZERO).as_secs_f64();
        self.start.observe(seconds(result.started_at - admitted));
        self.runs
            .get_or_create(&EndLabels {
                status: result.status.as_str(),
            })
            .observe(seconds(result.ended_at - result.started_at));
    }
}

impl WorkerMetrics {
    /// A sandbox's model request, on its way to the model server.
    pub fn sandbox_inference_request(&self, model: &str) {
        self.inference_requests
            .get_or_create(&ModelLabels {
                model: model.to_owned(),
            })
            .inc();
    }

    /// Tokens found in the answer to a sandbox's model request. Plain counts: the metrics
    /// are recorded from everywhere and depend on no other module of the worker.
    pub fn sandbox_inference_tokens(&self, model: &str, prompt: u64, completion: u64) {
        for (direction, n) in [("prompt", prompt), ("completion", completion)] {
            self.inference_tokens
                .get_or_create(&TokenLabels {
                    model: model.to_owned(),
                    direction,
                })
                .inc_by(n);
        }
    }
}

/// Middleware of the API router: counts every answered request by its route template.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    METRICS.http.observe(
        route.as_deref(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn router() -> Router {
    Router::new()
        .route(routes::METRICS, get(|| async { render(&METRICS.registry) }))
        .fallback(not_found_fallback)
}
