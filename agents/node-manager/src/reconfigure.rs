//! A new `config_version` while the node runs: applied in place where that is safe, else the
//! restart of [`crate::EXIT_CONFIG_CHANGED`].
//!
//! [`classify`] decides. A change of the inference backend needs start-up (pull, container,
//! model check), so it restarts the node. Everything else the orchestrator sends reaches the
//! node through the worker API's command line (sandbox limits, allowed images, timeouts, request
//! cap) or its bearer token: when either differs, the worker is replaced; when neither does,
//! the new version is only acked.
//!
//! Replacing the worker ([`Node::apply_in_place`]) drains the old one first
//! ([`WorkerProcess::drain`]: it stops listening at once, finishes the jobs it runs, exits),
//! and only then starts the new one, so two workers never listen on the port or drive the same
//! sandbox, and no running job is interrupted or run twice. The orchestrator dispatches nothing
//! new to the node meanwhile (its current version is not acked yet). Once the new worker
//! answers `/healthz` the version is recorded and acked `applied`. If it does not, the previous
//! command line is started again, the version acked `failed` with the reason, and the node
//! keeps serving the old configuration; only if that restart fails too does the node exit.

use cynode_contracts::node::{ConfigAckStatus, NodeCapabilityReport, NodeConfigurationPayload};
use cynode_service_kit::notify;
use cynode_service_kit::secrets::Secret;

use crate::NodeError;
use crate::config::Config;
use crate::startup::{Node, Started, ack};
use crate::worker::{self, WorkerProcess};

/// What a new configuration takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing the node runs depends on what changed: ack it.
    AckOnly,
    /// The worker API's command line or token changes: replace the worker.
    ReplaceWorker,
    /// Needs start-up (the reason): stop and exit [`crate::EXIT_CONFIG_CHANGED`].
    Restart(&'static str),
}

/// Compares the configuration the node runs (`applied`) with the orchestrator's `new` one.
pub fn classify(
    config: &Config,
    applied: &NodeConfigurationPayload,
    new: &NodeConfigurationPayload,
) -> Change {
    if config.inference.wanted(config.sandbox.mode)
        && applied.inference_backend != new.inference_backend
    {
        return Change::Restart("the inference backend changed");
    }
    let same_args = match (
        worker::worker_args(config, applied),
        worker::worker_args(config, new),
    ) {
        (Ok(running), Ok(wanted)) => running == wanted,
        // A new configuration the worker cannot take fails in `apply_in_place`, by name.
        _ => false,
    };
    let same_token =
        applied.worker_api.orchestrator_bearer_token == new.worker_api.orchestrator_bearer_token;
    if same_args && same_token {
        Change::AckOnly
    } else {
        Change::ReplaceWorker
    }
}

/// Whether the node took the new configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Acked `failed`; the previous configuration still runs.
    RolledBack,
}

impl Node {
    /// Applies `new` without a restart (see the module docs) and acks it. `Err` only when the
    /// node cannot go on: the previous worker could not be started again.
    pub async fn apply_in_place(
        &mut self,
        started: &mut Started,
        new: NodeConfigurationPayload,
        change: Change,
        report: &NodeCapabilityReport,
        ping_every: std::time::Duration,
    ) -> Result<Outcome, NodeError> {
        let version = new.config_version.clone();
        let previous = self
            .applied
            .clone()
            .expect("start-up applied a configuration");
        tracing::info!(config_version = %version, ?change, "applying the new configuration in place");
        notify::status(&format!("applying config {version}"));
        self.state.save_config(&new)?;
        if change == Change::ReplaceWorker
            && let Err(e) = self.replace_worker(started, &new, ping_every).await
        {
            tracing::error!(config_version = %version, error = %e, "the new configuration cannot run; going back to the previous one");
            notify::status(&format!(
                "config {version} failed: {e}; restarting the worker API of config {}",
                previous.config_version
            ));
            self.restore_worker(started, &previous).await?;
            self.ack_failed(report, &new, &e).await;
            self.failed_config_version = Some(version.clone());
            notify::status(&format!(
                "config {version} failed: {e}; running config {}",
                previous.config_version
            ));
            return Ok(Outcome::RolledBack);
        }
        // Whatever happens to the ack, this is what runs now.
        self.applied = Some(new.clone());
        self.failed_config_version = None;
        notify::status(&format!("acknowledging configuration {version}"));
        let body = ack(&self.config, &new, ConfigAckStatus::Applied, None);
        if let Err(e) = self.orchestrator.ack(report, &body).await {
            // The next check finds the version unacked and, with nothing left to change, acks it.
            tracing::warn!(config_version = %version, error = %e, "applied, but the ack failed; retrying at the next check");
            notify::status(&format!("config {version} applied; the ack failed: {e}"));
            return Ok(Outcome::Applied);
        }
        self.state
            .record_ack(&version, ConfigAckStatus::Applied, None)?;
        self.acked_config_version = Some(version.clone());
        tracing::info!(config_version = %version, "configuration applied in place");
        notify::status(&format!("config {version} applied"));
        Ok(Outcome::Applied)
    }

    /// Drains the running worker, then starts one with `new` and waits for `/healthz`. On
    /// failure no worker of `new` is left running.
    async fn replace_worker(
        &mut self,
        started: &mut Started,
        new: &NodeConfigurationPayload,
        ping_every: std::time::Duration,
    ) -> Result<(), NodeError> {
        let version = &new.config_version;
        // Checked before the running worker is touched.
        let args = worker::worker_args(&self.config, new)?;
        if let Some(old) = started.worker.as_ref() {
            notify::status(&format!(
                "applying config {version}: the worker API finishes its running jobs"
            ));
            let limit = self.drain_limit();
            if !old.drain(limit, ping_every).await {
                tracing::warn!(
                    secs = limit.as_secs(),
                    "the worker API did not finish its jobs in time; stopping it (its runs are interrupted and delivered again)"
                );
            }
            if let Some(old) = started.worker.take() {
                old.stop(self.config.shutdown_grace).await;
            }
        }
        notify::status(&format!(
            "applying config {version}: starting the worker API"
        ));
        let token = Secret::new(new.worker_api.orchestrator_bearer_token.clone());
        self.start_worker(started, &args, &token).await
    }

    /// Starts the worker of the configuration that ran before.
    async fn restore_worker(
        &mut self,
        started: &mut Started,
        previous: &NodeConfigurationPayload,
    ) -> Result<(), NodeError> {
        let args = worker::worker_args(&self.config, previous)?;
        let token = Secret::new(previous.worker_api.orchestrator_bearer_token.clone());
        self.start_worker(started, &args, &token)
            .await
            .map_err(|e| NodeError::WorkerDied(format!("could not start it again: {e}")))
    }

    async fn start_worker(
        &mut self,
        started: &mut Started,
        args: &[String],
        token: &Secret,
    ) -> Result<(), NodeError> {
        let worker = started
            .worker
            .insert(WorkerProcess::spawn(&self.config, args, token).await?);
        if let Err(e) = worker
            .wait_healthy(&self.http, self.config.worker.startup_timeout)
            .await
        {
            if let Some(worker) = started.worker.take() {
                worker.stop(self.config.shutdown_grace).await;
            }
            return Err(e.into());
        }
        tracing::info!(pid = worker.pid(), "worker API healthy");
        Ok(())
    }

    /// How long a drain may take: the running worker's longest job timeout, plus a minute for
    /// starting and collecting a sandbox.
    fn drain_limit(&self) -> std::time::Duration {
        let max_timeout = self
            .applied
            .as_ref()
            .and_then(|applied| worker::worker_cli(&self.config, applied).ok())
            .map_or(
                cynode_contracts::worker_cli::DEFAULT_MAX_TIMEOUT_SECS,
                |cli| cli.max_timeout_secs,
            );
        std::time::Duration::from_secs(max_timeout + 60)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cynode_contracts::node::{
        ConfigEndpoints, ConfigOrchestrator, InferenceBackend, NodeConstraints, WorkerApiConfig,
    };
    use cynode_contracts::worker::SandboxResources;

    use super::*;

    fn payload(version: &str) -> NodeConfigurationPayload {
        NodeConfigurationPayload {
            version: 1,
            config_version: version.into(),
            issued_at: Utc::now(),
            node_slug: "n".into(),
            orchestrator: ConfigOrchestrator {
                base_url: "http://o".into(),
                endpoints: ConfigEndpoints {
                    worker_api_target_url: "http://w:12090".into(),
                    node_report_url: "http://o/r".into(),
                    mcp_gateway_url: None,
                },
            },
            sandbox_registries: vec![],
            require_digest_pinning: false,
            policy: None,
            worker_api: WorkerApiConfig {
                orchestrator_bearer_token: "t".into(),
                orchestrator_bearer_token_expires_at: None,
            },
            inference_backend: Some(InferenceBackend {
                enabled: false,
                image: Some("localhost/inference:1".into()),
                variant: Some("cpu".into()),
                port: 11434,
                env: Default::default(),
                selected_model: "m".into(),
                command: vec![],
            }),
            constraints: Some(NodeConstraints {
                max_request_bytes: None,
                max_job_timeout_seconds: Some(290),
                sandbox_limits: None,
            }),
            notes: String::new(),
        }
    }

    #[test]
    fn only_an_inference_backend_change_needs_a_restart() {
        let config = crate::config::for_tests("");
        let applied = payload("01A");

        // A new version with the same content (e.g. stored content rewritten): ack only.
        assert_eq!(
            classify(&config, &applied, &payload("01B")),
            Change::AckOnly
        );

        // A sandbox limit cap: a new worker command line, in place.
        let mut capped = payload("01B");
        capped.constraints.as_mut().unwrap().sandbox_limits = Some(SandboxResources {
            memory_mib: Some(256),
            ..Default::default()
        });
        assert_eq!(classify(&config, &applied, &capped), Change::ReplaceWorker);
        // The timeout cap and the allowed images are command line too.
        let mut timeout = payload("01B");
        timeout
            .constraints
            .as_mut()
            .unwrap()
            .max_job_timeout_seconds = Some(100);
        assert_eq!(classify(&config, &applied, &timeout), Change::ReplaceWorker);
        // A rotated worker token: the worker gets it on its stdin, so it is replaced.
        let mut token = payload("01B");
        token.worker_api.orchestrator_bearer_token = "rotated".into();
        assert_eq!(classify(&config, &applied, &token), Change::ReplaceWorker);
        // A policy that allows none of the node's images cannot run; the apply says why.
        let mut images = payload("01B");
        images.policy = Some(cynode_contracts::node::NodePolicy {
            sandbox: Some(cynode_contracts::node::SandboxPolicy {
                allowed_images: vec!["elsewhere".into()],
                ..Default::default()
            }),
        });
        assert_eq!(classify(&config, &applied, &images), Change::ReplaceWorker);

        // The inference backend (model, image, ...) needs start-up.
        let mut model = payload("01B");
        model.inference_backend.as_mut().unwrap().selected_model = "other".into();
        assert_eq!(
            classify(&config, &applied, &model),
            Change::Restart("the inference backend changed")
        );
        let mut image = capped.clone();
        image.inference_backend.as_mut().unwrap().image = Some("localhost/inference:2".into());
        assert!(matches!(
            classify(&config, &applied, &image),
            Change::Restart(_)
        ));
        // ... unless this node offers no inference at all.
        let no_inference = crate::config::for_tests("inference: {mode: disabled}\n");
        assert_eq!(classify(&no_inference, &applied, &model), Change::AckOnly);
        let sandbox_only = crate::config::for_tests("sandbox: {mode: sandbox_only}\n");
        assert_eq!(
            classify(&sandbox_only, &applied, &image),
            Change::ReplaceWorker
        );
    }
}
