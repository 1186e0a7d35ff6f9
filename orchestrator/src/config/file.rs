//! What the configuration file may hold, and reading it.

use std::path::{Path, PathBuf};

use cynode_contracts::worker::SandboxResources;
use cynode_service_kit::config::FileError;
use cynode_service_kit::duration::Seconds;
use serde::Deserialize;

use super::ConfigError;

/// Where the file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cynode/orchestrator.toml";

/// What the file may contain. Every key is optional; unknown keys are an error so that a typo
/// does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) public_url: Option<String>,
    pub(super) control_plane_listen_addr: Option<String>,
    pub(super) user_gateway_listen_addr: Option<String>,
    pub(super) metrics_listen_addr: Option<String>,
    pub(super) mcp_listen_addr: Option<String>,
    pub(super) mcp_public_url: Option<String>,
    pub(super) mcp_allowed_hosts: Option<Vec<String>>,
    pub(super) mcp_tools_disabled: Option<Vec<String>>,
    pub(super) mcp_token_ttl: Option<Seconds>,
    pub(super) jwt_access_duration: Option<Seconds>,
    pub(super) jwt_refresh_duration: Option<Seconds>,
    pub(super) jwt_node_duration: Option<Seconds>,
    pub(super) rate_limit_per_minute: Option<u32>,
    pub(super) max_request_body_mb: Option<u64>,
    pub(super) request_timeout: Option<Seconds>,
    pub(super) dispatch_http_timeout: Option<Seconds>,
    pub(super) dispatch_concurrency: Option<usize>,
    pub(super) dispatch_claim_batch: Option<usize>,
    pub(super) dispatch_max_attempts: Option<i32>,
    pub(super) dispatch_retry_base: Option<Seconds>,
    pub(super) dispatch_lease: Option<Seconds>,
    pub(super) node_stale_after: Option<Seconds>,
    pub(super) telemetry_pull_interval: Option<Seconds>,
    pub(super) sandbox_image: Option<String>,
    pub(super) inference_model: Option<String>,
    pub(super) pm_model: Option<String>,
    pub(super) pm_required: Option<bool>,
    pub(super) pm_max_steps: Option<u32>,
    pub(super) pm_max_tokens: Option<u32>,
    pub(super) pm_model_timeout: Option<Seconds>,
    pub(super) pm_step_retries: Option<u32>,
    pub(super) workflow_lease_ttl: Option<Seconds>,
    pub(super) workflow_resume_interval: Option<Seconds>,
    pub(super) node_inference_image: Option<String>,
    pub(super) node_inference_port: Option<u16>,
    pub(super) node_inference_command: Option<String>,
    pub(super) node_sandbox_limits: Option<SandboxResources>,
    pub(super) database_pool_size: Option<u32>,
    pub(super) user_gateway_public_url: Option<String>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) console_dir: Option<PathBuf>,
    pub(super) console_session_duration: Option<Seconds>,
    pub(super) database_url_file: Option<PathBuf>,
    pub(super) jwt_secret_file: Option<PathBuf>,
    pub(super) node_registration_psk_file: Option<PathBuf>,
    pub(super) bootstrap_admin_password_file: Option<PathBuf>,
    pub(super) worker_token_key_file: Option<PathBuf>,
    pub(super) worker_token_key_previous_file: Option<PathBuf>,
    pub(super) workflow_runner_bearer_token_file: Option<PathBuf>,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    cynode_service_kit::config::read_file(path, None).map_err(|e| match e {
        FileError::Read { path, source } => ConfigError::Read { path, source },
        FileError::Parse { path, message } => ConfigError::Parse { path, message },
        FileError::Extension(path) => ConfigError::Extension(path),
    })
}
