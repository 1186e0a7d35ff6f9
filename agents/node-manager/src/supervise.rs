//! After `READY=1`: ping the watchdog only while the worker API and inference answer, send
//! capability reports on schedule, renew the node JWT before it expires, and on SIGTERM stop
//! what start-up started. A dead worker API ends the process with an error, so that systemd's
//! `Restart=on-failure` brings the whole node back in order.
//!
//! With every report it also fetches the node configuration: the orchestrator issues a new
//! `config_version` whenever a report or its own settings change the content, and dispatches
//! only to nodes that acked the current one. Applying a new configuration means a new worker API
//! and inference backend, which is exactly start-up, so the node stops cleanly and exits with
//! [`crate::EXIT_CONFIG_CHANGED`]; systemd restarts it and the fresh start acks the new version.

use std::future::Future;
use std::pin::Pin;

use cynode_service_kit::notify;

use crate::NodeError;
use crate::model_server::ModelSnapshot;
use crate::startup::{DEFAULT_HEALTH_INTERVAL, Node, Started};

pub async fn run(
    node: &mut Node,
    started: Started,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<(), NodeError> {
    let health_every = notify::watchdog_interval().unwrap_or(DEFAULT_HEALTH_INTERVAL);
    let mut health = tokio::time::interval(health_every);
    let report_every = node.config.capability_report_interval;
    let mut reports =
        tokio::time::interval_at(tokio::time::Instant::now() + report_every, report_every);
    let mut worker_exit = started
        .worker
        .as_ref()
        .map(crate::worker::WorkerProcess::exit_watch);
    let mut degraded = false;
    let mut renew_retry_at = None;
    // The served models are watched more often than the full report is sent, so that a model
    // pulled or unloaded reaches the orchestrator within seconds.
    let mut model_watch = tokio::time::interval(MODEL_WATCH_INTERVAL.min(report_every));
    // `None` until the first report from here: the registration report was taken before
    // inference was up (or a model pulled), so the first look after READY is always sent.
    let mut reported_models: Option<Option<ModelSnapshot>> = None;

    let outcome = loop {
        let renew_at = renew_retry_at.unwrap_or_else(|| {
            let renew_in = (node.orchestrator.renew_at() - chrono::Utc::now())
                .to_std()
                .unwrap_or_default();
            tokio::time::Instant::now() + renew_in
        });
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            status = async {
                match worker_exit.as_mut() {
                    Some(rx) => rx.wait_for(Option::is_some).await.ok().and_then(|s| *s),
                    None => std::future::pending().await,
                }
            } => {
                let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                break Err(NodeError::WorkerDied(status));
            }
            _ = health.tick() => {
                match health_problem(node, &started).await {
                    None => {
                        if degraded {
                            notify::status("ready: worker API and inference answer again");
                            degraded = false;
                        }
                        notify::watchdog();
                    }
                    // No watchdog ping: if this lasts, systemd restarts the node in order.
                    Some(problem) => {
                        degraded = true;
                        tracing::warn!(problem, "node unhealthy");
                        notify::status(&format!("degraded: {problem}"));
                    }
                }
            }
            _ = reports.tick() => {
                let now = node.model_snapshot().await;
                let changed = report_and_check(node, now.as_ref()).await;
                reported_models = Some(now);
                if let Some(changed) = changed {
                    break Err(changed);
                }
            }
            _ = model_watch.tick() => {
                let now = node.model_snapshot().await;
                if reported_models.as_ref() != Some(&now) {
                    tracing::info!(
                        available = ?now.as_ref().map(|m| &m.available),
                        loaded = ?now.as_ref().map(|m| &m.loaded),
                        "served models changed; reporting"
                    );
                    let changed = report_and_check(node, now.as_ref()).await;
                    reported_models = Some(now);
                    if let Some(changed) = changed {
                        break Err(changed);
                    }
                }
            }
            () = tokio::time::sleep_until(renew_at) => {
                let report = node.capability_report().await;
                match node.orchestrator.register(&report).await {
                    Ok(bootstrap) => {
                        node.state.save_registration(&node.config.node_slug, bootstrap)?;
                        renew_retry_at = None;
                        tracing::info!("node JWT renewed");
                    }
                    // A 401 later re-registers on demand anyway; retry the renewal after a pause.
                    Err(e) => {
                        tracing::warn!(error = %e, "JWT renewal failed; retrying in 30s");
                        renew_retry_at = Some(
                            tokio::time::Instant::now() + std::time::Duration::from_secs(30),
                        );
                    }
                }
            }
        }
    };
    notify::stopping();
    notify::status("stopping the worker API and the inference container");
    let stopped = node.stop(started).await;
    outcome.and(stopped)
}

/// How often the served models are compared with the last report.
const MODEL_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends a capability report with `models`, then asks whether the configuration changed.
async fn report_and_check(node: &mut Node, models: Option<&ModelSnapshot>) -> Option<NodeError> {
    let report = node.report_with(models);
    match node.orchestrator.report(&report).await {
        Ok(()) => tracing::debug!("capability report sent"),
        Err(e) => tracing::warn!(error = %e, "capability report failed"),
    }
    let changed = config_change(node, &report).await?;
    tracing::warn!("{changed}");
    notify::status(&changed.to_string());
    Some(changed)
}

/// The orchestrator's current `config_version` if it is not the one this process acked. An
/// unreachable orchestrator is no change: the next interval asks again.
async fn config_change(
    node: &mut Node,
    report: &cynode_contracts::node::NodeCapabilityReport,
) -> Option<NodeError> {
    let current = match node.orchestrator.fetch_config(report).await {
        Ok(current) => current.config_version,
        Err(e) => {
            tracing::warn!(error = %e, "configuration check failed");
            return None;
        }
    };
    let acked = node.acked_config_version.as_deref().unwrap_or("none");
    (current != acked).then(|| NodeError::ConfigChanged {
        from: acked.to_owned(),
        to: current,
    })
}

async fn health_problem(node: &Node, started: &Started) -> Option<String> {
    if let Some(worker) = &started.worker
        && !worker.healthy(&node.http).await
    {
        return Some("the worker API does not answer /healthz".into());
    }
    if started.inference.is_some() && node.models.snapshot().await.is_none() {
        return Some(format!(
            "inference at {} does not answer",
            node.config.inference.url
        ));
    }
    None
}
