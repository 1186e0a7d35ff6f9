//! `node.yaml` as an operator writes it: every section and key, unknown ones refused by name,
//! secrets never inline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cynode_contracts::node::InferenceMode;
use cynode_service_kit::config::{self as file_config, Format};
use cynode_service_kit::duration::Seconds;
use serde::Deserialize;

use super::error::ConfigError;
use super::settings::{SandboxLimitSettings, SandboxMode};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) version: Option<u32>,
    #[serde(default)]
    pub(super) orchestrator: FileOrchestrator,
    #[serde(default)]
    pub(super) node: FileNode,
    #[serde(default)]
    pub(super) worker_api: FileWorkerApi,
    #[serde(default)]
    pub(super) sandbox: FileSandbox,
    #[serde(default)]
    pub(super) inference: FileInference,
    #[serde(default)]
    pub(super) storage: FileStorage,
    #[serde(default)]
    pub(super) shutdown: FileShutdown,
    #[serde(default)]
    pub(super) metrics: FileMetrics,
}

/// `metrics`: where Prometheus scrapes the node manager and its worker API; unset: not served.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMetrics {
    pub(super) listen: Option<SocketAddr>,
    pub(super) worker_listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOrchestrator {
    pub(super) url: Option<String>,
    /// Name of the environment variable that holds the PSK.
    pub(super) registration_psk_env: Option<String>,
    pub(super) registration_psk_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) timeouts: FileTimeouts,
    pub(super) capability_report_interval_seconds: Option<Seconds>,
    /// How often the node asks for its configuration (`poll_interval_seconds` of the spec).
    pub(super) poll_interval_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTimeouts {
    pub(super) connect_seconds: Option<Seconds>,
    pub(super) request_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileNode {
    pub(super) id: Option<String>,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) labels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWorkerApi {
    pub(super) listen_host: Option<String>,
    pub(super) listen_port: Option<u16>,
    pub(super) public_base_url: Option<String>,
    pub(super) max_request_bytes: Option<u64>,
    pub(super) binary: Option<PathBuf>,
    pub(super) startup_timeout_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSandbox {
    pub(super) mode: Option<SandboxMode>,
    pub(super) podman_socket: Option<PathBuf>,
    pub(super) default_image: Option<String>,
    #[serde(default)]
    pub(super) allowed_images: Vec<String>,
    pub(super) mount_root: Option<PathBuf>,
    /// The host's default container seccomp profile, which the worker tightens for sandboxes.
    pub(super) seccomp_base_profile: Option<PathBuf>,
    #[serde(default)]
    pub(super) timeouts: FileSandboxTimeouts,
    #[serde(default)]
    pub(super) limits: SandboxLimitSettings,
    pub(super) max_concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSandboxTimeouts {
    pub(super) default_seconds: Option<Seconds>,
    pub(super) max_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileInference {
    pub(super) mode: Option<InferenceMode>,
    pub(super) url: Option<String>,
    pub(super) image: Option<String>,
    pub(super) container_name: Option<String>,
    pub(super) startup_timeout_seconds: Option<Seconds>,
    pub(super) existing_wait_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStorage {
    pub(super) state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileShutdown {
    pub(super) grace_seconds: Option<Seconds>,
}

pub(super) fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    // An empty file is an empty mapping, so that the missing keys get named one by one.
    let file: FileConfig =
        file_config::parse_text(text, Format::Yaml).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
    if let Some(v) = file.version
        && v != 1
    {
        return Err(ConfigError::Invalid {
            key: "version".into(),
            reason: format!("unsupported version {v}; this build reads version 1"),
        });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{FULL, env, load};

    #[test]
    fn inline_secrets_and_unknown_keys_are_rejected_by_name() {
        let err = load(
            "orchestrator:\n  url: http://o:1\n  registration_psk: hunter2\n",
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("registration_psk"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the value must not be echoed: {err}"
        );
        let err = load(&format!("{FULL}colour: blue\n"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
