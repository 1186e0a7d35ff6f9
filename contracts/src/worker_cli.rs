//! The worker API's command line, shared by the worker API (which parses it) and the node manager
//! (which builds a value and renders it with [`WorkerCli::to_args`]), so that neither side spells
//! a flag by hand. Every flag also reads an env var, for a worker API run as its own unit.
//!
//! The bearer token is deliberately not a flag: `--bearer-token-stdin` makes the worker read it
//! from its stdin, so it never shows in argv (`ps`, `/proc/<pid>/cmdline`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use url::Url;

use crate::worker::{MAX_OUTPUT_BYTES, MAX_REQUEST_BYTES};

/// Default of `--listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:12090";
/// Default of `--podman-socket`.
pub const DEFAULT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// Default of `--mount-root`.
pub const DEFAULT_MOUNT_ROOT: &str = "/var/lib/cynode/state/sandbox_mounts";
/// Default of `--default-image`.
pub const DEFAULT_IMAGE: &str = "localhost/cynode-sandbox:latest";
/// Default of `--default-timeout-secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;
/// Default of `--max-timeout-secs`.
pub const DEFAULT_MAX_TIMEOUT_SECS: u64 = 10800;
/// Default of `--job-retention-secs` (one day).
pub const DEFAULT_JOB_RETENTION_SECS: u64 = 86400;
/// Default of `--inference-timeout-secs`.
pub const DEFAULT_INFERENCE_TIMEOUT_SECS: u64 = 120;
/// Default of `--sandbox-memory-mib`.
pub const DEFAULT_SANDBOX_MEMORY_MIB: u64 = 2048;
/// Default of `--sandbox-cpu-millis` (one CPU).
pub const DEFAULT_SANDBOX_CPU_MILLIS: u64 = 1000;
/// Default of `--sandbox-pids-limit`.
pub const DEFAULT_SANDBOX_PIDS_LIMIT: u64 = 512;
/// How many uids and gids each sandbox's user namespace maps (container ids `0..65536`, so that
/// `nobody` (65534) exists too). The node manager reports user namespaces only where the
/// subordinate ranges hold at least this many.
pub const SANDBOX_USERNS_SIZE: u32 = 65536;

/// The least memory (MiB), CPU (thousandths) and pids a sandbox may be given, by the node or a
/// job: below these a container cannot start (the kernel's CFS quota has a 1 ms floor).
pub const MIN_SANDBOX_MEMORY_MIB: u64 = 4;
pub const MIN_SANDBOX_CPU_MILLIS: u64 = 10;
pub const MIN_SANDBOX_PIDS: u64 = 4;
/// Default of `--sandbox-tmp-mib`.
pub const DEFAULT_SANDBOX_TMP_MIB: u64 = 256;
/// Default of `--sandbox-log-max-bytes` (32 MiB): Podman writes each output line with a
/// timestamp prefix of about 40 bytes, so this keeps the first 256 KiB of each stream on disk
/// even for very short lines.
pub const DEFAULT_SANDBOX_LOG_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Where containers-common installs Podman's default seccomp profile (Debian, Fedora).
pub const DEFAULT_SECCOMP_BASE: &str = "/usr/share/containers/seccomp.json";
/// The signal that asks a running worker API to *drain* (`kill -USR1`): stop listening at once,
/// finish every request and run it has (no job is interrupted), then exit 0. The node manager
/// sends it before it replaces its worker with one of a new configuration, and starts the new
/// one only after the old one exited, so two workers never listen on the port or drive the same
/// sandbox. A SIGTERM during the drain still stops the remaining runs as on any shutdown.
pub const DRAIN_SIGNAL: &str = "SIGUSR1";
/// Name of the inference sidecar binary the worker looks for next to its own executable when
/// `--inference-proxy-binary` is not given.
pub const INFERENCE_PROXY_BINARY_NAME: &str = "cynode-inference-proxy";

/// CyNodeAI worker API: runs jobs in Podman sandboxes.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "cynode-worker-api", version, about)]
pub struct WorkerCli {
    /// Address the HTTP API listens on.
    #[arg(long, env = "WORKER_API_LISTEN_ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The Podman REST API socket.
    #[arg(long, env = "CYNODE_PODMAN_SOCKET", default_value = DEFAULT_PODMAN_SOCKET)]
    pub podman_socket: PathBuf,

    /// Per-job host directories live here: `<mount-root>/<job_id>/workspace`.
    #[arg(long, env = "CYNODE_SANDBOX_MOUNT_ROOT", default_value = DEFAULT_MOUNT_ROOT)]
    pub mount_root: PathBuf,

    /// Image used when a job names none.
    #[arg(long, env = "CYNODE_SANDBOX_DEFAULT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub default_image: String,

    /// Image a job may use (repeatable). Without any, only the default image is allowed.
    #[arg(
        long = "allowed-image",
        env = "CYNODE_SANDBOX_ALLOWED_IMAGES",
        value_delimiter = ','
    )]
    pub allowed_images: Vec<String>,

    /// Timeout of a job that asks for none (seconds).
    #[arg(long, env = "CYNODE_SANDBOX_DEFAULT_TIMEOUT_SECS", default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub default_timeout_secs: u64,

    /// Longest timeout a job may ask for (seconds); a longer one is refused with 400.
    #[arg(long, env = "CYNODE_SANDBOX_MAX_TIMEOUT_SECS", default_value_t = DEFAULT_MAX_TIMEOUT_SECS)]
    pub max_timeout_secs: u64,

    /// Cap of stdout and of stderr in a result (bytes each).
    #[arg(long, env = "CYNODE_SANDBOX_MAX_OUTPUT_BYTES", default_value_t = MAX_OUTPUT_BYTES)]
    pub max_output_bytes: usize,

    /// Memory limit of each sandbox (MiB); swap is limited to the same total (no extra swap).
    #[arg(long, env = "CYNODE_SANDBOX_MEMORY_MIB", default_value_t = DEFAULT_SANDBOX_MEMORY_MIB,
          value_parser = clap::value_parser!(u64).range(MIN_SANDBOX_MEMORY_MIB..=1 << 30))]
    pub sandbox_memory_mib: u64,

    /// CPU limit of each sandbox in thousandths of a CPU (1000 = one CPU).
    #[arg(long, env = "CYNODE_SANDBOX_CPU_MILLIS", default_value_t = DEFAULT_SANDBOX_CPU_MILLIS,
          value_parser = clap::value_parser!(u64).range(MIN_SANDBOX_CPU_MILLIS..=1_000_000))]
    pub sandbox_cpu_millis: u64,

    /// Most processes and threads one sandbox may have at once.
    #[arg(long, env = "CYNODE_SANDBOX_PIDS_LIMIT", default_value_t = DEFAULT_SANDBOX_PIDS_LIMIT,
          value_parser = clap::value_parser!(u64).range(MIN_SANDBOX_PIDS..=4_194_304))]
    pub sandbox_pids_limit: u64,

    /// Size of each sandbox's `/tmp` tmpfs (MiB); it also counts against the memory limit.
    #[arg(long, env = "CYNODE_SANDBOX_TMP_MIB", default_value_t = DEFAULT_SANDBOX_TMP_MIB,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub sandbox_tmp_mib: u64,

    /// Size of each sandbox's `/workspace` (MiB). Set: `/workspace` is a tmpfs of that size,
    /// counted against the memory limit and gone with the sandbox (this needs no filesystem
    /// quota on the host). Unset: a directory on the host under the mount root, kept after the
    /// run, limited only by the host's disk.
    #[arg(long, env = "CYNODE_SANDBOX_WORKSPACE_MIB",
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub sandbox_workspace_mib: Option<u64>,

    /// Cap of a sandbox's log file on the host (bytes); Podman starts the file afresh when a
    /// write would pass it. Must hold the returned output with Podman's per-line prefixes.
    #[arg(long, env = "CYNODE_SANDBOX_LOG_MAX_BYTES", default_value_t = DEFAULT_SANDBOX_LOG_MAX_BYTES,
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub sandbox_log_max_bytes: u64,

    /// The node's default container seccomp profile (containers-common's `seccomp.json`), which
    /// the worker tightens (no new user namespaces) for its sandboxes.
    #[arg(long, env = "CYNODE_SANDBOX_SECCOMP_BASE", default_value = DEFAULT_SECCOMP_BASE)]
    pub seccomp_base_profile: PathBuf,

    /// Largest request body (bytes); never above 10 MiB. Bigger bodies get 413.
    #[arg(long, env = "WORKER_API_MAX_REQUEST_BYTES", default_value_t = MAX_REQUEST_BYTES)]
    pub max_request_bytes: u64,

    /// How long a finished job's directory (workspace and stored result) is kept (seconds). It
    /// must outlast the orchestrator's dispatch lease: a repeated delivery after a lease expiry
    /// finds the first run's result only while it is kept.
    #[arg(long, env = "CYNODE_SANDBOX_JOB_RETENTION_SECS", default_value_t = DEFAULT_JOB_RETENTION_SECS)]
    pub job_retention_secs: u64,

    /// The node's inference server (an http(s) URL with a host, e.g. `http://127.0.0.1:11434`).
    /// Absent: this node offers no inference. The worker may connect over TCP to this URL's port
    /// and to no other.
    #[arg(long, env = "CYNODE_INFERENCE_URL", value_parser = parse_http_url)]
    pub inference_url: Option<Url>,

    /// How long one inference request may take (seconds, positive).
    #[arg(
        long,
        env = "CYNODE_INFERENCE_TIMEOUT_SECS",
        default_value_t = DEFAULT_INFERENCE_TIMEOUT_SECS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub inference_timeout_secs: u64,

    /// The static inference sidecar binary. Default: `cynode-inference-proxy` next to the worker
    /// API's own executable.
    #[arg(long, env = "CYNODE_INFERENCE_PROXY_BINARY")]
    pub inference_proxy_binary: Option<PathBuf>,

    /// The orchestrator's MCP gateway (an http(s) URL, e.g. `http://127.0.0.1:12083/mcp`).
    /// Absent: jobs with `sandbox.use_mcp` are refused. A job's grant (`mcp.url`) must be on
    /// this URL's origin; the worker may connect over TCP to its port (and the inference port)
    /// and to no other.
    #[arg(long, env = "CYNODE_MCP_GATEWAY_URL", value_parser = parse_http_url)]
    pub mcp_gateway_url: Option<Url>,

    /// The worker's state directory; its telemetry database is
    /// `<state-dir>/telemetry/telemetry.db`. Default: the mount root.
    #[arg(long, env = "CYNODE_WORKER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Where Prometheus scrapes `/metrics` (HOST:PORT; keep it on loopback). Absent: no
    /// metrics listener.
    #[arg(long, env = "CYNODE_WORKER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// The node's slug, as the orchestrator knows it; the Telemetry API reports it.
    #[arg(long, env = "CYNODE_WORKER_NODE_SLUG")]
    pub node_slug: Option<String>,

    /// Read the bearer token from the first line of stdin (how node-manager hands it over).
    #[arg(long)]
    pub bearer_token_stdin: bool,

    /// Stop (as on SIGTERM) when the parent process dies, even if it was killed outright, so a
    /// supervisor's crash never leaves an orphaned worker API behind.
    #[arg(long)]
    pub exit_with_parent: bool,
}

impl Default for WorkerCli {
    /// Every flag at its documented default (env vars are not consulted).
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            podman_socket: DEFAULT_PODMAN_SOCKET.into(),
            mount_root: DEFAULT_MOUNT_ROOT.into(),
            default_image: DEFAULT_IMAGE.to_owned(),
            allowed_images: Vec::new(),
            default_timeout_secs: DEFAULT_TIMEOUT_SECS,
            max_timeout_secs: DEFAULT_MAX_TIMEOUT_SECS,
            max_output_bytes: MAX_OUTPUT_BYTES,
            sandbox_memory_mib: DEFAULT_SANDBOX_MEMORY_MIB,
            sandbox_cpu_millis: DEFAULT_SANDBOX_CPU_MILLIS,
            sandbox_pids_limit: DEFAULT_SANDBOX_PIDS_LIMIT,
            sandbox_tmp_mib: DEFAULT_SANDBOX_TMP_MIB,
            sandbox_workspace_mib: None,
            sandbox_log_max_bytes: DEFAULT_SANDBOX_LOG_MAX_BYTES,
            seccomp_base_profile: DEFAULT_SECCOMP_BASE.into(),
            max_request_bytes: MAX_REQUEST_BYTES,
            job_retention_secs: DEFAULT_JOB_RETENTION_SECS,
            inference_url: None,
            inference_timeout_secs: DEFAULT_INFERENCE_TIMEOUT_SECS,
            inference_proxy_binary: None,
            mcp_gateway_url: None,
            state_dir: None,
            metrics_listen: None,
            node_slug: None,
            bearer_token_stdin: false,
            exit_with_parent: false,
        }
    }
}

impl WorkerCli {
    /// The arguments (without the program name) that parse back into `self`. Every setting is
    /// written out, so the child's behaviour does not depend on env vars it happens to inherit;
    /// `None` options and `false` switches are left out.
    pub fn to_args(&self) -> Vec<String> {
        // Destructured so that a new field cannot be forgotten here.
        let Self {
            listen,
            podman_socket,
            mount_root,
            default_image,
            allowed_images,
            default_timeout_secs,
            max_timeout_secs,
            max_output_bytes,
            sandbox_memory_mib,
            sandbox_cpu_millis,
            sandbox_pids_limit,
            sandbox_tmp_mib,
            sandbox_workspace_mib,
            sandbox_log_max_bytes,
            seccomp_base_profile,
            max_request_bytes,
            job_retention_secs,
            inference_url,
            inference_timeout_secs,
            inference_proxy_binary,
            mcp_gateway_url,
            state_dir,
            metrics_listen,
            node_slug,
            bearer_token_stdin,
            exit_with_parent,
        } = self;
        let mut args = Vec::new();
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        flag("listen", listen.to_string());
        flag("podman-socket", podman_socket.display().to_string());
        flag("mount-root", mount_root.display().to_string());
        flag("default-image", default_image.clone());
        for image in allowed_images {
            flag("allowed-image", image.clone());
        }
        flag("default-timeout-secs", default_timeout_secs.to_string());
        flag("max-timeout-secs", max_timeout_secs.to_string());
        flag("max-output-bytes", max_output_bytes.to_string());
        flag("sandbox-memory-mib", sandbox_memory_mib.to_string());
        flag("sandbox-cpu-millis", sandbox_cpu_millis.to_string());
        flag("sandbox-pids-limit", sandbox_pids_limit.to_string());
        flag("sandbox-tmp-mib", sandbox_tmp_mib.to_string());
        if let Some(mib) = sandbox_workspace_mib {
            flag("sandbox-workspace-mib", mib.to_string());
        }
        flag("sandbox-log-max-bytes", sandbox_log_max_bytes.to_string());
        flag(
            "seccomp-base-profile",
            seccomp_base_profile.display().to_string(),
        );
        flag("max-request-bytes", max_request_bytes.to_string());
        flag("job-retention-secs", job_retention_secs.to_string());
        if let Some(url) = inference_url {
            flag("inference-url", url.to_string());
        }
        flag("inference-timeout-secs", inference_timeout_secs.to_string());
        if let Some(binary) = inference_proxy_binary {
            flag("inference-proxy-binary", binary.display().to_string());
        }
        if let Some(url) = mcp_gateway_url {
            flag("mcp-gateway-url", url.to_string());
        }
        if let Some(dir) = state_dir {
            flag("state-dir", dir.display().to_string());
        }
        if let Some(addr) = metrics_listen {
            flag("metrics-listen", addr.to_string());
        }
        if let Some(slug) = node_slug {
            flag("node-slug", slug.clone());
        }
        if *bearer_token_stdin {
            args.push("--bearer-token-stdin".to_owned());
        }
        if *exit_with_parent {
            args.push("--exit-with-parent".to_owned());
        }
        args
    }
}

/// An http(s) URL with a host and a port (explicit or the scheme's).
fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    if url.port_or_known_default().is_none() {
        return Err("needs a port".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[String]) -> WorkerCli {
        WorkerCli::try_parse_from(
            std::iter::once("cynode-worker-api".to_owned()).chain(args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn every_value_survives_a_round_trip_through_argv() {
        let full = WorkerCli {
            listen: "127.0.0.1:4000".parse().unwrap(),
            podman_socket: "/run/user/1/podman.sock".into(),
            mount_root: "/srv/mounts with space".into(),
            default_image: "b:1".into(),
            allowed_images: vec!["b:1".into(), "c@sha256:00".into()],
            default_timeout_secs: 5,
            max_timeout_secs: 60,
            max_output_bytes: 1000,
            sandbox_memory_mib: 64,
            sandbox_cpu_millis: 250,
            sandbox_pids_limit: 32,
            sandbox_tmp_mib: 8,
            sandbox_workspace_mib: Some(16),
            sandbox_log_max_bytes: 100_000,
            seccomp_base_profile: "/etc/containers/seccomp.json".into(),
            max_request_bytes: 500,
            job_retention_secs: 7,
            inference_url: Some("http://127.0.0.1:11500".parse().unwrap()),
            inference_timeout_secs: 9,
            inference_proxy_binary: Some("/opt/bin/proxy".into()),
            mcp_gateway_url: Some("http://127.0.0.1:12083/mcp".parse().unwrap()),
            state_dir: Some("/var/lib/cynode/state".into()),
            metrics_listen: Some("127.0.0.1:12091".parse().unwrap()),
            node_slug: Some("node-01".into()),
            bearer_token_stdin: true,
            exit_with_parent: true,
        };
        assert_eq!(parse(&full.to_args()), full);
        let defaults = WorkerCli::default();
        assert_eq!(parse(&defaults.to_args()), defaults);
        assert_eq!(parse(&[]), defaults, "Default matches clap's defaults");
    }

    #[test]
    fn inference_flags_are_checked() {
        let ok = parse(&["--inference-url".into(), "https://gpu.lan/".into()]);
        assert_eq!(ok.inference_url.unwrap().port_or_known_default(), Some(443));
        for bad in [
            ["--inference-timeout-secs", "0"],
            ["--inference-url", "unix:/run/x.sock"],
            ["--inference-url", "not a url"],
        ] {
            assert!(
                WorkerCli::try_parse_from(std::iter::once("w").chain(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
