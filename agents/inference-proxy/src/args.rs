//! The sidecar's command line, typed once: the worker API renders it with [`SidecarArgs::to_args`]
//! when it creates the sidecar container, and the sidecar parses it with [`SidecarArgs::parse`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the sandbox expects its model server inside the pod (Ollama's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11434";
/// Largest request body the sidecar forwards (10 MiB); bigger ones get 413.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Longest a request may take from its first byte to the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections served at once; more are answered 503 at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// Paths inside the sidecar container. The directory is the job's own socket directory on the
/// host, bind-mounted into the sidecar only.
pub const CONTAINER_SOCKET_DIR: &str = "/run/cynode/inference";
pub const CONTAINER_SOCKET: &str = "/run/cynode/inference/inference.sock";
pub const CONTAINER_READY_FILE: &str = "/run/cynode/inference/sidecar.ready";
/// Where the worker mounts this binary (read-only) in the sidecar container.
pub const CONTAINER_BINARY: &str = "/run/cynode/bin/cynode-inference-proxy";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarArgs {
    /// TCP address inside the pod (loopback only).
    pub listen: SocketAddr,
    /// The Unix socket the worker API opened for this job.
    pub upstream_socket: PathBuf,
    /// Written once the listener is bound, so the worker knows when to start the sandbox.
    pub ready_file: Option<PathBuf>,
    pub max_body_bytes: u64,
    pub timeout: Duration,
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

pub const USAGE: &str = "usage: cynode-inference-proxy --upstream-socket PATH [--listen ADDR] \
[--ready-file PATH] [--max-body-bytes N] [--timeout-secs N] [--max-connections N]";

impl SidecarArgs {
    /// The defaults for a sidecar in a job's pod, talking to `upstream_socket`.
    pub fn for_pod() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            upstream_socket: PathBuf::from(CONTAINER_SOCKET),
            ready_file: Some(PathBuf::from(CONTAINER_READY_FILE)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// The argv (without the program name) that [`SidecarArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--listen".to_owned(),
            self.listen.to_string(),
            "--upstream-socket".to_owned(),
            self.upstream_socket.display().to_string(),
            "--max-body-bytes".to_owned(),
            self.max_body_bytes.to_string(),
            "--timeout-secs".to_owned(),
            self.timeout.as_secs().to_string(),
            "--max-connections".to_owned(),
            self.max_connections.to_string(),
        ];
        if let Some(ready) = &self.ready_file {
            args.extend(["--ready-file".to_owned(), ready.display().to_string()]);
        }
        args
    }

    /// Parses the argv after the program name. Every value is checked; `--help` is an error
    /// carrying the usage line.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ArgsError> {
        let mut parsed = Self::for_pod();
        parsed.ready_file = None;
        let mut upstream = None;
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
                "--listen" => {
                    parsed.listen = value.parse().map_err(|_| bad("not a socket address"))?;
                }
                "--upstream-socket" => upstream = Some(PathBuf::from(&value)),
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
        parsed.upstream_socket =
            upstream.ok_or_else(|| ArgsError(format!("--upstream-socket is required\n{USAGE}")))?;
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
        let pod = SidecarArgs::for_pod();
        assert_eq!(SidecarArgs::parse(pod.to_args()).unwrap(), pod);
        let other = SidecarArgs {
            listen: "127.0.0.1:9".parse().unwrap(),
            upstream_socket: "/s".into(),
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
        assert!(
            parse(&[])
                .unwrap_err()
                .0
                .contains("--upstream-socket is required")
        );
        assert!(
            parse(&["--upstream-socket"])
                .unwrap_err()
                .0
                .contains("needs a value")
        );
        assert!(parse(&["--upstream-socket", "/s", "--timeout-secs", "0"]).is_err());
        assert!(parse(&["--upstream-socket", "/s", "--listen", "nowhere"]).is_err());
        assert!(
            parse(&["--upstream-socket", "/s", "--bogus", "1"])
                .unwrap_err()
                .0
                .contains("unknown flag")
        );
    }
}
