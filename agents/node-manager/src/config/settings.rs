//! The resolved configuration: what the node manager runs with, every key checked and every
//! default filled in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cynode_contracts::node::InferenceMode;
use cynode_service_kit::secrets::Secret;
use serde::Deserialize;
use url::Url;

/// `sandbox.mode`: whether this node runs sandboxes, and whether it also offers inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    Allow,
    SandboxOnly,
    Disabled,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub orchestrator_url: Url,
    pub psk: Secret,
    /// Environment variables that may carry secrets and must not reach child processes.
    pub secret_env: Vec<String>,
    /// Files the PSK may be read from (`orchestrator.registration_psk_file`,
    /// `NODE_REGISTRATION_PSK_FILE`), which SIGHUP reads again.
    pub secret_files: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub capability_report_interval: Duration,
    /// `orchestrator.poll_interval_seconds` (`CONFIG_POLL_INTERVAL`): how often supervision
    /// fetches the configuration; it is also fetched with every capability report, so a value
    /// at or above the report interval adds nothing. Default: the report interval.
    pub config_poll_interval: Duration,
    pub node_slug: String,
    pub node_name: Option<String>,
    pub labels: Vec<String>,
    pub worker: WorkerSettings,
    pub sandbox: SandboxSettings,
    pub inference: InferenceSettings,
    pub state_dir: PathBuf,
    pub shutdown_grace: Duration,
    /// `metrics.listen`: the node manager's `/metrics`; unset: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// `metrics.worker_listen`: the worker API's `/metrics` (its `--metrics-listen`).
    pub worker_metrics_listen: Option<SocketAddr>,
    /// The file this was read from ([`Config::load`]); SIGHUP reads it again.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub binary: PathBuf,
    pub listen_host: String,
    pub listen_port: u16,
    /// What the node advertises; the orchestrator dispatches here.
    pub advertised_url: Url,
    pub max_request_bytes: Option<u64>,
    pub startup_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    pub podman_socket: PathBuf,
    pub default_image: String,
    pub allowed_images: Vec<String>,
    pub mount_root: PathBuf,
    pub default_timeout_secs: Option<u64>,
    pub max_timeout_secs: Option<u64>,
    /// `sandbox.limits`: what every sandbox may use; unset keys keep the worker API's defaults.
    pub limits: SandboxLimitSettings,
    /// `sandbox.seccomp_base_profile` (`CYNODE_SANDBOX_SECCOMP_BASE`); unset keeps the worker
    /// API's default (containers-common's path).
    pub seccomp_base_profile: Option<PathBuf>,
    /// `sandbox.max_concurrency`: most jobs at once, reported to the orchestrator, which places
    /// no more here (0: none at all). Unset: no limit reported.
    pub max_concurrency: Option<u32>,
}

/// `sandbox.limits` in the node's config file, passed to the worker API as its
/// `--sandbox-*` flags (which check the ranges).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimitSettings {
    pub memory_mib: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
    pub tmp_mib: Option<u64>,
    /// Unset: `/workspace` is a host directory without a size limit (see the worker's
    /// `--sandbox-workspace-mib`).
    pub workspace_mib: Option<u64>,
    pub log_max_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct InferenceSettings {
    pub mode: InferenceMode,
    /// Where the node's single inference server answers (or will, once started).
    pub url: Url,
    /// Used when the orchestrator names no image.
    pub image: String,
    pub container_name: String,
    pub startup_timeout: Duration,
    /// How long start-up waits for a server already expected at `url` (a host service that
    /// starts alongside the node) before it falls back to the orchestrator's container or fails.
    /// Zero: look once.
    pub existing_wait: Duration,
}

impl InferenceSettings {
    /// Whether this node offers inference at all (`inference.mode` and `sandbox.mode`).
    pub fn wanted(&self, sandbox: SandboxMode) -> bool {
        self.mode != InferenceMode::Disabled && sandbox != SandboxMode::SandboxOnly
    }
}
