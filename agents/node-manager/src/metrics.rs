//! The node manager's Prometheus metrics, served at `GET /metrics` on a listener of its own
//! (`metrics.listen` in node.yaml, off by default; keep it on loopback): whether the node is
//! healthy, capability reports, and configurations applied in place or not. The worker API has
//! its own (`metrics.worker_listen`): sandboxes, their latency, requests by route.
//!
//! One registry per process, as Prometheus' client libraries keep: the recording points are in
//! supervision and reconfiguration, and a process has one set of these counts.

use std::sync::LazyLock;

use axum::Router;
use axum::routing::get;
use cynode_contracts::routes;
use cynode_service_kit::http::not_found_fallback;
use cynode_service_kit::metrics::render;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    healthy: Gauge,
    reports: Family<ResultLabels, Counter>,
    configs: Family<ResultLabels, Counter>,
}

/// This process's metrics.
pub static METRICS: LazyLock<NodeMetrics> = LazyLock::new(NodeMetrics::new);

impl NodeMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("cynode_node");
        let healthy = Gauge::default();
        registry.register(
            "healthy",
            "1 while the worker API (and inference, where offered) answer the health check",
            healthy.clone(),
        );
        let reports = Family::<ResultLabels, Counter>::default();
        registry.register(
            "capability_reports",
            "Capability reports sent, by result (ok, failed)",
            reports.clone(),
        );
        let configs = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_changes",
            "New configuration versions, by what became of them (applied, rolled_back, restart)",
            configs.clone(),
        );
        Self {
            registry,
            healthy,
            reports,
            configs,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.set(i64::from(healthy));
    }

    pub fn reported(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reports.get_or_create(&ResultLabels { result }).inc();
    }

    /// A new configuration version was `applied` or `rolled_back` in place, or needs a
    /// `restart`.
    pub fn config_change(&self, result: &'static str) {
        self.configs.get_or_create(&ResultLabels { result }).inc();
    }
}

/// The metrics listener's routes: `/metrics` and nothing else.
pub fn router() -> Router {
    Router::new()
        .route(routes::METRICS, get(|| async { render(&METRICS.registry) }))
        .fallback(not_found_fallback)
}

/// Serves [`router`] on `addr` until the process ends. Bound before the node manager confines
/// itself; a bind failure is fatal, like any other start-up mistake in node.yaml.
pub async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(())
}
