//! The orchestrator's Prometheus metrics, served at `GET /metrics` on both listeners. Counts
//! that live in the database (jobs by status, nodes by status) are read at each scrape, so they
//! are right across several orchestrator processes; what happens in this process (HTTP
//! requests, dispatches) is counted here. No label holds user data: route templates, statuses
//! and outcomes only.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use cynode_service_kit::metrics::{HttpMetrics, latency_buckets, render};
use prometheus_client::encoding::EncodeLabelSet;
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

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    dispatches: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
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
        let jobs = Family::<StatusLabels, Gauge>::default();
        registry.register("jobs", "Jobs in the database by status", jobs.clone());
        let nodes = Family::<StatusLabels, Gauge>::default();
        registry.register("nodes", "Registered nodes by status", nodes.clone());
        Self {
            registry,
            http,
            dispatches,
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
