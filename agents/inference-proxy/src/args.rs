//! The sidecar's command line, typed once: the worker API renders it with [`SidecarArgs::to_args`]
//! when it creates the sidecar container, and the sidecar parses it with [`SidecarArgs::parse`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the sandbox expects its model server inside the pod (Ollama's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11434";
/// Where a job with MCP finds the orchestrator's MCP gateway inside the pod: the orchestrator's
/// own MCP port, so the URL a job sees has the shape of the real one.
pub const MCP_LISTEN: &str = "127.0.0.1:12083";
/// Largest request body the sidecar forwards (10 MiB); bigger ones get 413.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Longest a request may take from its first byte to the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections served at once; more are answered 503 at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// The job's sockets inside the sidecar container. Each one's directory is the job's socket
/// directory of the same name on the host, bind-mounted into the sidecar only.
pub const CONTAINER_SOCKET: &str = "/run/cynode/inference/inference.sock";
pub const CONTAINER_MCP_SOCKET: &str = "/run/cynode/mcp/mcp.sock";
/// Written into the first forward's socket directory once the sidecar listens.
pub const READY_FILE_NAME: &str = "sidecar.ready";
/// Where the worker mounts this binary (read-only) in the sidecar container.
pub const CONTAINER_BINARY: &str = "/run/cynode/bin/cynode-inference-proxy";

/// One loopback listener in the pod and the Unix socket it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// TCP address inside the pod (loopback only).
    pub listen: SocketAddr,
    /// The Unix socket the worker API opened for this job.
    pub upstream_socket: PathBuf,
}

impl Forward {
    /// The node's model server: Ollama's port, the job's inference socket.
    pub fn inference() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            upstream_socket: PathBuf::from(CONTAINER_SOCKET),
        }
    }

    /// The orchestrator's MCP gateway: [`MCP_LISTEN`], the job's MCP socket.
    pub fn mcp() -> Self {
        Self {
            listen: MCP_LISTEN.parse().expect("valid MCP address"),
            upstream_socket: PathBuf::from(CONTAINER_MCP_SOCKET),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarArgs {
    /// At least one; each listener forwards to its own socket.
    pub forwards: Vec<Forward>,
    /// Written once every listener is bound, so the worker knows when to start the sandbox.
    pub ready_file: Option<PathBuf>,
    pub max_body_bytes: u64,
    pub timeout: Duration,
    /// Connections served at once, over all listeners.
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgsError(pub String);

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgsError {}

pub const USAGE: &str = "usage: cynode-inference-proxy --forward LISTEN_ADDR=SOCKET_PATH... \
[--ready-file PATH] [--max-body-bytes N] [--timeout-secs N] [--max-connections N]";

impl SidecarArgs {
    /// The defaults for a sidecar in a job's pod serving `forwards` (not empty); the ready file
    /// goes into the first one's socket directory, which the worker watches.
    pub fn for_pod(forwards: Vec<Forward>) -> Self {
        let ready_file = forwards
            .first()
            .and_then(|f| f.upstream_socket.parent())
            .map(|dir| dir.join(READY_FILE_NAME));
        Self {
            forwards,
            ready_file,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// The argv (without the program name) that [`SidecarArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for forward in &self.forwards {
            args.extend([
                "--forward".to_owned(),
                format!("{}={}", forward.listen, forward.upstream_socket.display()),
            ]);
        }
        args.extend([
            "--max-body-bytes".to_owned(),
            self.max_body_bytes.to_string(),
            "--timeout-secs".to_owned(),
            self.timeout.as_secs().to_string(),
            "--max-connections".to_owned(),
            self.max_connections.to_string(),
        ]);
        if let Some(ready) = &self.ready_file {
            args.extend(["--ready-file".to_owned(), ready.display().to_string()]);
        }
        args
    }

    /// Parses the argv after the program name. Every value is checked; `--help` is an error
    /// carrying the usage line.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ArgsError> {
        let mut parsed = Self::for_pod(Vec::new());
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Err(ArgsError(USAGE.to_owned()));
            }
            let value = args
                .next()
                .ok_or_else(|| ArgsError(format!("{flag} needs a value\n{USAGE}")))?;
            let bad = |what: &str| ArgsError(format!("{flag} {value:?}: {what}"));
            match flag.as_str() {
                "--forward" => {
                    // A socket address has no `=`; the path after the first one may.
                    let (listen, socket) = value
                        .split_once('=')
                        .filter(|(_, socket)| !socket.is_empty())
                        .ok_or_else(|| bad("not LISTEN_ADDR=SOCKET_PATH"))?;
                    let listen: SocketAddr =
                        listen.parse().map_err(|_| bad("not a socket address"))?;
                    if parsed.forwards.iter().any(|f| f.listen == listen) {
                        return Err(bad("listens on an address already forwarded"));
                    }
                    parsed.forwards.push(Forward {
                        listen,
                        upstream_socket: PathBuf::from(socket),
                    });
                }
                "--ready-file" => parsed.ready_file = Some(PathBuf::from(&value)),
                "--max-body-bytes" => {
                    parsed.max_body_bytes =
                        positive(&value).ok_or_else(|| bad("not a positive integer"))?;
                }
                "--timeout-secs" => {
                    parsed.timeout = Duration::from_secs(
                        positive(&value).ok_or_else(|| bad("not a positive integer"))?,
                    );
                }
                "--max-connections" => {
                    parsed.max_connections = positive(&value)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| bad("not a positive integer"))?;
                }
                _ => return Err(ArgsError(format!("unknown flag {flag}\n{USAGE}"))),
            }
        }
        if parsed.forwards.is_empty() {
            return Err(ArgsError(format!("--forward is required\n{USAGE}")));
        }
        Ok(parsed)
    }
}

fn positive(value: &str) -> Option<u64> {
    value.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_arguments_parse_back_to_the_same_value() {
        let pod = SidecarArgs::for_pod(vec![Forward::inference()]);
        assert_eq!(
            pod.ready_file.as_deref(),
            Some(std::path::Path::new("/run/cynode/inference/sidecar.ready"))
        );
        assert_eq!(SidecarArgs::parse(pod.to_args()).unwrap(), pod);
        let both = SidecarArgs::for_pod(vec![Forward::mcp(), Forward::inference()]);
        assert_eq!(
            both.ready_file.as_deref(),
            Some(std::path::Path::new("/run/cynode/mcp/sidecar.ready"))
        );
        assert_eq!(SidecarArgs::parse(both.to_args()).unwrap(), both);
        let other = SidecarArgs {
            forwards: vec![Forward {
                listen: "127.0.0.1:9".parse().unwrap(),
                upstream_socket: "/s=x".into(),
            }],
            ready_file: None,
            max_body_bytes: 5,
            timeout: Duration::from_secs(7),
            max_connections: 1,
        };
        assert_eq!(SidecarArgs::parse(other.to_args()).unwrap(), other);
    }

    #[test]
    fn bad_command_lines_are_refused_with_a_reason() {
        let parse = |args: &[&str]| SidecarArgs::parse(args.iter().map(|s| (*s).to_owned()));
        assert!(parse(&[]).unwrap_err().0.contains("--forward is required"));
        assert!(
            parse(&["--forward"])
                .unwrap_err()
                .0
                .contains("needs a value")
        );
        let ok = "127.0.0.1:1=/s";
        assert!(parse(&["--forward", ok, "--timeout-secs", "0"]).is_err());
        assert!(parse(&["--forward", "nowhere=/s"]).is_err());
        assert!(parse(&["--forward", "127.0.0.1:1"]).is_err());
        assert!(parse(&["--forward", "127.0.0.1:1="]).is_err());
        assert!(
            parse(&["--forward", ok, "--forward", "127.0.0.1:1=/t"])
                .unwrap_err()
                .0
                .contains("already forwarded")
        );
        assert!(
            parse(&["--forward", ok, "--bogus", "1"])
                .unwrap_err()
                .0
                .contains("unknown flag")
        );
    }
}
