//! The node manager's own confinement, derived from its configuration.

use std::path::{Path, PathBuf};

use cynode_service_kit::hardening::{PathAccess, Policy};

use super::settings::Config;

/// What the node manager keeps once started (best-effort): the state directory read-write,
/// `/dev/null`; system libraries, config, TLS roots, `/proc`, `/sys`, `/run` and the Podman
/// socket's directory readable (and executable). TCP stays open (orchestrator, inference).
///
/// The worker API binary's directory stays readable and executable, so that the worker can be
/// started again with a new configuration, and node.yaml's directory readable, for SIGHUP.
pub fn node_manager_policy(config: &Config) -> Policy {
    let (state_dir, podman_socket) = (&config.state_dir, &config.sandbox.podman_socket);
    let mut read_only: Vec<PathBuf> = [
        "/etc",
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/proc",
        "/sys",
        "/nix/store",
        "/run",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    read_only.extend(podman_socket.parent().map(Path::to_owned));
    read_only.extend(config.worker.binary.parent().map(Path::to_owned));
    let mut readable: Vec<PathBuf> = config
        .source
        .iter()
        .filter_map(|file| file.parent().map(Path::to_owned))
        .collect();
    // A PSK file named in node.yaml, read again on SIGHUP.
    readable.extend(
        config
            .secret_files
            .iter()
            .filter_map(|file| file.parent().map(Path::to_owned)),
    );
    readable.retain(|dir| !dir.as_os_str().is_empty());
    Policy::best_effort()
        .allow(
            PathAccess::ReadWrite,
            [state_dir.as_path(), Path::new("/dev/null")],
        )
        .allow(PathAccess::ReadExecute, read_only)
        .allow(PathAccess::Read, readable)
}
