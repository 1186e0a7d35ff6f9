//! The worker API child process. Its bearer token goes through a pipe on stdin
//! (`--bearer-token-stdin`): never argv, env or a file, so no `ps`, `/proc/<pid>/environ` or
//! env dump shows it. The child gets none of our secret env vars nor the notify socket.

use std::net::{IpAddr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use cynode_contracts::node::NodeConfigurationPayload;
use cynode_contracts::routes;
use cynode_contracts::worker_cli::WorkerCli;
use cynode_service_kit::secrets::Secret;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::watch;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start the worker API {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("cannot hand the bearer token to the worker API: {0}")]
    Token(std::io::Error),
    #[error("the worker API exited during start-up ({0})")]
    Exited(ExitStatus),
    #[error("the worker API did not answer {url} within {secs}s")]
    NotHealthy { url: String, secs: u64 },
    #[error("no sandbox image is allowed both by this node and by the orchestrator's policy")]
    NoAllowedImage,
    #[error("worker_api.listen_host `{0}` is not an IP address")]
    ListenHost(String),
}

/// The worker API's command line derived from node.yaml and the delivered config. The node's
/// own limits can only be tightened by the orchestrator, never loosened. Every setting is
/// written out, so the worker does not depend on env vars it inherits; the bearer token is not
/// among them (`--bearer-token-stdin`).
pub fn worker_cli(
    config: &Config,
    delivered: &NodeConfigurationPayload,
) -> Result<WorkerCli, WorkerError> {
    let sandbox = &config.sandbox;
    let policy_images = delivered
        .policy
        .as_ref()
        .and_then(|p| p.sandbox.as_ref())
        .map(|s| s.allowed_images.clone())
        .unwrap_or_default();
    let allowed: Vec<String> = sandbox
        .allowed_images
        .iter()
        .filter(|img| policy_images.is_empty() || policy_images.contains(img))
        .cloned()
        .collect();
    if allowed.is_empty() {
        return Err(WorkerError::NoAllowedImage);
    }
    let default_image = if allowed.contains(&sandbox.default_image) {
        sandbox.default_image.clone()
    } else {
        allowed[0].clone()
    };
    let constraints = delivered.constraints.clone().unwrap_or_default();
    let defaults = WorkerCli::default();
    let max_timeout_secs = min_some(
        sandbox.max_timeout_secs,
        constraints.max_job_timeout_seconds,
    )
    .unwrap_or(defaults.max_timeout_secs);
    // The built-in default timeout must not exceed a tightened maximum.
    let default_timeout_secs = sandbox
        .default_timeout_secs
        .unwrap_or(defaults.default_timeout_secs)
        .min(max_timeout_secs);
    let max_request_bytes = min_some(
        config.worker.max_request_bytes,
        constraints.max_request_bytes,
    )
    .unwrap_or(defaults.max_request_bytes);
    let listen = listen_addr(&config.worker.listen_host, config.worker.listen_port)?;
    let limits = sandbox.limits;
    let caps = constraints.sandbox_limits.unwrap_or_default();
    Ok(WorkerCli {
        listen,
        podman_socket: sandbox.podman_socket.clone(),
        mount_root: sandbox.mount_root.clone(),
        default_image,
        allowed_images: allowed,
        default_timeout_secs,
        max_timeout_secs,
        max_request_bytes,
        sandbox_memory_mib: limited(
            limits.memory_mib,
            caps.memory_mib,
            defaults.sandbox_memory_mib,
        ),
        sandbox_cpu_millis: limited(
            limits.cpu_millis,
            caps.cpu_millis,
            defaults.sandbox_cpu_millis,
        ),
        sandbox_pids_limit: limited(limits.pids, caps.pids, defaults.sandbox_pids_limit),
        sandbox_tmp_mib: limited(limits.tmp_mib, caps.tmp_mib, defaults.sandbox_tmp_mib),
        sandbox_workspace_mib: min_some(limits.workspace_mib, caps.workspace_mib)
            .or(defaults.sandbox_workspace_mib),
        sandbox_log_max_bytes: limits
            .log_max_bytes
            .unwrap_or(defaults.sandbox_log_max_bytes),
        seccomp_base_profile: sandbox
            .seccomp_base_profile
            .clone()
            .unwrap_or_else(|| defaults.seccomp_base_profile.clone()),
        // The node's inference server, when this node offers inference; else none.
        inference_url: config
            .inference
            .wanted(sandbox.mode)
            .then(|| config.inference.url.clone()),
        // Sandbox agents' MCP requests go to the gateway the orchestrator names (it checked
        // the URL; one that does not parse leaves MCP off rather than failing the node).
        mcp_gateway_url: delivered
            .orchestrator
            .endpoints
            .mcp_gateway_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok()),
        // Telemetry lives in the node's state directory and names the node.
        state_dir: Some(config.state_dir.clone()),
        node_slug: Some(config.node_slug.clone()),
        metrics_listen: config.worker_metrics_listen,
        bearer_token_stdin: true,
        // If node-manager is killed outright (SIGKILL, OOM), its worker must not live on
        // unsupervised.
        exit_with_parent: true,
        ..defaults
    })
}

/// [`worker_cli`] rendered as the child's argv.
pub fn worker_args(
    config: &Config,
    delivered: &NodeConfigurationPayload,
) -> Result<Vec<String>, WorkerError> {
    Ok(worker_cli(config, delivered)?.to_args())
}

fn listen_addr(host: &str, port: u16) -> Result<SocketAddr, WorkerError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host
        .parse()
        .map_err(|_| WorkerError::ListenHost(host.to_owned()))?;
    Ok(SocketAddr::new(ip, port))
}

/// The node's own limit (else the built-in default), lowered to the orchestrator's cap.
fn limited(own: Option<u64>, cap: Option<u64>, default: u64) -> u64 {
    let own = own.unwrap_or(default);
    cap.map_or(own, |cap| own.min(cap))
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The running worker API. A task owns the child and publishes its exit status, so the
/// supervisor can watch for a crash while also probing health and stopping it by pid.
#[derive(Debug)]
pub struct WorkerProcess {
    pid: Option<u32>,
    exit: watch::Receiver<Option<ExitStatus>>,
    health_url: String,
}

impl WorkerProcess {
    /// Starts the worker API, writes the token to its stdin and closes it.
    pub async fn spawn(
        config: &Config,
        args: &[String],
        token: &Secret,
    ) -> Result<Self, WorkerError> {
        let binary = &config.worker.binary;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            // The worker must not claim our readiness nor see our secrets.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        for name in &config.secret_env {
            command.env_remove(name);
        }
        let mut child = command.spawn().map_err(|source| WorkerError::Spawn {
            binary: binary.display().to_string(),
            source,
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let written = async {
            stdin.write_all(token.expose().as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.shutdown().await
        }
        .await;
        drop(stdin);
        let pid = child.id();
        let (tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = tx.send(status.ok());
        });
        let process = Self {
            pid,
            exit,
            health_url: health_url(&config.worker.listen_host, config.worker.listen_port),
        };
        if let Err(e) = written {
            process.stop(Duration::from_secs(5)).await;
            return Err(WorkerError::Token(e));
        }
        Ok(process)
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// A handle that resolves when the child exits.
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.clone()
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits until `/healthz` answers 200, failing early if the child exits.
    pub async fn wait_healthy(
        &self,
        http: &reqwest::Client,
        limit: Duration,
    ) -> Result<(), WorkerError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(WorkerError::Exited(status));
            }
            if self.healthy(http).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WorkerError::NotHealthy {
                    url: self.health_url.clone(),
                    secs: limit.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn healthy(&self, http: &reqwest::Client) -> bool {
        http.get(&self.health_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Asks the worker to drain ([`cynode_contracts::worker_cli::DRAIN_SIGNAL`]: it stops
    /// listening at once, answers what is in flight, lets every run end on its own and exits)
    /// and waits up to `limit` for it to exit. While it waits it pings systemd's watchdog every
    /// `ping_every`: a drain lasts as long as the longest running job. Returns whether it exited.
    pub async fn drain(&self, limit: Duration, ping_every: Duration) -> bool {
        use std::str::FromStr;
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return true;
        };
        if self.exit_status().is_some() {
            return true;
        }
        let signal = Signal::from_str(cynode_contracts::worker_cli::DRAIN_SIGNAL)
            .expect("DRAIN_SIGNAL names a signal");
        let _ = kill(Pid::from_raw(pid), signal);
        let deadline = tokio::time::Instant::now() + limit;
        let mut exit = self.exit.clone();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let waited =
                tokio::time::timeout(ping_every.min(left), exit.wait_for(Option::is_some)).await;
            match waited {
                Ok(_) => return true,
                Err(_) => cynode_service_kit::notify::watchdog(),
            }
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns whether it stopped within the grace period.
    pub async fn stop(mut self, grace: Duration) -> bool {
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return true;
        };
        if self.exit_status().is_some() {
            return true;
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let stopped = tokio::time::timeout(grace, self.exit.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|status| *status);
        if let Some(status) = stopped {
            tracing::info!(%status, "worker API stopped");
            return true;
        }
        tracing::warn!(
            "worker API ignored SIGTERM for {}s; killing it",
            grace.as_secs()
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = self.exit.wait_for(Option::is_some).await;
        false
    }
}

fn health_url(listen_host: &str, port: u16) -> String {
    let host = match listen_host {
        "0.0.0.0" | "" => "127.0.0.1".to_owned(),
        "::" => "[::1]".to_owned(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    };
    format!("http://{host}:{port}{}", routes::HEALTHZ)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cynode_contracts::node::{
        ConfigEndpoints, ConfigOrchestrator, NodeConstraints, NodePolicy, SandboxPolicy,
        WorkerApiConfig,
    };
    use cynode_contracts::worker::SandboxResources;

    use clap::Parser;

    use super::*;

    fn delivered(
        allowed: &[&str],
        constraints: Option<NodeConstraints>,
    ) -> NodeConfigurationPayload {
        NodeConfigurationPayload {
            version: 1,
            config_version: "v".into(),
            issued_at: Utc::now(),
            node_slug: "n".into(),
            orchestrator: ConfigOrchestrator {
                base_url: "http://o".into(),
                endpoints: ConfigEndpoints {
                    worker_api_target_url: "http://w".into(),
                    node_report_url: "http://o/r".into(),
                    mcp_gateway_url: None,
                },
            },
            sandbox_registries: vec![],
            require_digest_pinning: false,
            policy: Some(NodePolicy {
                sandbox: Some(SandboxPolicy {
                    allowed_images: allowed.iter().map(|s| (*s).to_owned()).collect(),
                    ..Default::default()
                }),
            }),
            worker_api: WorkerApiConfig {
                orchestrator_bearer_token: "t".into(),
                orchestrator_bearer_token_expires_at: None,
            },
            inference_backend: None,
            constraints,
            notes: String::new(),
        }
    }

    #[test]
    fn the_token_never_appears_in_the_arguments_and_limits_only_tighten() {
        let cfg = crate::config::for_tests(
            "sandbox:\n  default_image: a\n  allowed_images: [a, b]\n  timeouts: {max_seconds: 600}\n",
        );
        let delivered = delivered(
            &["b", "c"],
            Some(NodeConstraints {
                max_request_bytes: Some(500),
                max_job_timeout_seconds: Some(900),
                sandbox_limits: Some(SandboxResources {
                    memory_mib: Some(1024),
                    pids: Some(4096),
                    workspace_mib: Some(64),
                    ..Default::default()
                }),
            }),
        );
        let cli = worker_cli(&cfg, &delivered).unwrap();
        assert_eq!(cli.default_image, "b");
        assert_eq!(cli.allowed_images, ["b"]);
        assert_eq!(cli.max_timeout_secs, 600);
        assert_eq!(cli.default_timeout_secs, 600);
        assert_eq!(cli.max_request_bytes, 500);
        // The orchestrator's caps lower the node's limits, never raise them.
        let defaults = WorkerCli::default();
        assert_eq!(cli.sandbox_memory_mib, 1024);
        assert_eq!(cli.sandbox_pids_limit, defaults.sandbox_pids_limit);
        assert_eq!(cli.sandbox_cpu_millis, defaults.sandbox_cpu_millis);
        assert_eq!(cli.sandbox_workspace_mib, Some(64));
        assert_eq!(cli.listen, "0.0.0.0:12090".parse().unwrap());
        assert!(cli.bearer_token_stdin && cli.exit_with_parent);
        assert_eq!(cli.state_dir.as_ref(), Some(&cfg.state_dir));
        assert_eq!(cli.node_slug.as_ref(), Some(&cfg.node_slug));

        let args = worker_args(&cfg, &delivered).unwrap();
        assert!(!args.iter().any(|a| a == "t"), "{args:?}");
        assert_eq!(
            WorkerCli::try_parse_from(std::iter::once("w".to_owned()).chain(args)).unwrap(),
            cli,
            "the worker parses exactly what node-manager built"
        );
    }

    #[test]
    fn sandbox_limits_from_the_config_file_reach_the_worker() {
        let cfg = crate::config::for_tests(
            "sandbox:\n  limits: {memory_mib: 64, pids: 32, log_max_bytes: 100000, workspace_mib: 512}\n",
        );
        let cli = worker_cli(&cfg, &delivered(&[], None)).unwrap();
        let defaults = WorkerCli::default();
        assert_eq!(cli.sandbox_memory_mib, 64);
        assert_eq!(cli.sandbox_pids_limit, 32);
        assert_eq!(cli.sandbox_log_max_bytes, 100_000);
        assert_eq!(cli.sandbox_cpu_millis, defaults.sandbox_cpu_millis);
        assert_eq!(cli.sandbox_tmp_mib, defaults.sandbox_tmp_mib);
        assert_eq!(cli.sandbox_workspace_mib, Some(512));
        let unlimited = worker_cli(&crate::config::for_tests(""), &delivered(&[], None)).unwrap();
        assert_eq!(unlimited.sandbox_workspace_mib, None);
        let args = worker_args(&cfg, &delivered(&[], None)).unwrap();
        assert!(
            args.windows(2).any(|w| w == ["--sandbox-memory-mib", "64"]),
            "{args:?}"
        );
    }

    #[test]
    fn the_inference_url_is_passed_only_when_the_node_offers_inference() {
        let cli = |yaml: &str| {
            worker_cli(&crate::config::for_tests(yaml), &delivered(&[], None)).unwrap()
        };
        assert_eq!(
            cli("inference: {url: 'http://127.0.0.1:11500'}\n")
                .inference_url
                .map(|u| u.to_string()),
            Some("http://127.0.0.1:11500/".to_owned())
        );
        assert_eq!(cli("inference: {mode: disabled}\n").inference_url, None);
        assert_eq!(cli("sandbox: {mode: sandbox_only}\n").inference_url, None);
        assert_eq!(listen_addr("::1", 7).unwrap(), "[::1]:7".parse().unwrap());
        assert!(listen_addr("localhost", 7).is_err());
    }

    #[test]
    fn a_policy_that_allows_none_of_our_images_is_an_error() {
        let cfg = crate::config::for_tests("");
        assert!(matches!(
            worker_args(&cfg, &delivered(&["elsewhere"], None)),
            Err(WorkerError::NoAllowedImage)
        ));
    }
}
