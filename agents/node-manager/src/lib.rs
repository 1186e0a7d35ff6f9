//! CyNodeAI node manager: the systemd `Type=notify` host agent of a worker node.
//!
//! Start-up follows `node.md` §1.2 in its mandatory order ([`startup`]): runtime checks,
//! capabilities, registration (PSK → node JWT), config fetch, worker API, inference, ack. Only
//! after the orchestrator accepted the `applied` ack does the node send `READY=1`; if the worker
//! API or inference cannot start it acks `failed`, says why in `STATUS=` and exits non-zero
//! (fail-fast). Then [`supervise`] keeps it healthy: watchdog pings, capability reports, JWT
//! renewal, a new configuration applied in place ([`reconfigure`]; a restart only for a new
//! inference backend), node.yaml read again on SIGHUP, and a clean stop of
//! everything it started on SIGTERM.

pub mod capabilities;
pub mod config;
pub mod inference;
pub mod metrics;
pub mod model_server;
pub mod reconfigure;
pub mod registration;
pub mod startup;
pub mod state;
pub mod supervise;
pub mod worker;

use cynode_service_kit::http::shutdown_signal;
use cynode_service_kit::notify;

pub use config::{Config, ConfigError};

/// Self-confinement once start-up is done: service-kit's best-effort policy (failures are logged,
/// the node keeps running) with the paths of [`config::Config::hardening_policy`]. Landlock and
/// an empty bounding set are inherited by children, so it runs only after the worker API child
/// has been spawned.
pub mod hardening {
    pub use cynode_service_kit::hardening::{Policy, Report};

    /// The node manager's policy (see [`crate::config::node_manager_policy`]).
    #[derive(Debug)]
    pub struct Paths;

    impl Paths {
        pub fn for_node_manager(config: &crate::Config) -> Policy {
            crate::config::node_manager_policy(config)
        }
    }

    /// Applies `policy`; a best-effort policy never fails.
    pub fn harden(policy: &Policy) -> Option<Report> {
        match policy.apply() {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!(error = %e, "self-hardening failed");
                None
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("start-up check failed: {0}")]
    StartupCheck(String),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Orchestrator(#[from] registration::OrchestratorError),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    #[error(transparent)]
    Inference(#[from] inference::InferenceError),
    #[error("the worker API exited unexpectedly ({0})")]
    WorkerDied(String),
    #[error("shut down, but {0}")]
    UncleanShutdown(String),
    #[error("configuration changed from {from} to {to}; restarting to apply it")]
    ConfigChanged { from: String, to: String },
}

/// `EX_TEMPFAIL`: the orchestrator issued a new configuration; the process stopped cleanly so
/// that systemd's `Restart=on-failure` starts it again and the fresh start applies and acks it.
/// Must not be in the unit's `RestartPreventExitStatus=`.
pub const EXIT_CONFIG_CHANGED: u8 = 75;

impl NodeError {
    /// The process exit code this error ends with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::ConfigChanged { .. } => EXIT_CONFIG_CHANGED,
            _ => 1,
        }
    }
}

/// Runs the node manager until SIGTERM/SIGINT (Ok) or a fatal error.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // From the start, not only once supervision begins: SIGHUP's default action ends the
    // process, and a reload (`systemctl reload`) may come right after READY=1. One that comes
    // before supervision is kept and handled then.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "SIGHUP will not reload node.yaml"))
        .ok();
    // Before anything confines the process: afterwards it may not bind.
    if let Some(addr) = config.metrics_listen {
        metrics::serve(addr).await.map_err(|e| {
            NodeError::StartupCheck(format!("metrics.listen {addr}: cannot listen: {e}"))
        })?;
    }
    let mut node = startup::Node::new(config)?;
    let mut started = startup::Started::default();
    let outcome = tokio::select! {
        result = node.start(&mut started) => Some(result),
        () = &mut shutdown => None,
    };
    match outcome {
        Some(Ok(())) => supervise::run(&mut node, started, shutdown, hangup).await,
        Some(Err(e)) => {
            notify::status(&format!("failed: {e}"));
            tracing::error!(error = %e, "start-up failed");
            if let Err(stop) = node.stop(started).await {
                tracing::error!(error = %stop, "clean-up after the failed start-up");
            }
            Err(e)
        }
        None => {
            notify::stopping();
            node.stop(started).await
        }
    }
}
