//! Why there is no configuration: each error names the file, key or variable at fault.

use std::path::PathBuf;

use cynode_service_kit::config::InvalidSetting;
use cynode_service_kit::secrets::SecretError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the node config {path}: {source} (pass --config PATH)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid node config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("missing config key `{key}` (set it in node.yaml or via {env})")]
    Missing {
        key: &'static str,
        env: &'static str,
    },
    #[error("invalid config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("invalid environment variable {}", .0)]
    Env(#[from] InvalidSetting),
    #[error("orchestrator registration PSK: {0}")]
    Secret(#[from] SecretError),
}
