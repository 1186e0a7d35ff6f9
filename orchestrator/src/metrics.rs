//! The orchestrator's Prometheus metrics, served at `GET /metrics` on a listener of their own
//! (`METRICS_LISTEN_ADDR`), never on the user gateway or the control plane. Counts
//! that live in the database (jobs by status, nodes by status) are read at each scrape, so they
//! are right across several orchestrator processes; what happens in this process (HTTP
//! requests, dispatches) is counted here. No label holds user data: route templates, statuses
//! and outcomes only.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use cynode_service_kit::metrics::{HttpMetrics, latency_buckets, render};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// A model call: who made it (`pm`: the Project Manager; `chat`: a user's chat with a model)
/// and the model that answered (a model a node serves, so the set is bounded).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    kind: &'static str,
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    kind: &'static str,
    model: String,
    /// `prompt` or `completion`.
    direction: &'static str,
}

/// An MCP tool call: the tool (a catalog name, or `unknown`) and how it ended (`ok` or the
/// error type).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: &'static str,
    outcome: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    dispatches: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    queue_wait: Histogram,
    model_calls: Family<ModelLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    mcp_calls: Family<ToolLabels, Histogram, fn() -> Histogram>,
    jobs: Family<StatusLabels, Gauge>,
    nodes: Family<StatusLabels, Gauge>,
    /// One scrape at a time: each clears and refills the database counts.
    scraping: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cynode");
        let http = HttpMetrics::register(&mut registry);
        let dispatches: Family<OutcomeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "dispatch_duration_seconds",
            "A delivery to a worker API from claim to answer, by outcome (ran, retry, interrupted, refused)",
            dispatches.clone(),
        );
        let queue_wait = Histogram::new(latency_buckets());
        registry.register(
            "job_queue_wait_seconds",
            "From a job becoming due (queued, or back after a setback) to its claim by a dispatcher",
            queue_wait.clone(),
        );
        let model_calls: Family<ModelLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "model_call_duration_seconds",
            "A Project Manager model call until its whole answer, by model",
            model_calls.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "model_tokens",
            "Tokens of answered model calls, by caller (pm, chat), model and direction",
            tokens.clone(),
        );
        let mcp_calls: Family<ToolLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register(
            "mcp_tool_call_duration_seconds",
            "MCP tool calls through the enforcement pipeline, by tool and outcome (ok or the error type)",
            mcp_calls.clone(),
        );
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register("jobs", "Jobs in the database by status", jobs.clone());
        let nodes = Family::<StatusLabels, Gauge>::default();
        registry.register("nodes", "Registered nodes by status", nodes.clone());
        Self {
            registry,
            http,
            dispatches,
            queue_wait,
            model_calls,
            tokens,
            mcp_calls,
            jobs,
            nodes,
            scraping: tokio::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// One delivery ended with `outcome` after `elapsed`.
    pub fn dispatched(&self, outcome: &'static str, elapsed: Duration) {
        self.dispatches
            .get_or_create(&OutcomeLabels { outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// A job was claimed `waited` after it became due.
    pub fn claimed(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// A Project Manager model call answered after `elapsed`.
    pub fn pm_call(&self, model: &str, elapsed: Duration) {
        self.model_calls
            .get_or_create(&ModelLabels {
                kind: "pm",
                model: model.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One MCP tool call ended with `outcome` after `elapsed`.
    pub fn mcp_call(&self, tool: &'static str, outcome: &'static str, elapsed: Duration) {
        self.mcp_calls
            .get_or_create(&ToolLabels { tool, outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// Tokens of one answered model call of `kind` (`pm`, `chat`).
    pub fn tokens(&self, kind: &'static str, model: &str, prompt: u64, completion: u64) {
        for (direction, n) in [("prompt", prompt), ("completion", completion)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    kind,
                    model: model.to_owned(),
                    direction,
                })
                .inc_by(n);
        }
    }

    /// The current values; the database counts are read now. Without the database those two
    /// are left out rather than reported stale.
    pub async fn scrape(&self, db: &PgPool) -> Response {
        let _one_at_a_time = self.scraping.lock().await;
        for (family, table) in [(&self.jobs, "jobs"), (&self.nodes, "nodes")] {
            family.clear();
            let counts: Result<Vec<(String, i64)>, _> = sqlx::query_as(&format!(
                "SELECT status, count(*) FROM {table} GROUP BY status"
            ))
            .fetch_all(db)
            .await;
            match counts {
                Ok(counts) => {
                    for (status, count) in counts {
                        family.get_or_create(&StatusLabels { status }).set(count);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "metrics: cannot count {table}"),
            }
        }
        render(&self.registry).into_response()
    }
}
