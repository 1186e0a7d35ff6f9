//! What the node runs with when node.yaml and the environment say nothing. The Podman socket
//! and the sandbox image default to the worker API's own defaults, which the node manager hands
//! on: they are defined once, in `cynode_contracts::worker_cli` (`DEFAULT_PODMAN_SOCKET`,
//! `DEFAULT_IMAGE`).

use std::path::PathBuf;

/// Where systemd installs look for the file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cynode/node.yaml";
pub(super) const DEFAULT_STATE_DIR: &str = "/var/lib/cynode/state";
pub(super) const DEFAULT_INFERENCE_URL: &str = "http://127.0.0.1:11434";
pub(super) const DEFAULT_OLLAMA_IMAGE: &str = "docker.io/ollama/ollama:latest";
pub(super) const DEFAULT_OLLAMA_CONTAINER: &str = "cynodeai-ollama";
/// The PSK's systemd credential name (`LoadCredential=node-registration-psk:...`).
pub const PSK_CREDENTIAL: &str = "node-registration-psk";
pub(super) const PSK_ENV: &str = "NODE_REGISTRATION_PSK";

/// The worker API binary installed next to this one.
pub(super) fn default_worker_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("cynode-worker-api")))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/cynode-worker-api"))
}
