//! Configuration: an optional TOML or YAML file, then environment overrides with the upstream
//! names. Secrets never sit in the file; it may only name files that hold them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cynode_contracts::worker::SandboxResources;
use cynode_contracts::worker_cli;
use cynode_service_kit::config::{Env, FileError};
use cynode_service_kit::duration::{self, Seconds};
use cynode_service_kit::secrets::{self, Secret, SecretSource};
use serde::Deserialize;

/// Where the file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cynode/orchestrator.toml";

/// Renewals come every third of the lease; below this a slow database round trip loses it.
const MIN_DISPATCH_LEASE: Duration = Duration::from_secs(3);

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
    Secret(#[from] secrets::SecretError),
}

/// What the file may contain. Every key is optional; unknown keys are an error so that a typo
/// does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    public_url: Option<String>,
    control_plane_listen_addr: Option<String>,
    user_gateway_listen_addr: Option<String>,
    metrics_listen_addr: Option<String>,
    mcp_listen_addr: Option<String>,
    mcp_public_url: Option<String>,
    mcp_allowed_hosts: Option<Vec<String>>,
    mcp_tools_disabled: Option<Vec<String>>,
    mcp_token_ttl: Option<Seconds>,
    jwt_access_duration: Option<Seconds>,
    jwt_refresh_duration: Option<Seconds>,
    jwt_node_duration: Option<Seconds>,
    rate_limit_per_minute: Option<u32>,
    max_request_body_mb: Option<u64>,
    request_timeout: Option<Seconds>,
    dispatch_http_timeout: Option<Seconds>,
    dispatch_concurrency: Option<usize>,
    dispatch_claim_batch: Option<usize>,
    dispatch_max_attempts: Option<i32>,
    dispatch_retry_base: Option<Seconds>,
    dispatch_lease: Option<Seconds>,
    node_stale_after: Option<Seconds>,
    telemetry_pull_interval: Option<Seconds>,
    sandbox_image: Option<String>,
    inference_model: Option<String>,
    pm_model: Option<String>,
    pm_required: Option<bool>,
    pm_max_steps: Option<u32>,
    pm_max_tokens: Option<u32>,
    pm_model_timeout: Option<Seconds>,
    pm_step_retries: Option<u32>,
    workflow_lease_ttl: Option<Seconds>,
    workflow_resume_interval: Option<Seconds>,
    node_inference_image: Option<String>,
    node_inference_port: Option<u16>,
    node_inference_command: Option<String>,
    node_sandbox_limits: Option<SandboxResources>,
    database_pool_size: Option<u32>,
    database_url_file: Option<PathBuf>,
    jwt_secret_file: Option<PathBuf>,
    node_registration_psk_file: Option<PathBuf>,
    bootstrap_admin_password_file: Option<PathBuf>,
    worker_token_key_file: Option<PathBuf>,
    worker_token_key_previous_file: Option<PathBuf>,
    workflow_runner_bearer_token_file: Option<PathBuf>,
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
    secret_files: SecretFiles,
}

#[derive(Debug, Clone, Default)]
struct SecretFiles {
    database_url: Option<PathBuf>,
    jwt_secret: Option<PathBuf>,
    node_registration_psk: Option<PathBuf>,
    bootstrap_admin_password: Option<PathBuf>,
    worker_token_key: Option<PathBuf>,
    worker_token_key_previous: Option<PathBuf>,
    workflow_runner_bearer_token: Option<PathBuf>,
}

/// The secrets a process may need. Each is loaded only by the subcommands that use it.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub database_url: Secret,
    pub jwt_secret: Secret,
    pub node_registration_psk: Option<Secret>,
    pub bootstrap_admin_password: Option<Secret>,
    /// Encrypts worker API tokens at rest (`WORKER_TOKEN_KEY`, credential `worker-token-key`);
    /// `None` derives the key from the JWT secret. See [`crate::worker_tokens`].
    pub worker_token_key: Option<Secret>,
    /// The key before a rotation (`WORKER_TOKEN_KEY_PREVIOUS`), used only to decrypt.
    pub worker_token_key_previous: Option<Secret>,
    /// The bearer token of the workflow API (`WORKFLOW_RUNNER_BEARER_TOKEN`, credential
    /// `workflow-runner-bearer-token`); `None` closes the API (401), unlike upstream.
    pub workflow_runner_bearer_token: Option<Secret>,
}

/// A comma-separated list, blanks dropped.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
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

    fn from_parts(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let pick = |name: &str, from_file: Option<String>| env(name).or(from_file);
        // The env var in duration syntax, else the file's value (seconds or a duration string).
        let duration = |name: &str, from_file: Option<Seconds>, default: &str| {
            let value = env
                .duration(name, from_file)
                .map_err(|e| ConfigError::Invalid {
                    key: e.key,
                    message: e.message,
                })?;
            Ok::<_, ConfigError>(
                value.unwrap_or_else(|| duration::parse(default).expect("valid default duration")),
            )
        };
        let number = |name: &str, from_file: Option<String>, default: &str| {
            let text = pick(name, from_file).unwrap_or_else(|| default.to_owned());
            text.trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid {
                    key: name.to_owned(),
                    message: format!("expected a whole number, got {text:?}"),
                })
        };
        let addr = |name: &str, from_file: Option<String>, default: &str| {
            let text = env(name)
                .or_else(|| env("LISTEN_ADDR"))
                .or(from_file)
                .unwrap_or_else(|| default.to_owned());
            // Go-style ":12080" means every interface.
            let full = if text.starts_with(':') {
                format!("0.0.0.0{text}")
            } else {
                text.clone()
            };
            full.parse::<SocketAddr>()
                .map_err(|_| ConfigError::Invalid {
                    key: name.to_owned(),
                    message: format!("expected HOST:PORT, got {text:?}"),
                })
        };
        let public_url = pick("ORCHESTRATOR_PUBLIC_URL", file.public_url)
            .unwrap_or_else(|| "http://localhost:12082".to_owned());
        let parsed = url::Url::parse(&public_url).map_err(|e| ConfigError::Invalid {
            key: "ORCHESTRATOR_PUBLIC_URL".into(),
            message: format!("not a URL ({e})"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                key: "ORCHESTRATOR_PUBLIC_URL".into(),
                message: "must be an http or https URL".into(),
            });
        }
        let positive = |name: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::Invalid {
                    key: name.to_owned(),
                    message: "must be greater than zero".into(),
                })
            } else {
                Ok(value)
            }
        };
        Ok(Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            control_plane_listen_addr: addr(
                "CONTROL_PLANE_LISTEN_ADDR",
                file.control_plane_listen_addr,
                "0.0.0.0:12082",
            )?,
            user_gateway_listen_addr: addr(
                "USER_GATEWAY_LISTEN_ADDR",
                file.user_gateway_listen_addr,
                "0.0.0.0:12080",
            )?,
            // Not `LISTEN_ADDR`: that one address is the API's.
            metrics_listen_addr: pick("METRICS_LISTEN_ADDR", file.metrics_listen_addr)
                .map(|text| {
                    text.parse::<SocketAddr>()
                        .map_err(|_| ConfigError::Invalid {
                            key: "METRICS_LISTEN_ADDR".into(),
                            message: format!("expected HOST:PORT, got {text:?}"),
                        })
                })
                .transpose()?,
            mcp_listen_addr: {
                let text = pick("MCP_LISTEN_ADDR", file.mcp_listen_addr)
                    .unwrap_or_else(|| cynode_contracts::mcp::DEFAULT_LISTEN_ADDR.to_owned());
                text.parse::<SocketAddr>()
                    .map_err(|_| ConfigError::Invalid {
                        key: "MCP_LISTEN_ADDR".into(),
                        message: format!("expected HOST:PORT, got {text:?}"),
                    })?
            },
            mcp_public_url: match pick("MCP_PUBLIC_URL", file.mcp_public_url) {
                None => None,
                Some(text) => match url::Url::parse(&text) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {
                        Some(text.trim_end_matches('/').to_owned())
                    }
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: "MCP_PUBLIC_URL".into(),
                            message: format!("expected an http or https URL, got {text:?}"),
                        });
                    }
                },
            },
            mcp_allowed_hosts: {
                let mut hosts: Vec<String> =
                    ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
                let listed = env("MCP_ALLOWED_HOSTS")
                    .map(|v| list(&v))
                    .or(file.mcp_allowed_hosts)
                    .unwrap_or_default();
                hosts.extend(listed);
                if let Some(host) = env("MCP_PUBLIC_URL")
                    .and_then(|u| url::Url::parse(&u).ok())
                    .and_then(|u| u.host_str().map(str::to_owned))
                {
                    hosts.push(host);
                }
                hosts.sort();
                hosts.dedup();
                hosts
            },
            mcp_tools_disabled: {
                // Checked against the tool catalog by `mcp::check_disabled`, which the binary
                // runs right after loading (the catalog belongs to the MCP engine, above this).
                env("MCP_TOOLS_DISABLED")
                    .map(|v| list(&v))
                    .or(file.mcp_tools_disabled)
                    .unwrap_or_default()
            },
            mcp_token_ttl: match duration("MCP_TOKEN_TTL", file.mcp_token_ttl, "15m")? {
                d if d.is_zero() || d > crate::mcp::agent::MAX_TTL => {
                    return Err(ConfigError::Invalid {
                        key: "MCP_TOKEN_TTL".into(),
                        message: "must be more than zero and at most 1h".into(),
                    });
                }
                d => d,
            },
            jwt_access_duration: duration("JWT_ACCESS_DURATION", file.jwt_access_duration, "15m")?,
            jwt_refresh_duration: duration(
                "JWT_REFRESH_DURATION",
                file.jwt_refresh_duration,
                "168h",
            )?,
            jwt_node_duration: duration("JWT_NODE_DURATION", file.jwt_node_duration, "24h")?,
            rate_limit_per_minute: positive(
                "RATE_LIMIT_PER_MINUTE",
                number(
                    "RATE_LIMIT_PER_MINUTE",
                    file.rate_limit_per_minute.map(|v| v.to_string()),
                    "60",
                )?,
            )?
            .min(u64::from(u32::MAX)) as u32,
            max_request_body_bytes: positive(
                "MAX_REQUEST_BODY_MB",
                number(
                    "MAX_REQUEST_BODY_MB",
                    file.max_request_body_mb.map(|v| v.to_string()),
                    "10",
                )?,
            )? as usize
                * 1024
                * 1024,
            request_timeout: duration("REQUEST_TIMEOUT", file.request_timeout, "300s")?,
            dispatch_http_timeout: duration(
                "DISPATCH_HTTP_TIMEOUT",
                file.dispatch_http_timeout,
                "300s",
            )?,
            dispatch_concurrency: positive(
                "DISPATCH_CONCURRENCY",
                number(
                    "DISPATCH_CONCURRENCY",
                    file.dispatch_concurrency.map(|v| v.to_string()),
                    "8",
                )?,
            )? as usize,
            dispatch_claim_batch: match number(
                "DISPATCH_CLAIM_BATCH",
                file.dispatch_claim_batch.map(|v| v.to_string()),
                "16",
            )? {
                n @ 1..=256 => n as usize,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "DISPATCH_CLAIM_BATCH".into(),
                        message: "must be 1 to 256".into(),
                    });
                }
            },
            dispatch_max_attempts: positive(
                "DISPATCH_MAX_ATTEMPTS",
                number(
                    "DISPATCH_MAX_ATTEMPTS",
                    file.dispatch_max_attempts.map(|v| v.to_string()),
                    "5",
                )?,
            )?
            .min(1000) as i32,
            dispatch_retry_base: duration("DISPATCH_RETRY_BASE", file.dispatch_retry_base, "1s")?,
            dispatch_lease: match duration("DISPATCH_LEASE", file.dispatch_lease, "30s")? {
                d if d < MIN_DISPATCH_LEASE => {
                    return Err(ConfigError::Invalid {
                        key: "DISPATCH_LEASE".into(),
                        message: format!(
                            "must be at least {MIN_DISPATCH_LEASE:?}, so that renewals (every third) can land"
                        ),
                    });
                }
                d => d,
            },
            // Three of the node manager's default 60 s capability reports.
            node_stale_after: match duration("NODE_STALE_AFTER", file.node_stale_after, "180s")? {
                d if d.is_zero() => {
                    return Err(ConfigError::Invalid {
                        key: "NODE_STALE_AFTER".into(),
                        message: "must be greater than zero".into(),
                    });
                }
                d => d,
            },
            telemetry_pull_interval: duration(
                "TELEMETRY_PULL_INTERVAL",
                file.telemetry_pull_interval,
                "60s",
            )?,
            sandbox_image: pick("SANDBOX_IMAGE", file.sandbox_image).unwrap_or_default(),
            inference_model: pick("INFERENCE_MODEL", file.inference_model.clone())
                .unwrap_or_default(),
            pm_model: pick("PM_MODEL", file.pm_model)
                .filter(|m| !m.trim().is_empty())
                .or_else(|| pick("INFERENCE_MODEL", file.inference_model))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            pm_required: match pick("PM_REQUIRED", file.pm_required.map(|b| b.to_string())) {
                None => true,
                Some(v) => match v.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => {
                        return Err(ConfigError::Invalid {
                            key: "PM_REQUIRED".into(),
                            message: format!("expected true or false, got {other:?}"),
                        });
                    }
                },
            },
            pm_max_steps: positive(
                "PM_MAX_STEPS",
                number(
                    "PM_MAX_STEPS",
                    file.pm_max_steps.map(|v| v.to_string()),
                    "4",
                )?,
            )?
            .min(100) as u32,
            pm_max_tokens: positive(
                "PM_MAX_TOKENS",
                number(
                    "PM_MAX_TOKENS",
                    file.pm_max_tokens.map(|v| v.to_string()),
                    "512",
                )?,
            )?
            .min(1_000_000) as u32,
            pm_model_timeout: duration("PM_MODEL_TIMEOUT", file.pm_model_timeout, "120s")?,
            pm_step_retries: number(
                "PM_STEP_RETRIES",
                file.pm_step_retries.map(|v| v.to_string()),
                "2",
            )?
            .min(10) as u32,
            workflow_lease_ttl: match duration(
                "WORKFLOW_LEASE_TTL",
                file.workflow_lease_ttl,
                "30s",
            )? {
                d if d < MIN_DISPATCH_LEASE => {
                    return Err(ConfigError::Invalid {
                        key: "WORKFLOW_LEASE_TTL".into(),
                        message: format!(
                            "must be at least {MIN_DISPATCH_LEASE:?}, so that renewals (every third) can land"
                        ),
                    });
                }
                d => d,
            },
            workflow_resume_interval: match duration(
                "WORKFLOW_RESUME_INTERVAL",
                file.workflow_resume_interval,
                "5s",
            )? {
                d if d.is_zero() => {
                    return Err(ConfigError::Invalid {
                        key: "WORKFLOW_RESUME_INTERVAL".into(),
                        message: "must be greater than zero".into(),
                    });
                }
                d => d,
            },
            node_inference_image: pick("NODE_INFERENCE_IMAGE", file.node_inference_image)
                .unwrap_or_default(),
            node_inference_port: number(
                "NODE_INFERENCE_PORT",
                file.node_inference_port.map(|v| v.to_string()),
                "11434",
            )?
            .try_into()
            .map_err(|_| ConfigError::Invalid {
                key: "NODE_INFERENCE_PORT".into(),
                message: "must be a port number".into(),
            })?,
            node_inference_command: pick("NODE_INFERENCE_COMMAND", file.node_inference_command)
                .map(|c| c.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            node_sandbox_limits: {
                let caps = file.node_sandbox_limits.unwrap_or_default();
                // At least what a sandbox can start with, or the node's worker would refuse
                // the lowered limit and not start.
                let cap = |name: &str, from_file: Option<u64>, min: u64| match pick(
                    name,
                    from_file.map(|v| v.to_string()),
                ) {
                    None => Ok(None),
                    Some(text) => match number(name, Some(text), "0")? {
                        v if v < min => Err(ConfigError::Invalid {
                            key: name.to_owned(),
                            message: format!("must be at least {min}"),
                        }),
                        v => Ok(Some(v)),
                    },
                };
                SandboxResources {
                    memory_mib: cap(
                        "NODE_SANDBOX_MEMORY_MIB",
                        caps.memory_mib,
                        worker_cli::MIN_SANDBOX_MEMORY_MIB,
                    )?,
                    cpu_millis: cap(
                        "NODE_SANDBOX_CPU_MILLIS",
                        caps.cpu_millis,
                        worker_cli::MIN_SANDBOX_CPU_MILLIS,
                    )?,
                    pids: cap("NODE_SANDBOX_PIDS", caps.pids, worker_cli::MIN_SANDBOX_PIDS)?,
                    tmp_mib: cap("NODE_SANDBOX_TMP_MIB", caps.tmp_mib, 1)?,
                    workspace_mib: cap("NODE_SANDBOX_WORKSPACE_MIB", caps.workspace_mib, 1)?,
                }
            },
            database_pool_size: positive(
                "DATABASE_POOL_SIZE",
                number(
                    "DATABASE_POOL_SIZE",
                    file.database_pool_size.map(|v| v.to_string()),
                    "16",
                )?,
            )?
            .min(1000) as u32,
            secret_files: SecretFiles {
                database_url: file.database_url_file,
                jwt_secret: file.jwt_secret_file,
                node_registration_psk: file.node_registration_psk_file,
                bootstrap_admin_password: file.bootstrap_admin_password_file,
                worker_token_key: file.worker_token_key_file,
                worker_token_key_previous: file.worker_token_key_previous_file,
                workflow_runner_bearer_token: file.workflow_runner_bearer_token_file,
            },
        })
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

    /// `DATABASE_URL` (credential `database-url`); it may hold a password, so it is a secret.
    pub fn database_url(&self) -> Result<Secret, ConfigError> {
        Ok(secrets::load(&SecretSource {
            env: "DATABASE_URL",
            credential: "database-url",
            config_file: self.secret_files.database_url.as_deref(),
        })?)
    }

    /// Loads the secrets a serving process needs. The PSK is required when `needs_psk`.
    pub fn secrets(&self, needs_psk: bool) -> Result<Secrets, ConfigError> {
        let jwt_secret = secrets::load(&SecretSource {
            env: "JWT_SECRET",
            credential: "jwt-secret",
            config_file: self.secret_files.jwt_secret.as_deref(),
        })?;
        if jwt_secret.expose().len() < 16 {
            return Err(ConfigError::Invalid {
                key: "JWT_SECRET".into(),
                message: "must be at least 16 bytes long".into(),
            });
        }
        let psk_source = SecretSource {
            env: "NODE_REGISTRATION_PSK",
            credential: "node-registration-psk",
            config_file: self.secret_files.node_registration_psk.as_deref(),
        };
        let node_registration_psk = if needs_psk {
            Some(secrets::load(&psk_source)?)
        } else {
            secrets::load_optional(&psk_source)?
        };
        Ok(Secrets {
            database_url: self.database_url()?,
            jwt_secret,
            node_registration_psk,
            bootstrap_admin_password: secrets::load_optional(&SecretSource {
                env: "BOOTSTRAP_ADMIN_PASSWORD",
                credential: "bootstrap-admin-password",
                config_file: self.secret_files.bootstrap_admin_password.as_deref(),
            })?,
            worker_token_key: secrets::load_optional(&SecretSource {
                env: "WORKER_TOKEN_KEY",
                credential: "worker-token-key",
                config_file: self.secret_files.worker_token_key.as_deref(),
            })?,
            worker_token_key_previous: secrets::load_optional(&SecretSource {
                env: "WORKER_TOKEN_KEY_PREVIOUS",
                credential: "worker-token-key-previous",
                config_file: self.secret_files.worker_token_key_previous.as_deref(),
            })?,
            workflow_runner_bearer_token: secrets::load_optional(&SecretSource {
                env: "WORKFLOW_RUNNER_BEARER_TOKEN",
                credential: "workflow-runner-bearer-token",
                config_file: self.secret_files.workflow_runner_bearer_token.as_deref(),
            })?,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    cynode_service_kit::config::read_file(path, None).map_err(|e| match e {
        FileError::Read { path, source } => ConfigError::Read { path, source },
        FileError::Parse { path, message } => ConfigError::Parse { path, message },
        FileError::Extension(path) => ConfigError::Extension(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatch_lease_defaults_to_30_s_and_refuses_less_than_3_s() {
        let lease = |v: &'static str| {
            Config::from_lookup(move |name| (name == "DISPATCH_LEASE").then(|| v.to_owned()))
        };
        assert_eq!(
            Config::from_lookup(|_| None).unwrap().dispatch_lease,
            Duration::from_secs(30)
        );
        assert_eq!(lease("3s").unwrap().dispatch_lease, Duration::from_secs(3));
        let err = lease("2s").unwrap_err().to_string();
        assert!(err.contains("DISPATCH_LEASE"), "{err}");
    }

    #[test]
    fn durations_in_go_syntax_from_env_and_file() {
        let file: FileConfig =
            toml::from_str("request_timeout = 42\ndispatch_retry_base = \"500ms\"\n").unwrap();
        let cfg = Config::from_parts(file, |name| {
            (name == "JWT_ACCESS_DURATION").then(|| "1h30m".to_owned())
        })
        .unwrap();
        assert_eq!(cfg.jwt_access_duration, Duration::from_secs(5400));
        assert_eq!(cfg.request_timeout, Duration::from_secs(42));
        assert_eq!(cfg.dispatch_retry_base, Duration::from_millis(500));
        assert_eq!(cfg.jwt_refresh_duration, Duration::from_secs(168 * 3600));
    }

    #[test]
    fn the_workflow_resume_interval_defaults_to_five_seconds_and_may_be_short_but_not_zero() {
        let at = |value: &str| {
            let value = value.to_owned();
            Config::from_parts(FileConfig::default(), move |name| {
                (name == "WORKFLOW_RESUME_INTERVAL").then(|| value.clone())
            })
        };
        let default = Config::from_parts(FileConfig::default(), |_| None).unwrap();
        assert_eq!(default.workflow_resume_interval, Duration::from_secs(5));
        assert_eq!(
            at("200ms").unwrap().workflow_resume_interval,
            Duration::from_millis(200)
        );
        assert!(at("0").is_err());
    }

    #[test]
    fn env_overrides_file_and_go_style_addresses_work() {
        let file: FileConfig =
            toml::from_str("public_url = \"http://file:1\"\nrate_limit_per_minute = 7\n").unwrap();
        let cfg = Config::from_parts(file, |name| match name {
            "ORCHESTRATOR_PUBLIC_URL" => Some("http://env:2/".into()),
            "USER_GATEWAY_LISTEN_ADDR" => Some(":9999".into()),
            "NODE_INFERENCE_COMMAND" => Some("-m /m.gguf  --port 1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.public_url, "http://env:2");
        assert_eq!(cfg.rate_limit_per_minute, 7);
        assert_eq!(cfg.user_gateway_listen_addr.port(), 9999);
        assert_eq!(cfg.node_inference_command, ["-m", "/m.gguf", "--port", "1"]);
        assert_eq!(cfg.max_request_body_bytes, 10 * 1024 * 1024);
    }

    #[test]
    fn node_sandbox_caps_from_file_and_env() {
        let file: FileConfig =
            toml::from_str("[node_sandbox_limits]\nmemory_mib = 512\npids = 64\n").unwrap();
        let cfg = Config::from_parts(file, |name| {
            (name == "NODE_SANDBOX_PIDS").then(|| "32".to_owned())
        })
        .unwrap();
        assert_eq!(
            cfg.node_sandbox_limits,
            SandboxResources {
                memory_mib: Some(512),
                pids: Some(32),
                ..Default::default()
            }
        );
        assert!(
            Config::from_lookup(|_| None)
                .unwrap()
                .node_sandbox_limits
                .is_empty()
        );
        let zero = Config::from_lookup(|name| {
            (name == "NODE_SANDBOX_WORKSPACE_MIB").then(|| "0".to_owned())
        })
        .unwrap_err();
        assert!(
            zero.to_string().contains("NODE_SANDBOX_WORKSPACE_MIB"),
            "{zero}"
        );
        let tiny =
            Config::from_lookup(|name| (name == "NODE_SANDBOX_CPU_MILLIS").then(|| "5".to_owned()))
                .unwrap_err();
        assert_eq!(
            tiny.to_string(),
            "NODE_SANDBOX_CPU_MILLIS: must be at least 10"
        );
        assert!(toml::from_str::<FileConfig>("[node_sandbox_limits]\ngpus = 1\n").is_err());
    }

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

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("jwt_secret = \"inline\"").is_err());
        let err = Config::from_parts(FileConfig::default(), |name| {
            (name == "JWT_ACCESS_DURATION").then(|| "soon".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("JWT_ACCESS_DURATION"), "{err}");
    }
}
