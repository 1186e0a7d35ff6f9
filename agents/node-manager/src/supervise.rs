//! After `READY=1`: ping the watchdog only while the worker API and inference answer, send
//! capability reports on schedule, renew the node JWT before it expires, and on SIGTERM stop
//! what start-up started. A dead worker API ends the process with an error, so that systemd's
//! `Restart=on-failure` brings the whole node back in order.
//!
//! With every report, and every `orchestrator.poll_interval_seconds` if that is shorter, it
//! also fetches the node configuration: the orchestrator issues a new `config_version` whenever
//! a report or its own settings change the content, and dispatches only to nodes that acked the
//! current one. A new version is applied in place where that is safe ([`crate::reconfigure`]:
//! a new worker API after the old one drained, then the ack); one that changes the inference
//! backend needs start-up, so the node stops cleanly and exits with
//! [`crate::EXIT_CONFIG_CHANGED`]; systemd restarts it and the fresh start acks the new version.
//!
//! SIGHUP reads node.yaml again: new labels and `sandbox.max_concurrency` apply at once and are
//! reported right away; other changed keys are logged as needing a restart.

use std::future::Future;
use std::pin::Pin;

use cynode_service_kit::notify;

use crate::NodeError;
use crate::metrics::METRICS;
use crate::model_server::ModelSnapshot;
use crate::reconfigure::{self, Change};
use crate::startup::{DEFAULT_HEALTH_INTERVAL, Node, Started};

/// `hangup` is SIGHUP, listened to since the process started (see [`crate::run`]).
pub async fn run(
    node: &mut Node,
    mut started: Started,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
    mut hangup: Option<tokio::signal::unix::Signal>,
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
    // Reports fetch the configuration too; a shorter poll interval adds checks in between.
    let poll_every = node.config.config_poll_interval;
    let mut polls = (poll_every < report_every)
        .then(|| tokio::time::interval_at(tokio::time::Instant::now() + poll_every, poll_every));
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
                        METRICS.set_healthy(true);
                        if degraded {
                            notify::status("ready: worker API and inference answer again");
                            degraded = false;
                        }
                        notify::watchdog();
                    }
                    // No watchdog ping: if this lasts, systemd restarts the node in order.
                    Some(problem) => {
                        METRICS.set_healthy(false);
                        degraded = true;
                        tracing::warn!(problem, "node unhealthy");
                        notify::status(&format!("degraded: {problem}"));
                    }
                }
            }
            _ = reports.tick() => {
                let reported = report_now(node, &mut started, &mut reported_models, health_every).await;
                if let Err(e) = reported {
                    break Err(e);
                }
                worker_exit = started.worker.as_ref().map(crate::worker::WorkerProcess::exit_watch);
            }
            _ = async {
                match polls.as_mut() {
                    Some(polls) => polls.tick().await,
                    None => std::future::pending().await,
                }
            } => {
                let report = node.capability_report().await;
                if let Err(e) = check_config(node, &mut started, &report, health_every).await {
                    break Err(e);
                }
                worker_exit = started.worker.as_ref().map(crate::worker::WorkerProcess::exit_watch);
            }
            _ = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if reload(node) {
                    let reported = report_now(node, &mut started, &mut reported_models, health_every).await;
                    if let Err(e) = reported {
                        break Err(e);
                    }
                    worker_exit = started.worker.as_ref().map(crate::worker::WorkerProcess::exit_watch);
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
                    let checked = report_and_check(node, &mut started, now.as_ref(), health_every).await;
                    reported_models = Some(now);
                    if let Err(e) = checked {
                        break Err(e);
                    }
                    worker_exit = started.worker.as_ref().map(crate::worker::WorkerProcess::exit_watch);
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

/// Reports with the models served now (remembered in `reported_models`), then checks the
/// configuration.
async fn report_now(
    node: &mut Node,
    started: &mut Started,
    reported_models: &mut Option<Option<ModelSnapshot>>,
    ping_every: std::time::Duration,
) -> Result<(), NodeError> {
    let now = node.model_snapshot().await;
    let checked = report_and_check(node, started, now.as_ref(), ping_every).await;
    *reported_models = Some(now);
    checked
}

/// Sends a capability report with `models`, then checks the configuration.
async fn report_and_check(
    node: &mut Node,
    started: &mut Started,
    models: Option<&ModelSnapshot>,
    ping_every: std::time::Duration,
) -> Result<(), NodeError> {
    let report = node.report_with(models);
    let sent = node.orchestrator.report(&report).await;
    METRICS.reported(sent.is_ok());
    match sent {
        Ok(()) => tracing::debug!("capability report sent"),
        Err(e) => tracing::warn!(error = %e, "capability report failed"),
    }
    check_config(node, started, &report, ping_every).await
}

/// Fetches the configuration; a `config_version` other than the acked one (and not one that
/// already failed) is applied in place, or ends the process with
/// [`NodeError::ConfigChanged`] when it needs start-up. An unreachable orchestrator is no
/// change: the next check asks again.
async fn check_config(
    node: &mut Node,
    started: &mut Started,
    report: &cynode_contracts::node::NodeCapabilityReport,
    ping_every: std::time::Duration,
) -> Result<(), NodeError> {
    let current = match node.orchestrator.fetch_config(report).await {
        Ok(current) => current,
        Err(e) => {
            tracing::warn!(error = %e, "configuration check failed");
            return Ok(());
        }
    };
    let acked = node.acked_config_version.as_deref().unwrap_or("none");
    if current.config_version == acked
        || node.failed_config_version.as_deref() == Some(current.config_version.as_str())
    {
        return Ok(());
    }
    let change = match node.applied.as_ref() {
        Some(applied) => reconfigure::classify(&node.config, applied, &current),
        None => Change::Restart("nothing was applied yet"),
    };
    if let Change::Restart(why) = change {
        let changed = NodeError::ConfigChanged {
            from: acked.to_owned(),
            to: current.config_version,
        };
        tracing::warn!(reason = why, "{changed}");
        notify::status(&changed.to_string());
        METRICS.config_change("restart");
        return Err(changed);
    }
    let outcome = node
        .apply_in_place(started, current, change, report, ping_every)
        .await?;
    METRICS.config_change(match outcome {
        reconfigure::Outcome::Applied => "applied",
        reconfigure::Outcome::RolledBack => "rolled_back",
    });
    Ok(())
}

/// SIGHUP: reads node.yaml again and takes what may change while running. Returns whether
/// something the capability report carries changed (so it is reported at once).
fn reload(node: &mut Node) -> bool {
    let Some(path) = node.config.source.clone() else {
        tracing::warn!("SIGHUP: no node.yaml to read again");
        return false;
    };
    let new = match crate::Config::load(&path) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: node.yaml not reloaded; keeping the running settings");
            notify::status(&format!(
                "node.yaml not reloaded, keeping the running settings: {e}"
            ));
            return false;
        }
    };
    let reloaded = node.config.reload_from(&new);
    if !reloaded.need_restart.is_empty() {
        tracing::warn!(
            keys = ?reloaded.need_restart,
            "SIGHUP: node.yaml changed settings that apply only at the next start"
        );
    }
    if reloaded.applied.is_empty() {
        tracing::info!("SIGHUP: node.yaml reloaded; nothing to apply");
        return false;
    }
    tracing::info!(
        keys = ?reloaded.applied,
        labels = ?node.config.labels,
        max_concurrency = ?node.config.sandbox.max_concurrency,
        "SIGHUP: applied; reporting"
    );
    let mut status = format!(
        "node.yaml reloaded: {} applied",
        reloaded.applied.join(", ")
    );
    if !reloaded.need_restart.is_empty() {
        status.push_str(&format!(
            "; {} changed but apply only at the next start",
            reloaded.need_restart.join(", ")
        ));
    }
    notify::status(&status);
    true
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
