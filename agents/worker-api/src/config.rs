//! Command line and environment: [`WorkerCli`], shared with the node manager (which renders it),
//! plus what the worker derives from it: job limits, retention, the bearer token and the
//! self-hardening policy.

use std::io::BufRead;
use std::ops::Deref;
use std::path::PathBuf;

use clap::Parser;
pub use cynode_contracts::worker_cli::WorkerCli;
use cynode_service_kit::hardening::{PathAccess, Policy};
use cynode_service_kit::secrets::{self, Secret, SecretError, SecretSource};

use crate::sandbox::{Limits, Resources};

/// The parsed command line. Fields read through [`Deref`] (`config.mount_root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config(pub WorkerCli);

impl Deref for Config {
    type Target = WorkerCli;

    fn deref(&self) -> &WorkerCli {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot read the bearer token from stdin: {0}")]
    Stdin(std::io::Error),
    #[error("the bearer token on stdin is empty")]
    EmptyStdinToken,
    #[error("--default-timeout-secs and --max-timeout-secs must be positive")]
    ZeroTimeout,
    #[error("--job-retention-secs must be positive")]
    ZeroRetention,
}

impl Config {
    /// Parses the process's arguments and env (exits with usage on an error).
    pub fn parse() -> Self {
        Self(WorkerCli::parse())
    }

    /// Parses `args` (the first is the program name) and the env (exits on an error).
    pub fn parse_from<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self(WorkerCli::parse_from(args))
    }

    /// What the worker keeps once started (strict: the caller treats any failure as fatal):
    /// the mount root and the telemetry directory read-write; the Podman socket's directory and
    /// journald's connectable;
    /// `/proc` readable; `/dev/null` and `/dev/urandom`; no TCP bind, and TCP connect only to
    /// the inference server's port when `--inference-url` is set and the MCP gateway's when
    /// `--mcp-gateway-url` is. No abstract Unix sockets, no signals to other processes, no
    /// capabilities.
    pub fn hardening_policy(&self) -> Policy {
        let socket_dir = self
            .podman_socket
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        let ports = [&self.inference_url, &self.mcp_gateway_url]
            .into_iter()
            .filter_map(|url| url.as_ref()?.port_or_known_default());
        Policy::strict()
            .allow(
                PathAccess::ReadWrite,
                [&self.mount_root, &self.telemetry_dir()],
            )
            .allow(
                PathAccess::ConnectUnix,
                [socket_dir, PathBuf::from("/run/systemd/journal")],
            )
            .allow(PathAccess::Read, ["/proc"])
            .allow(PathAccess::ReadWriteFiles, ["/dev/null", "/dev/urandom"])
            .tcp_connect_only(ports)
            .scoped()
    }

    /// The worker's state directory (`--state-dir`, else the mount root); the telemetry
    /// database is `<state_dir>/telemetry/telemetry.db`.
    pub fn state_dir(&self) -> &std::path::Path {
        self.0.state_dir.as_deref().unwrap_or(&self.mount_root)
    }

    /// Where the telemetry database lives: the only part of the state directory the worker
    /// may write once hardened.
    pub fn telemetry_dir(&self) -> PathBuf {
        self.state_dir().join(crate::telemetry::store::DB_DIR)
    }

    /// The job limits this node enforces. The spec's 10 MiB ceiling applies whatever is configured.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        if self.default_timeout_secs == 0 || self.max_timeout_secs == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        let allowed_images = if self.allowed_images.is_empty() {
            vec![self.default_image.clone()]
        } else {
            self.allowed_images.clone()
        };
        Ok(Limits::new(
            self.default_image.clone(),
            allowed_images,
            self.default_timeout_secs,
            self.max_timeout_secs,
            self.max_output_bytes,
        )
        .with_resources(Resources {
            memory_bytes: self.sandbox_memory_mib << 20,
            cpu_millis: self.sandbox_cpu_millis,
            pids: self.sandbox_pids_limit,
            tmp_bytes: self.sandbox_tmp_mib << 20,
            workspace_bytes: self.sandbox_workspace_mib.map(|mib| mib << 20),
            log_bytes: self.sandbox_log_max_bytes,
        }))
    }

    /// How long finished jobs' directories are kept.
    pub fn job_retention(&self) -> Result<std::time::Duration, ConfigError> {
        match self.job_retention_secs {
            0 => Err(ConfigError::ZeroRetention),
            secs => Ok(std::time::Duration::from_secs(secs)),
        }
    }

    pub fn request_limit(&self) -> usize {
        let cap = self
            .max_request_bytes
            .min(cynode_contracts::worker::MAX_REQUEST_BYTES);
        usize::try_from(cap).unwrap_or(usize::MAX)
    }

    /// The token the orchestrator must present. From stdin with `--bearer-token-stdin`; else the
    /// credential `worker-api-bearer-token`, `WORKER_API_BEARER_TOKEN_FILE` or `WORKER_API_BEARER_TOKEN`.
    pub fn bearer_token(&self) -> Result<Secret, ConfigError> {
        if self.bearer_token_stdin {
            return read_token_line(std::io::stdin().lock());
        }
        Ok(secrets::load(&SecretSource {
            env: "WORKER_API_BEARER_TOKEN",
            credential: "worker-api-bearer-token",
            config_file: None,
        })?)
    }
}

/// One line: node-manager may keep the pipe open, so we do not wait for EOF.
fn read_token_line(mut input: impl BufRead) -> Result<Secret, ConfigError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(ConfigError::Stdin)?;
    let token = line.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(ConfigError::EmptyStdinToken);
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_token_is_the_first_line() {
        let token = read_token_line("s3cret\r\nrest".as_bytes()).unwrap();
        assert_eq!(token.expose(), "s3cret");
        assert!(matches!(
            read_token_line("\n".as_bytes()),
            Err(ConfigError::EmptyStdinToken)
        ));
        assert!(matches!(
            read_token_line("".as_bytes()),
            Err(ConfigError::EmptyStdinToken)
        ));
    }

    #[test]
    fn allowlist_defaults_to_the_default_image_and_request_limit_never_exceeds_10_mib() {
        let config = Config::parse_from(["w", "--max-request-bytes", "999999999"]);
        let limits = config.limits().unwrap();
        assert!(limits.allows("localhost/cynode-sandbox:latest"));
        assert!(!limits.allows("docker.io/library/alpine:latest"));
        assert_eq!(config.request_limit(), 10 * 1024 * 1024);
        assert_eq!(
            config.job_retention().unwrap(),
            std::time::Duration::from_secs(86400)
        );
        let config = Config::parse_from(["w", "--job-retention-secs", "0"]);
        assert!(matches!(
            config.job_retention(),
            Err(ConfigError::ZeroRetention)
        ));
        let config = Config::parse_from(["w", "--allowed-image", "a:1", "--allowed-image", "b:2"]);
        assert!(config.limits().unwrap().allows("b:2"));
        assert!(
            !config
                .limits()
                .unwrap()
                .allows("localhost/cynode-sandbox:latest")
        );
    }

    #[test]
    fn tcp_connect_is_allowed_only_to_the_inference_and_mcp_ports() {
        let config = Config::parse_from(["w", "--inference-url", "http://127.0.0.1:11500/"]);
        assert_eq!(
            config.hardening_policy().tcp_connect_ports,
            Some(vec![11500])
        );
        let config = Config::parse_from(["w", "--inference-url", "http://gpu.lan"]);
        assert_eq!(config.hardening_policy().tcp_connect_ports, Some(vec![80]));
        let config = Config::parse_from([
            "w",
            "--inference-url",
            "http://127.0.0.1:11500/",
            "--mcp-gateway-url",
            "http://127.0.0.1:12083/mcp",
        ]);
        assert_eq!(
            config.hardening_policy().tcp_connect_ports,
            Some(vec![11500, 12083])
        );
        let config = Config::parse_from(["w", "--mcp-gateway-url", "https://orch.lan/mcp"]);
        assert_eq!(config.hardening_policy().tcp_connect_ports, Some(vec![443]));
        let config = Config::parse_from(["w"]);
        let policy = config.hardening_policy();
        assert_eq!(policy.tcp_connect_ports, Some(vec![]));
        assert_eq!(
            policy.enforcement,
            cynode_service_kit::hardening::Enforcement::Strict
        );
    }
}
