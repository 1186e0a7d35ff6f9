//! `node.yaml` plus the upstream environment overrides (`node.md` §1.1).
//!
//! Everything is checked here, before the node manager talks to anyone: a bad file or a missing
//! key yields one error that names the key, and the process exits without contacting the
//! orchestrator. Secrets are never inline: the PSK comes from a credential, a file or the env.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cynode_contracts::node::InferenceMode;
use cynode_service_kit::config::{self as file_config, Format, InvalidSetting};
pub use cynode_service_kit::config::{Env, ProcessEnv};
use cynode_service_kit::duration::Seconds;
use cynode_service_kit::hardening::{PathAccess, Policy};
use cynode_service_kit::secrets::{self, Secret, SecretError, SecretSource};
use serde::Deserialize;
use url::Url;

/// Where systemd installs look for the file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cynode/node.yaml";
const DEFAULT_STATE_DIR: &str = "/var/lib/cynode/state";
const DEFAULT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";
const DEFAULT_SANDBOX_IMAGE: &str = "localhost/cynode-sandbox:latest";
const DEFAULT_INFERENCE_URL: &str = "http://127.0.0.1:11434";
const DEFAULT_OLLAMA_IMAGE: &str = "docker.io/ollama/ollama:latest";
const DEFAULT_OLLAMA_CONTAINER: &str = "cynodeai-ollama";
/// The PSK's systemd credential name (`LoadCredential=node-registration-psk:...`).
pub const PSK_CREDENTIAL: &str = "node-registration-psk";
const PSK_ENV: &str = "NODE_REGISTRATION_PSK";

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

// ---- the file, as written by an operator ----------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Option<u32>,
    #[serde(default)]
    orchestrator: FileOrchestrator,
    #[serde(default)]
    node: FileNode,
    #[serde(default)]
    worker_api: FileWorkerApi,
    #[serde(default)]
    sandbox: FileSandbox,
    #[serde(default)]
    inference: FileInference,
    #[serde(default)]
    storage: FileStorage,
    #[serde(default)]
    shutdown: FileShutdown,
    #[serde(default)]
    metrics: FileMetrics,
}

/// `metrics`: where Prometheus scrapes the node manager and its worker API; unset: not served.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    listen: Option<SocketAddr>,
    worker_listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOrchestrator {
    url: Option<String>,
    /// Name of the environment variable that holds the PSK.
    registration_psk_env: Option<String>,
    registration_psk_file: Option<PathBuf>,
    #[serde(default)]
    timeouts: FileTimeouts,
    capability_report_interval_seconds: Option<Seconds>,
    /// How often the node asks for its configuration (`poll_interval_seconds` of the spec).
    poll_interval_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTimeouts {
    connect_seconds: Option<Seconds>,
    request_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWorkerApi {
    listen_host: Option<String>,
    listen_port: Option<u16>,
    public_base_url: Option<String>,
    max_request_bytes: Option<u64>,
    binary: Option<PathBuf>,
    startup_timeout_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSandbox {
    mode: Option<SandboxMode>,
    podman_socket: Option<PathBuf>,
    default_image: Option<String>,
    #[serde(default)]
    allowed_images: Vec<String>,
    mount_root: Option<PathBuf>,
    /// The host's default container seccomp profile, which the worker tightens for sandboxes.
    seccomp_base_profile: Option<PathBuf>,
    #[serde(default)]
    timeouts: FileSandboxTimeouts,
    #[serde(default)]
    limits: SandboxLimitSettings,
    max_concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSandboxTimeouts {
    default_seconds: Option<Seconds>,
    max_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInference {
    mode: Option<InferenceMode>,
    url: Option<String>,
    image: Option<String>,
    container_name: Option<String>,
    startup_timeout_seconds: Option<Seconds>,
    existing_wait_seconds: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShutdown {
    grace_seconds: Option<Seconds>,
}

// ---- the resolved configuration --------------------------------------------------------------

/// `sandbox.mode`: whether this node runs sandboxes, and whether it also offers inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    Allow,
    SandboxOnly,
    Disabled,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub orchestrator_url: Url,
    pub psk: Secret,
    /// Environment variables that may carry secrets and must not reach child processes.
    pub secret_env: Vec<String>,
    /// Files the PSK may be read from (`orchestrator.registration_psk_file`,
    /// `NODE_REGISTRATION_PSK_FILE`), which SIGHUP reads again.
    pub secret_files: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub capability_report_interval: Duration,
    /// `orchestrator.poll_interval_seconds` (`CONFIG_POLL_INTERVAL`): how often supervision
    /// fetches the configuration; it is also fetched with every capability report, so a value
    /// at or above the report interval adds nothing. Default: the report interval.
    pub config_poll_interval: Duration,
    pub node_slug: String,
    pub node_name: Option<String>,
    pub labels: Vec<String>,
    pub worker: WorkerSettings,
    pub sandbox: SandboxSettings,
    pub inference: InferenceSettings,
    pub state_dir: PathBuf,
    pub shutdown_grace: Duration,
    /// `metrics.listen`: the node manager's `/metrics`; unset: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// `metrics.worker_listen`: the worker API's `/metrics` (its `--metrics-listen`).
    pub worker_metrics_listen: Option<SocketAddr>,
    /// The file this was read from ([`Config::load`]); SIGHUP reads it again.
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub binary: PathBuf,
    pub listen_host: String,
    pub listen_port: u16,
    /// What the node advertises; the orchestrator dispatches here.
    pub advertised_url: Url,
    pub max_request_bytes: Option<u64>,
    pub startup_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    pub podman_socket: PathBuf,
    pub default_image: String,
    pub allowed_images: Vec<String>,
    pub mount_root: PathBuf,
    pub default_timeout_secs: Option<u64>,
    pub max_timeout_secs: Option<u64>,
    /// `sandbox.limits`: what every sandbox may use; unset keys keep the worker API's defaults.
    pub limits: SandboxLimitSettings,
    /// `sandbox.seccomp_base_profile` (`CYNODE_SANDBOX_SECCOMP_BASE`); unset keeps the worker
    /// API's default (containers-common's path).
    pub seccomp_base_profile: Option<PathBuf>,
    /// `sandbox.max_concurrency`: most jobs at once, reported to the orchestrator, which places
    /// no more here (0: none at all). Unset: no limit reported.
    pub max_concurrency: Option<u32>,
}

/// `sandbox.limits` in the node's config file, passed to the worker API as its
/// `--sandbox-*` flags (which check the ranges).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimitSettings {
    pub memory_mib: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
    pub tmp_mib: Option<u64>,
    /// Unset: `/workspace` is a host directory without a size limit (see the worker's
    /// `--sandbox-workspace-mib`).
    pub workspace_mib: Option<u64>,
    pub log_max_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct InferenceSettings {
    pub mode: InferenceMode,
    /// Where the node's single inference server answers (or will, once started).
    pub url: Url,
    /// Used when the orchestrator names no image.
    pub image: String,
    pub container_name: String,
    pub startup_timeout: Duration,
    /// How long start-up waits for a server already expected at `url` (a host service that
    /// starts alongside the node) before it falls back to the orchestrator's container or fails.
    /// Zero: look once.
    pub existing_wait: Duration,
}

impl InferenceSettings {
    /// Whether this node offers inference at all (`inference.mode` and `sandbox.mode`).
    pub fn wanted(&self, sandbox: SandboxMode) -> bool {
        self.mode != InferenceMode::Disabled && sandbox != SandboxMode::SandboxOnly
    }
}

impl Config {
    /// Reads `path` and applies the environment overrides. The PSK is resolved through
    /// service-kit's order (credential, `NODE_REGISTRATION_PSK_FILE`, `NODE_REGISTRATION_PSK`),
    /// then the file named by `orchestrator.registration_psk_file`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = parse(path, &text)?;
        let psk_env = file
            .orchestrator
            .registration_psk_env
            .clone()
            .unwrap_or_else(|| PSK_ENV.to_owned());
        let psk = secrets::load(&SecretSource {
            env: &psk_env,
            credential: PSK_CREDENTIAL,
            config_file: file.orchestrator.registration_psk_file.as_deref(),
        })?;
        let psk_file = file.orchestrator.registration_psk_file.clone();
        let mut config = resolve(file, psk, &ProcessEnv)?;
        config.source = Some(path.to_owned());
        config.secret_files.extend(psk_file);
        config
            .secret_files
            .extend(std::env::var_os(format!("{psk_env}_FILE")).map(PathBuf::from));
        config.secret_env.push(format!("{psk_env}_FILE"));
        config.secret_env.push(psk_env);
        Ok(config)
    }
}

fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
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

fn resolve(file: FileConfig, psk: Secret, env: &dyn Env) -> Result<Config, ConfigError> {
    let orchestrator_url = env
        .get("ORCHESTRATOR_URL")
        .or(file.orchestrator.url)
        .ok_or(ConfigError::Missing {
            key: "orchestrator.url",
            env: "ORCHESTRATOR_URL",
        })?;
    let orchestrator_url = http_url("orchestrator.url", &orchestrator_url)?;

    let node_slug = env
        .get("NODE_SLUG")
        .or(file.node.id)
        .ok_or(ConfigError::Missing {
            key: "node.id",
            env: "NODE_SLUG",
        })?;
    check_slug(&node_slug)?;

    let listen_port = match env.get("WORKER_API_LISTEN_PORT") {
        Some(v) => parse_num("worker_api.listen_port", &v)?,
        None => file.worker_api.listen_port.unwrap_or(12090),
    };
    let advertised = env
        .get("NODE_ADVERTISED_WORKER_API_URL")
        .or(file.worker_api.public_base_url)
        .ok_or(ConfigError::Missing {
            key: "worker_api.public_base_url",
            env: "NODE_ADVERTISED_WORKER_API_URL",
        })?;
    let advertised_url = http_url("worker_api.public_base_url", &advertised)?;

    let state_dir = env
        .get("CYNODE_STATE_DIR")
        .map(PathBuf::from)
        .or(file.storage.state_dir)
        .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    absolute("storage.state_dir", &state_dir)?;
    let mount_root = env
        .get("CYNODE_SANDBOX_MOUNT_ROOT")
        .map(PathBuf::from)
        .or(file.sandbox.mount_root)
        .unwrap_or_else(|| state_dir.join("sandbox_mounts"));
    absolute("sandbox.mount_root", &mount_root)?;

    let default_image = file
        .sandbox
        .default_image
        .unwrap_or_else(|| DEFAULT_SANDBOX_IMAGE.to_owned());
    let mut allowed_images = file.sandbox.allowed_images;
    if allowed_images.is_empty() {
        allowed_images.push(default_image.clone());
    } else if !allowed_images.contains(&default_image) {
        return Err(ConfigError::Invalid {
            key: "sandbox.allowed_images".into(),
            reason: format!("must include sandbox.default_image `{default_image}`"),
        });
    }
    let (default_timeout_secs, max_timeout_secs) = (
        whole_seconds(
            "sandbox.timeouts.default_seconds",
            file.sandbox.timeouts.default_seconds,
        )?,
        whole_seconds(
            "sandbox.timeouts.max_seconds",
            file.sandbox.timeouts.max_seconds,
        )?,
    );
    if let (Some(d), Some(m)) = (default_timeout_secs, max_timeout_secs)
        && d > m
    {
        return Err(ConfigError::Invalid {
            key: "sandbox.timeouts.default_seconds".into(),
            reason: format!("{d} exceeds sandbox.timeouts.max_seconds {m}"),
        });
    }

    let inference_url = env
        .get("CYNODE_INFERENCE_URL")
        .or(file.inference.url)
        .unwrap_or_else(|| DEFAULT_INFERENCE_URL.to_owned());
    let inference_url = http_url("inference.url", &inference_url)?;
    if inference_url.port_or_known_default().is_none() {
        return Err(ConfigError::Invalid {
            key: "inference.url".into(),
            reason: "needs a port".into(),
        });
    }

    let capability_report_interval = env
        .duration(
            "CAPABILITY_REPORT_INTERVAL",
            file.orchestrator.capability_report_interval_seconds,
        )?
        .unwrap_or(Duration::from_secs(60));
    if capability_report_interval.is_zero() {
        return Err(ConfigError::Invalid {
            key: "orchestrator.capability_report_interval_seconds".into(),
            reason: "must be positive".into(),
        });
    }
    let config_poll_interval = env
        .duration(
            "CONFIG_POLL_INTERVAL",
            file.orchestrator.poll_interval_seconds,
        )?
        .unwrap_or(capability_report_interval);
    if config_poll_interval.is_zero() {
        return Err(ConfigError::Invalid {
            key: "orchestrator.poll_interval_seconds".into(),
            reason: "must be positive".into(),
        });
    }
    let request_timeout = env
        .duration("HTTP_TIMEOUT", file.orchestrator.timeouts.request_seconds)?
        .unwrap_or(Duration::from_secs(10));
    let listen_host = file
        .worker_api
        .listen_host
        .unwrap_or_else(|| "0.0.0.0".to_owned());
    if listen_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_err()
    {
        return Err(ConfigError::Invalid {
            key: "worker_api.listen_host".into(),
            reason: format!("`{listen_host}` must be an IP address"),
        });
    }

    let binary = env
        .get("NODE_MANAGER_WORKER_API_BIN")
        .map(PathBuf::from)
        .or(file.worker_api.binary)
        .unwrap_or_else(default_worker_binary);

    Ok(Config {
        orchestrator_url,
        psk,
        secret_env: vec![
            PSK_ENV.to_owned(),
            format!("{PSK_ENV}_FILE"),
            "CREDENTIALS_DIRECTORY".to_owned(),
        ],
        secret_files: Vec::new(),
        connect_timeout: seconds_or(file.orchestrator.timeouts.connect_seconds, 5),
        request_timeout,
        capability_report_interval,
        config_poll_interval,
        node_slug,
        node_name: env.get("NODE_NAME").or(file.node.name),
        labels: file.node.labels,
        worker: WorkerSettings {
            binary,
            listen_host,
            listen_port,
            advertised_url,
            max_request_bytes: file.worker_api.max_request_bytes,
            startup_timeout: seconds_or(file.worker_api.startup_timeout_seconds, 30),
        },
        sandbox: SandboxSettings {
            mode: file.sandbox.mode.unwrap_or(SandboxMode::Allow),
            podman_socket: env
                .get("CYNODE_PODMAN_SOCKET")
                .map(PathBuf::from)
                .or(file.sandbox.podman_socket)
                .unwrap_or_else(|| DEFAULT_PODMAN_SOCKET.into()),
            default_image,
            allowed_images,
            mount_root,
            default_timeout_secs,
            max_timeout_secs,
            limits: file.sandbox.limits,
            seccomp_base_profile: env
                .get("CYNODE_SANDBOX_SECCOMP_BASE")
                .map(PathBuf::from)
                .or(file.sandbox.seccomp_base_profile),
            max_concurrency: file.sandbox.max_concurrency,
        },
        inference: InferenceSettings {
            mode: file.inference.mode.unwrap_or(InferenceMode::Allow),
            url: inference_url,
            image: env
                .get("OLLAMA_IMAGE")
                .or(file.inference.image)
                .unwrap_or_else(|| DEFAULT_OLLAMA_IMAGE.to_owned()),
            container_name: env
                .get("OLLAMA_CONTAINER_NAME")
                .or(file.inference.container_name)
                .unwrap_or_else(|| DEFAULT_OLLAMA_CONTAINER.to_owned()),
            // Pulling and loading a model can take minutes on a cold node.
            startup_timeout: seconds_or(file.inference.startup_timeout_seconds, 600),
            existing_wait: seconds_or(file.inference.existing_wait_seconds, 0),
        },
        state_dir,
        shutdown_grace: seconds_or(file.shutdown.grace_seconds, 10),
        metrics_listen: file.metrics.listen,
        worker_metrics_listen: file.metrics.worker_listen,
        source: None,
    })
}

/// What reading node.yaml again changed ([`Config::reload_from`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys that changed and now apply: `node.labels`, `sandbox.max_concurrency`.
    pub applied: Vec<&'static str>,
    /// Sections that changed but take effect only at the next start.
    pub need_restart: Vec<&'static str>,
}

impl Config {
    /// Takes from `new` (node.yaml read again) what can change while the node runs, the labels
    /// and `sandbox.max_concurrency`, both only reported to the orchestrator, and names every
    /// other section in which `new` differs: those keep their running values until a restart.
    pub fn reload_from(&mut self, new: &Config) -> Reloaded {
        let mut reloaded = Reloaded::default();
        if self.labels != new.labels {
            self.labels.clone_from(&new.labels);
            reloaded.applied.push("node.labels");
        }
        if self.sandbox.max_concurrency != new.sandbox.max_concurrency {
            self.sandbox.max_concurrency = new.sandbox.max_concurrency;
            reloaded.applied.push("sandbox.max_concurrency");
        }
        // Debug renders every value (the PSK redacted, so it is compared by content).
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let checks: [(&'static str, bool); 9] = [
            (
                "orchestrator",
                differs(
                    &(
                        &self.orchestrator_url,
                        self.connect_timeout,
                        self.request_timeout,
                        self.capability_report_interval,
                        self.config_poll_interval,
                    ),
                    &(
                        &new.orchestrator_url,
                        new.connect_timeout,
                        new.request_timeout,
                        new.capability_report_interval,
                        new.config_poll_interval,
                    ),
                ) || self.psk.expose() != new.psk.expose(),
            ),
            ("node.id", self.node_slug != new.node_slug),
            ("node.name", self.node_name != new.node_name),
            ("worker_api", differs(&self.worker, &new.worker)),
            (
                "sandbox",
                // max_concurrency is equal by now.
                differs(&self.sandbox, &new.sandbox),
            ),
            ("inference", differs(&self.inference, &new.inference)),
            ("storage.state_dir", self.state_dir != new.state_dir),
            (
                "shutdown.grace_seconds",
                self.shutdown_grace != new.shutdown_grace,
            ),
            (
                "orchestrator.registration_psk_env",
                self.secret_env != new.secret_env,
            ),
        ];
        reloaded.need_restart = checks
            .into_iter()
            .filter_map(|(key, changed)| changed.then_some(key))
            .collect();
        reloaded
    }
}

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

/// The worker API binary installed next to this one.
fn default_worker_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("cynode-worker-api")))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/cynode-worker-api"))
}

fn http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{value}` must be an http(s) URL with a host"),
        });
    }
    Ok(url)
}

fn check_slug(slug: &str) -> Result<(), ConfigError> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: "node.id".into(),
            reason: format!(
                "`{slug}` must be 1-63 characters of a-z, 0-9, '-' or '_' (it is the node slug)"
            ),
        })
    }
}

fn absolute(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{}` must be an absolute path", path.display()),
        })
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a valid number"),
    })
}

/// A file duration, or `default` seconds.
fn seconds_or(value: Option<Seconds>, default: u64) -> Duration {
    value.map_or(Duration::from_secs(default), Duration::from)
}

/// A file duration the worker API takes in whole seconds: at least one, fractions dropped.
fn whole_seconds(key: &str, value: Option<Seconds>) -> Result<Option<u64>, ConfigError> {
    match value.map(|Seconds(d)| d.as_secs()) {
        Some(0) => Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: "must be at least one second".into(),
        }),
        secs => Ok(secs),
    }
}

/// A minimal valid configuration plus `extra_yaml`, for other modules' unit tests; the process
/// environment is ignored.
#[cfg(test)]
pub(crate) fn for_tests(extra_yaml: &str) -> Config {
    struct NoEnv;
    impl Env for NoEnv {
        fn get(&self, _: &str) -> Option<String> {
            None
        }
    }
    let text = format!(
        "orchestrator: {{url: 'http://o:1'}}\nnode: {{id: n}}\n\
         worker_api: {{public_base_url: 'http://w:12090'}}\n{extra_yaml}"
    );
    let file = parse(Path::new("node.yaml"), &text).expect("valid test node.yaml");
    resolve(file, Secret::new("p"), &NoEnv).expect("valid test configuration")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }

    const FULL: &str = r#"
version: 1
orchestrator:
  url: http://10.0.0.1:12082
node:
  id: node-01
  name: First node
  labels: [gpu]
worker_api:
  public_base_url: http://10.0.0.2:12090
inference:
  url: http://127.0.0.1:11500
"#;

    fn load(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let file = parse(Path::new("node.yaml"), text)?;
        resolve(file, Secret::new("psk"), env)
    }

    #[test]
    fn reload_takes_labels_and_max_concurrency_and_names_the_rest() {
        let mut running = load(FULL, &env(&[])).unwrap();
        assert_eq!(
            running.config_poll_interval,
            running.capability_report_interval
        );
        let same = load(FULL, &env(&[])).unwrap();
        assert_eq!(running.reload_from(&same), Reloaded::default());

        let edited = FULL.replace("labels: [gpu]", "labels: [gpu, fast]")
            + "sandbox:\n  max_concurrency: 3\n  limits: {memory_mib: 64}\n\
               orchestrator_extra: x\n";
        // An unknown key is an error, and a failed reload changes nothing.
        assert!(load(&edited, &env(&[])).is_err());
        let edited = edited.replace("orchestrator_extra: x\n", "");
        let new = load(
            &edited,
            &env(&[("HTTP_TIMEOUT", "20"), ("CONFIG_POLL_INTERVAL", "5s")]),
        )
        .unwrap();
        assert_eq!(new.config_poll_interval, Duration::from_secs(5));
        let reloaded = running.reload_from(&new);
        assert_eq!(reloaded.applied, ["node.labels", "sandbox.max_concurrency"]);
        assert_eq!(reloaded.need_restart, ["orchestrator", "sandbox"]);
        assert_eq!(running.labels, ["gpu", "fast"]);
        assert_eq!(running.sandbox.max_concurrency, Some(3));
        // Everything else keeps its running value.
        assert_eq!(running.sandbox.limits.memory_mib, None);
        assert_eq!(running.request_timeout, Duration::from_secs(10));
        assert!(
            load(FULL, &env(&[("CONFIG_POLL_INTERVAL", "0")]))
                .unwrap_err()
                .to_string()
                .contains("orchestrator.poll_interval_seconds")
        );
    }

    #[test]
    fn a_complete_file_resolves_with_defaults() {
        let cfg = load(FULL, &env(&[])).unwrap();
        assert_eq!(cfg.orchestrator_url.as_str(), "http://10.0.0.1:12082/");
        assert_eq!(cfg.node_slug, "node-01");
        assert_eq!(cfg.worker.listen_port, 12090);
        assert_eq!(cfg.inference.url.port(), Some(11500));
        assert_eq!(cfg.inference.image, DEFAULT_OLLAMA_IMAGE);
        assert_eq!(
            cfg.sandbox.mount_root,
            Path::new("/var/lib/cynode/state/sandbox_mounts")
        );
        assert_eq!(cfg.sandbox.allowed_images, vec![DEFAULT_SANDBOX_IMAGE]);
        assert_eq!(cfg.capability_report_interval, Duration::from_secs(60));
    }

    #[test]
    fn upstream_env_names_override_the_file() {
        let cfg = load(
            FULL,
            &env(&[
                ("ORCHESTRATOR_URL", "http://orch:12082"),
                ("NODE_SLUG", "other"),
                ("NODE_ADVERTISED_WORKER_API_URL", "http://w:12091"),
                ("CYNODE_STATE_DIR", "/srv/state"),
                ("OLLAMA_IMAGE", "localhost/inference:1"),
                ("CAPABILITY_REPORT_INTERVAL", "2m"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.orchestrator_url.host_str(), Some("orch"));
        assert_eq!(cfg.node_slug, "other");
        assert_eq!(cfg.worker.advertised_url.port(), Some(12091));
        assert_eq!(
            cfg.sandbox.mount_root,
            Path::new("/srv/state/sandbox_mounts")
        );
        assert_eq!(cfg.inference.image, "localhost/inference:1");
        assert_eq!(cfg.capability_report_interval, Duration::from_secs(120));
    }

    #[test]
    fn missing_keys_are_named_with_their_env_override() {
        let err = load("version: 1\n", &env(&[])).unwrap_err().to_string();
        assert!(err.contains("`orchestrator.url`"), "{err}");
        assert!(err.contains("ORCHESTRATOR_URL"), "{err}");
        let err = load("orchestrator: {url: 'http://o:1'}\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`node.id`"), "{err}");
        let err = load(
            "orchestrator: {url: 'http://o:1'}\nnode: {id: n}\n",
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`worker_api.public_base_url`"), "{err}");
    }

    #[test]
    fn malformed_values_name_the_key() {
        let err = load("orchestrator:\n  url: [1, 2]\n", &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("orchestrator.url"), "{err}");
        let err = load(&FULL.replace("node-01", "Node 01!"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`node.id`"), "{err}");
        let err = load(&FULL.replace("http://10.0.0.1:12082", "ftp://x"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`orchestrator.url`"), "{err}");
        let err = load("version: 2\n", &env(&[])).unwrap_err().to_string();
        assert!(err.contains("`version`"), "{err}");
        let err = load(": : :\n  - [", &env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }

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

    #[test]
    fn durations_accept_go_style_units_in_env_and_file() {
        let cfg = load(
            &format!(
                "{FULL}sandbox:\n  timeouts: {{default_seconds: 90, max_seconds: 1h30m}}\n\
                 shutdown: {{grace_seconds: 500ms}}\n"
            ),
            &env(&[
                ("HTTP_TIMEOUT", "1m30s"),
                ("CAPABILITY_REPORT_INTERVAL", "45"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.request_timeout, Duration::from_secs(90));
        assert_eq!(cfg.capability_report_interval, Duration::from_secs(45));
        assert_eq!(cfg.sandbox.default_timeout_secs, Some(90));
        assert_eq!(cfg.sandbox.max_timeout_secs, Some(5400));
        assert_eq!(cfg.sandbox.limits, SandboxLimitSettings::default());
        assert_eq!(cfg.shutdown_grace, Duration::from_millis(500));
        let err = load(FULL, &env(&[("HTTP_TIMEOUT", "5 fortnights")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTP_TIMEOUT"), "{err}");
        let err = load(
            &format!("{FULL}sandbox:\n  timeouts: {{max_seconds: 10ms}}\n"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sandbox.timeouts.max_seconds"), "{err}");
        let err = load(
            &FULL.replace("worker_api:\n", "worker_api:\n  listen_host: localhost\n"),
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("worker_api.listen_host"), "{err}");
    }
}
