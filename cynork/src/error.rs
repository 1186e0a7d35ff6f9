//! The one error type of cynork and the exit code each kind maps to.
//!
//! Codes follow `cli_console_acceptance.md` §1.2, except that a gateway fault (5xx) and a task
//! that ended badly get codes of their own, so scripts can tell "the network is down" from
//! "the server broke" from "my job failed".

use std::path::PathBuf;

/// Exit codes; [`EXIT_CODES_HELP`] documents them in `--help`.
pub mod code {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 2;
    pub const AUTH: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const CONFLICT: i32 = 5;
    pub const REJECTED: i32 = 6;
    pub const NETWORK: i32 = 7;
    pub const INTERNAL: i32 = 8;
    pub const SERVER: i32 = 9;
    pub const TASK_FAILED: i32 = 10;
}

/// Shown after `--help` of the top-level command.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success (or a declined confirmation)
   2  usage: unknown flag, bad argument, unreadable or oversized input file, corrupt config file
   3  authentication: not logged in, token rejected or revoked (401), or not allowed (403)
   4  not found (404)
   5  conflict, e.g. cancelling a finished task (409)
   6  request rejected by the gateway (400, 413, 422, 429)
   7  network: cannot reach the gateway, or it did not answer in time
   8  internal error in cynork itself
   9  gateway server error (5xx)
  10  task create --wait / task result: the task finished as failed, canceled or superseded,
      or its command exited non-zero

Environment:
  CYNORK_GATEWAY_URL  gateway base URL (default http://localhost:12080)
  CYNORK_TOKEN        access token to use instead of the one saved by `cynork auth login`
  CYNORK_API_KEY      personal API key (cyn_...) to use instead of the saved login session
  XDG_CONFIG_HOME     config lives in $XDG_CONFIG_HOME/cynork/config.yaml (else ~/.config/...)";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("config file {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    TaskFailed(String),
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::Config { .. } => code::USAGE,
            Self::Auth(_) => code::AUTH,
            Self::NotFound(_) => code::NOT_FOUND,
            Self::Conflict(_) => code::CONFLICT,
            Self::Rejected(_) => code::REJECTED,
            Self::Network(_) => code::NETWORK,
            Self::Internal(_) => code::INTERNAL,
            Self::Server(_) => code::SERVER,
            Self::TaskFailed(_) => code::TASK_FAILED,
        }
    }

    /// The error for an HTTP status that carries no better classification.
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            401 | 403 => Self::Auth(message),
            404 => Self::NotFound(message),
            409 => Self::Conflict(message),
            500..=599 => Self::Server(message),
            _ => Self::Rejected(message),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(format!("I/O error: {e}"))
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            code::OK,
            code::USAGE,
            code::AUTH,
            code::NOT_FOUND,
            code::CONFLICT,
            code::REJECTED,
            code::NETWORK,
            code::INTERNAL,
            code::SERVER,
            code::TASK_FAILED,
        ];
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        for c in all {
            assert!(
                EXIT_CODES_HELP.contains(&format!("{c:>4}  ")),
                "exit code {c} is not documented"
            );
        }
    }

    #[test]
    fn statuses_map_to_their_kind() {
        assert_eq!(CliError::from_status(401, String::new()).exit_code(), 3);
        assert_eq!(CliError::from_status(403, String::new()).exit_code(), 3);
        assert_eq!(CliError::from_status(404, String::new()).exit_code(), 4);
        assert_eq!(CliError::from_status(409, String::new()).exit_code(), 5);
        assert_eq!(CliError::from_status(400, String::new()).exit_code(), 6);
        assert_eq!(CliError::from_status(429, String::new()).exit_code(), 6);
        assert_eq!(CliError::from_status(503, String::new()).exit_code(), 9);
    }
}
