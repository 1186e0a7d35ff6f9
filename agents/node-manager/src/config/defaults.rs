//! What the node runs with when node.yaml and the environment say nothing.

use std::path::PathBuf;

/// Where systemd installs look for the file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cynode/node.yaml";
pub(super) const DEFAULT_STATE_DIR: &str = "/var/lib/cynode/state";
pub(super) const DEFAULT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";
pub(super) const DEFAULT_SANDBOX_IMAGE: &str = "localhost/cynode-sandbox:latest";
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
