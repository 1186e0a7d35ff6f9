//! Command line and environment: the flags agreed in `interfaces.md`, each also an env var.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use cynode_service_kit::secrets::{self, Secret, SecretError, SecretSource};

use crate::sandbox::Limits;

/// CyNodeAI worker API: runs jobs in Podman sandboxes.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "WORKER_API_LISTEN_ADDR", default_value = "0.0.0.0:12090")]
    pub listen: SocketAddr,

    /// The Podman REST API socket.
    #[arg(
        long,
        env = "CYNODE_PODMAN_SOCKET",
        default_value = "/run/podman/podman.sock"
    )]
    pub podman_socket: PathBuf,

    /// Per-job host directories live here: `<mount-root>/<job_id>/workspace`.
    #[arg(
        long,
        env = "CYNODE_SANDBOX_MOUNT_ROOT",
        default_value = "/var/lib/cynode/state/sandbox_mounts"
    )]
    pub mount_root: PathBuf,

    /// Image used when a job names none.
    #[arg(
        long,
        env = "CYNODE_SANDBOX_DEFAULT_IMAGE",
        default_value = "localhost/cynode-sandbox:latest"
    )]
    pub default_image: String,

    /// Image a job may use (repeatable). Without any, only the default image is allowed.
    #[arg(
        long = "allowed-image",
        env = "CYNODE_SANDBOX_ALLOWED_IMAGES",
        value_delimiter = ','
    )]
    pub allowed_images: Vec<String>,

    /// Timeout of a job that asks for none (seconds).
    #[arg(
        long,
        env = "CYNODE_SANDBOX_DEFAULT_TIMEOUT_SECS",
        default_value_t = 3600
    )]
    pub default_timeout_secs: u64,

    /// Longest timeout a job may ask for (seconds); a longer one is refused with 400.
    #[arg(long, env = "CYNODE_SANDBOX_MAX_TIMEOUT_SECS", default_value_t = 10800)]
    pub max_timeout_secs: u64,

    /// Cap of stdout and of stderr in a result (bytes each).
    #[arg(long, env = "CYNODE_SANDBOX_MAX_OUTPUT_BYTES", default_value_t = cynode_contracts::worker::MAX_OUTPUT_BYTES)]
    pub max_output_bytes: usize,

    /// Largest request body (bytes); never above 10 MiB. Bigger bodies get 413.
    #[arg(long, env = "WORKER_API_MAX_REQUEST_BYTES", default_value_t = cynode_contracts::worker::MAX_REQUEST_BYTES)]
    pub max_request_bytes: u64,

    /// How long a finished job's directory (workspace and stored result) is kept (seconds). It
    /// must outlast the orchestrator's dispatch lease: a repeated delivery after a lease expiry
    /// finds the first run's result only while it is kept.
    #[arg(
        long,
        env = "CYNODE_SANDBOX_JOB_RETENTION_SECS",
        default_value_t = 86400
    )]
    pub job_retention_secs: u64,

    /// The node's model server (OpenAI-compatible). Without it the node offers no inference: the
    /// inference routes answer 503 and `use_inference` jobs are refused.
    #[arg(long, env = "CYNODE_INFERENCE_URL")]
    pub inference_url: Option<url::Url>,

    /// Deadline of one forwarded inference request (seconds).
    #[arg(long, env = "CYNODE_INFERENCE_TIMEOUT_SECS", default_value_t = 120)]
    pub inference_timeout_secs: u64,

    /// The statically linked sidecar binary; default `cynode-inference-proxy` next to this one.
    #[arg(long, env = "CYNODE_INFERENCE_PROXY_BINARY")]
    pub inference_proxy_binary: Option<PathBuf>,

    /// Read the bearer token from the first line of stdin (how node-manager hands it over).
    #[arg(long)]
    pub bearer_token_stdin: bool,

    /// Stop (as on SIGTERM) when the parent process dies, even if it was killed outright, so a
    /// supervisor's crash never leaves an orphaned worker API behind.
    #[arg(long)]
    pub exit_with_parent: bool,
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
        ))
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
}
