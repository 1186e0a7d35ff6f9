//! Configuration: an optional TOML or YAML file, then environment overrides with the upstream
//! names. Secrets never sit in the file; it may only name files that hold them.
//!
//! One file per step: `file` is what the file may hold, `resolve` turns it and the environment
//! into a [`Config`] one group of settings at a time, with `lookup`'s readers (environment over
//! file over default, each kind of value checked the same way), and `secrets` loads the secrets
//! the file may only name.

mod file;
mod lookup;
mod resolve;
mod secrets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cynode_contracts::worker::SandboxResources;

pub use self::file::DEFAULT_CONFIG_PATH;
use self::file::{FileConfig, read_file};
use self::secrets::SecretFiles;
pub use self::secrets::Secrets;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {0}: unknown extension (use .toml, .yaml or .yml)")]
    Extension(PathBuf),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error(transparent)]
    Secret(#[from] cynode_service_kit::secrets::SecretError),
}

/// Where the user gateway finds the web console, and what its cookie session needs to know.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The URL people open the console at (`USER_GATEWAY_PUBLIC_URL`), when known. An `https`
    /// URL makes every session cookie `Secure`.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-Proto: https` is believed (`TRUSTED_PROXIES`,
    /// comma-separated IP addresses): a session cookie set through one is `Secure`.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The built console (`CONSOLE_DIR`); default `share/cynodeai/console` beside the
    /// binary's `bin/`, when it exists. None: `GET /` says the console is not installed.
    pub dir: Option<PathBuf>,
    /// How long a console login lasts without a new password (`CONSOLE_SESSION_DURATION`,
    /// default 12h): the lifetime of its refresh cookie. The access cookie lives
    /// `JWT_ACCESS_DURATION` and is renewed with it.
    pub session_duration: Duration,
}

/// Settings of one orchestrator process (secrets excluded; see [`Secrets`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL nodes use for the control plane (`ORCHESTRATOR_PUBLIC_URL`).
    pub public_url: String,
    pub control_plane_listen_addr: SocketAddr,
    pub user_gateway_listen_addr: SocketAddr,
    /// Where Prometheus scrapes `/metrics` (`METRICS_LISTEN_ADDR`); unset: no metrics listener.
    /// Its own listener, because job and node counts are for operators, not for every client
    /// of the user gateway or node of the control plane: keep it on loopback or a management
    /// network.
    pub metrics_listen_addr: Option<SocketAddr>,
    /// The MCP gateway's own listener (`MCP_LISTEN_ADDR`, default `127.0.0.1:12083`), served by
    /// the control plane. Loopback by default: agents reach it through their node's worker
    /// proxy, and a node on another host needs it on an address it can reach.
    pub mcp_listen_addr: SocketAddr,
    /// The MCP endpoint URL handed to worker proxies (`MCP_PUBLIC_URL`); default: the bound
    /// listen address with `/mcp`.
    pub mcp_public_url: Option<String>,
    /// `Host` values the MCP endpoint answers (`MCP_ALLOWED_HOSTS`, comma-separated; DNS
    /// rebinding protection): loopback names plus the host of `MCP_PUBLIC_URL`.
    pub mcp_allowed_hosts: Vec<String>,
    /// Tools switched off on this orchestrator (`MCP_TOOLS_DISABLED`, comma-separated).
    pub mcp_tools_disabled: Vec<String>,
    /// Lifetime of the agent tokens this orchestrator issues (`MCP_TOKEN_TTL`, default 15m, at
    /// most 1h).
    pub mcp_token_ttl: Duration,
    pub jwt_access_duration: Duration,
    pub jwt_refresh_duration: Duration,
    pub jwt_node_duration: Duration,
    /// Login attempts per minute allowed per client IP and, separately, per handle.
    pub rate_limit_per_minute: u32,
    pub max_request_body_bytes: usize,
    /// Upper bound on handling one request.
    pub request_timeout: Duration,
    pub dispatch_http_timeout: Duration,
    pub dispatch_concurrency: usize,
    /// Most jobs one claiming transaction takes (1 to 256).
    pub dispatch_claim_batch: usize,
    /// After this many failed deliveries a job fails for good.
    pub dispatch_max_attempts: i32,
    /// First retry delay; it doubles per attempt up to a minute.
    pub dispatch_retry_base: Duration,
    /// How long a claimed job stays leased without news from its dispatcher. The dispatcher
    /// renews it every third of this while the worker runs the job, so it bounds how long jobs
    /// of a crashed orchestrator wait for another one, whatever their length.
    pub dispatch_lease: Duration,
    /// A node not heard from (capability report, config fetch or ack) for this long gets no jobs.
    pub node_stale_after: Duration,
    /// How often the control plane pulls each node's telemetry snapshot (`node:info`,
    /// `node:stats`); 0 turns the pull off.
    pub telemetry_pull_interval: Duration,
    /// Image put in dispatched jobs; empty means the node's default.
    pub sandbox_image: String,
    pub inference_model: String,
    /// The Project Manager model pin (`PM_MODEL`; else `INFERENCE_MODEL` when set); empty lets
    /// the selection pick by VRAM (`pm::select`).
    pub pm_model: String,
    /// Whether readiness waits for the PM model to answer (`PM_REQUIRED`, default true). Off, it
    /// only needs a dispatchable node, as before the PM existed (sandbox-only deployments, tests
    /// of other parts).
    pub pm_required: bool,
    /// Most sandbox steps a prompt task's plan may have (`PM_MAX_STEPS`).
    pub pm_max_steps: u32,
    /// How often a step whose verification failed runs again before the task fails
    /// (`PM_STEP_RETRIES`, default 2).
    pub pm_step_retries: u32,
    /// Lifetime of the lease a workflow driver holds on its task (`WORKFLOW_LEASE_TTL`, default
    /// 30 s), renewed every third of it: how long a dead process's tasks wait for another.
    pub workflow_lease_ttl: Duration,
    /// How often a control plane looks for open prompt tasks nobody drives, and its own drivers
    /// look at their jobs again (`WORKFLOW_RESUME_INTERVAL`, default 5 s): a job that ended in
    /// another process reaches the driver waiting for it within about this long.
    pub workflow_resume_interval: Duration,
    /// `max_tokens` of each PM model call.
    pub pm_max_tokens: u32,
    /// Upper bound of one PM model call (and of the warm-up).
    pub pm_model_timeout: Duration,
    pub node_inference_image: String,
    pub node_inference_port: u16,
    pub node_inference_command: Vec<String>,
    /// Caps on every node's sandbox limits (`[node_sandbox_limits]`, `NODE_SANDBOX_*`), sent in
    /// each node's configuration; a node applies the lower of a cap and its own limit.
    pub node_sandbox_limits: SandboxResources,
    pub database_pool_size: u32,
    /// How the web console and its cookies are served (`[console]` settings below).
    pub console: ConsoleConfig,
    secret_files: SecretFiles,
}

impl Config {
    /// Reads `path` (or the default path if it exists), then applies env overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => read_file(p)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                read_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => FileConfig::default(),
        };
        Self::from_parts(file, |name| std::env::var(name).ok())
    }

    /// Settings from `lookup` alone (no file): what tests and embedders use instead of the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_parts(FileConfig::default(), lookup)
    }

    /// The longest a job may run in the sandbox: the dispatch HTTP timeout less a margin for
    /// container start and the answer's trip back (a tenth, 1 to 10 s), at least 1 s. A job
    /// running past the HTTP timeout would be delivered again while it still runs.
    pub fn max_job_timeout_seconds(&self) -> u64 {
        let margin = (self.dispatch_http_timeout / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        self.dispatch_http_timeout
            .saturating_sub(margin)
            .as_secs()
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_must_end_before_the_dispatch_http_timeout() {
        let cap = |timeout: &str| {
            Config::from_parts(FileConfig::default(), |name| {
                (name == "DISPATCH_HTTP_TIMEOUT").then(|| timeout.to_owned())
            })
            .unwrap()
            .max_job_timeout_seconds()
        };
        assert_eq!(cap("300s"), 290);
        assert_eq!(cap("2h"), 7190);
        assert_eq!(cap("10s"), 9);
        assert_eq!(cap("1s"), 1);
    }
}
