//! The ordered start-up of `node.md` §1.2. Each step announces itself with `STATUS=`; the last
//! one, an `applied` ack the orchestrator accepted, is the only way to `READY=1`.

use std::time::Duration;

use chrono::Utc;
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::node::{
    AckError, ConfigAckStatus, NodeCapabilityReport, NodeConfigAck, NodeConfigurationPayload,
};
use cynode_service_kit::notify;
use cynode_service_kit::secrets::Secret;

use crate::NodeError;
use crate::capabilities::{self, StaticFacts};
use crate::config::{Config, SandboxMode};
use crate::hardening;
use crate::inference::{self, Backend};
use crate::model_server::{ModelServer, ModelSnapshot};
use crate::registration::Orchestrator;
use crate::state::StateDb;
use crate::worker::{self, WorkerProcess};

/// What start-up has brought up so far; whatever is here is stopped on the way out.
#[derive(Debug, Default)]
pub struct Started {
    pub worker: Option<WorkerProcess>,
    pub inference: Option<Backend>,
}

/// The node manager's long-lived handles.
#[derive(Debug)]
pub struct Node {
    pub config: Config,
    pub http: reqwest::Client,
    pub podman: podman_api::Podman,
    /// The node's model server (whether or not it is up yet).
    pub models: ModelServer,
    pub state: StateDb,
    pub orchestrator: Orchestrator,
    pub facts: Option<StaticFacts>,
    /// Whether an inference server already answered at start-up (so this process uses it rather
    /// than starting a container). Decided once; every report carries it as `existing_service`.
    pub inference_found_running: bool,
    /// The `config_version` this process applied and acked; supervision applies (or restarts
    /// for) the orchestrator's current version when it differs.
    pub acked_config_version: Option<String>,
    /// The configuration the running worker API and inference were started with.
    pub applied: Option<NodeConfigurationPayload>,
    /// A version that could not be applied in place and was acked `failed`: not tried again
    /// (the orchestrator issues a new one when its settings change again).
    pub failed_config_version: Option<String>,
}

/// The node's identity secret in its state directory (0600), issued at its first registration.
pub const NODE_SECRET_FILE: &str = "node_secret";

impl Node {
    pub fn new(config: Config) -> Result<Self, NodeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| NodeError::StartupCheck(format!("HTTP client: {e}")))?;
        let podman = podman_api::Podman::unix(&config.sandbox.podman_socket);
        let models = ModelServer::new(http.clone(), config.inference.url.clone());
        let state = StateDb::open(&config.state_dir)?;
        let orchestrator = Orchestrator::new(
            http.clone(),
            &config.orchestrator_url,
            config.psk.clone(),
            config.node_slug.clone(),
        )
        .with_secret_file(config.state_dir.join(NODE_SECRET_FILE));
        Ok(Self {
            config,
            http,
            podman,
            models,
            state,
            orchestrator,
            facts: None,
            inference_found_running: false,
            acked_config_version: None,
            applied: None,
            failed_config_version: None,
        })
    }

    /// What the model server serves now; `None` if inference is off here or nothing answers.
    pub async fn model_snapshot(&self) -> Option<ModelSnapshot> {
        if !self.config.inference.wanted(self.config.sandbox.mode) {
            return None;
        }
        self.models.snapshot().await
    }

    pub async fn capability_report(&self) -> NodeCapabilityReport {
        let models = self.model_snapshot().await;
        self.report_with(models.as_ref())
    }

    /// A report carrying a snapshot the caller already took.
    pub fn report_with(&self, models: Option<&ModelSnapshot>) -> NodeCapabilityReport {
        let facts = self.facts.as_ref().expect("gathered during start-up");
        capabilities::report(&self.config, facts, models, self.inference_found_running)
    }

    pub async fn start(&mut self, started: &mut Started) -> Result<(), NodeError> {
        self.log_previous_run()?;
        notify::status("checking the container runtime and the sandbox mount root");
        self.startup_checks().await?;

        notify::status("collecting node capabilities");
        self.facts = Some(StaticFacts::gather(&self.podman).await);
        self.inference_found_running = self.wait_for_existing_inference().await;
        let report = self.capability_report().await;

        notify::status(&format!(
            "registering with the orchestrator at {}",
            self.config.orchestrator_url
        ));
        let bootstrap = self.orchestrator.register_with_backoff(&report).await?;
        self.state
            .save_registration(&self.config.node_slug, bootstrap)?;
        tracing::info!(node_slug = %self.config.node_slug, "registered");

        notify::status("fetching the node configuration");
        let delivered = self.orchestrator.fetch_config(&report).await?;
        self.state.save_config(&delivered)?;
        tracing::info!(config_version = %delivered.config_version, "configuration fetched");

        if let Err(e) = self.apply(&delivered, started).await {
            self.ack_failed(&report, &delivered, &e).await;
            return Err(e);
        }

        notify::status(&format!(
            "acknowledging configuration {}",
            delivered.config_version
        ));
        let report = self.capability_report().await;
        self.orchestrator
            .ack(
                &report,
                &ack(&self.config, &delivered, ConfigAckStatus::Applied, None),
            )
            .await?;
        self.state
            .record_ack(&delivered.config_version, ConfigAckStatus::Applied, None)?;
        self.acked_config_version = Some(delivered.config_version.clone());
        self.applied = Some(delivered.clone());

        hardening::harden(&hardening::Paths::for_node_manager(&self.config));
        notify::ready(&format!(
            "ready: config {} applied, worker API and inference up",
            delivered.config_version
        ));
        Ok(())
    }

    /// Whether a model server answers at the configured URL now, or within
    /// `inference.existing_wait_seconds` (a host service starting alongside the node); each
    /// second of waiting says so in `STATUS=`, naming the URL.
    async fn wait_for_existing_inference(&self) -> bool {
        if !self.config.inference.wanted(self.config.sandbox.mode) {
            return false;
        }
        let wait = self.config.inference.existing_wait;
        let url = &self.config.inference.url;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.models.snapshot().await.is_some() {
                return true;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                if !wait.is_zero() {
                    tracing::warn!(%url, secs = wait.as_secs(), "no inference server answered within the wait");
                }
                return false;
            }
            notify::status(&format!(
                "waiting up to {}s more for the inference server at {url}",
                left.as_secs().max(1)
            ));
            tokio::time::sleep(left.min(std::time::Duration::from_secs(1))).await;
        }
    }

    /// What the state database remembers of the last run; a changed slug means this state
    /// directory belonged to another node, which an operator should know about.
    fn log_previous_run(&self) -> Result<(), NodeError> {
        if let Some(previous) = self.state.identity()? {
            if previous.node_slug != self.config.node_slug {
                tracing::warn!(
                    previous = %previous.node_slug,
                    current = %self.config.node_slug,
                    "the state directory belonged to another node slug; registering as the new one"
                );
            }
            tracing::info!(jwt_expires_at = %previous.jwt_expires_at, "previously registered");
        }
        if let Some((version, ack)) = self.state.last_config()? {
            tracing::info!(
                config_version = %version,
                ack = ack.as_deref().unwrap_or("none"),
                "last configuration"
            );
        }
        Ok(())
    }

    /// §1.3: the runtime can run containers and the mount root is writable.
    async fn startup_checks(&self) -> Result<(), NodeError> {
        let socket = self.config.sandbox.podman_socket.display();
        self.podman.ping().await.map_err(|e| {
            NodeError::StartupCheck(format!("the Podman API at {socket} does not answer: {e}"))
        })?;
        if self.config.sandbox.mode != SandboxMode::Disabled {
            let root = &self.config.sandbox.mount_root;
            let probe = root.join(".cynode-write-check");
            std::fs::create_dir_all(root)
                .and_then(|()| std::fs::write(&probe, b""))
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| {
                    NodeError::StartupCheck(format!(
                        "the sandbox mount root {} is not writable: {e}",
                        root.display()
                    ))
                })?;
        }
        Ok(())
    }

    /// Steps 7 and 8: the worker API with the delivered token, then inference.
    async fn apply(
        &mut self,
        delivered: &NodeConfigurationPayload,
        started: &mut Started,
    ) -> Result<(), NodeError> {
        notify::status("starting the worker API");
        let args = worker::worker_args(&self.config, delivered)?;
        let token = Secret::new(delivered.worker_api.orchestrator_bearer_token.clone());
        let worker = started
            .worker
            .insert(WorkerProcess::spawn(&self.config, &args, &token).await?);
        notify::status("waiting for the worker API to answer /healthz");
        worker
            .wait_healthy(&self.http, self.config.worker.startup_timeout)
            .await?;
        tracing::info!(pid = worker.pid(), "worker API healthy");

        if !self.config.inference.wanted(self.config.sandbox.mode) {
            tracing::info!("inference is disabled on this node");
            return Ok(());
        }
        let backend = delivered.inference_backend.as_ref();
        let model = backend.map_or("", |b| b.selected_model.as_str());
        notify::status(&format!(
            "waiting for inference at {} to serve model `{model}`",
            self.config.inference.url
        ));
        inference::ensure(
            &self.config.inference,
            backend,
            self.inference_found_running,
            &self.podman,
            &self.models,
            &mut started.inference,
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn ack_failed(
        &mut self,
        report: &NodeCapabilityReport,
        delivered: &NodeConfigurationPayload,
        error: &NodeError,
    ) {
        let kind = match error {
            NodeError::Worker(_) => "worker_api_start_failed",
            NodeError::Inference(_) => "inference_start_failed",
            _ => "config_apply_failed",
        };
        let message = error.to_string();
        let body = ack(
            &self.config,
            delivered,
            ConfigAckStatus::Failed,
            Some(AckError {
                error_type: kind.to_owned(),
                message: message.clone(),
                details: None,
            }),
        );
        match self.orchestrator.ack(report, &body).await {
            Ok(()) => tracing::info!("reported the failed configuration to the orchestrator"),
            Err(e) => {
                tracing::warn!(error = %e, "could not report the failure to the orchestrator")
            }
        }
        let _ = self.state.record_ack(
            &delivered.config_version,
            ConfigAckStatus::Failed,
            Some(&message),
        );
    }

    /// Stops what start-up brought up; Err if something would not stop.
    pub async fn stop(&self, started: Started) -> Result<(), NodeError> {
        let grace = self.config.shutdown_grace;
        let mut problems = Vec::new();
        if let Some(worker) = started.worker
            && !worker.stop(grace).await
        {
            problems.push("the worker API had to be killed");
        }
        if let Some(backend) = started.inference
            && !inference::stop(&self.podman, &backend, grace).await
        {
            problems.push("the inference container could not be removed");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(NodeError::UncleanShutdown(problems.join("; ")))
        }
    }
}

pub(crate) fn ack(
    config: &Config,
    delivered: &NodeConfigurationPayload,
    status: ConfigAckStatus,
    error: Option<AckError>,
) -> NodeConfigAck {
    NodeConfigAck {
        version: PAYLOAD_VERSION,
        node_slug: config.node_slug.clone(),
        config_version: delivered.config_version.clone(),
        ack_at: Utc::now(),
        status,
        error,
        effective_config_hash: None,
        managed_services_status: None,
    }
}

/// How often to probe health when systemd set no watchdog.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
