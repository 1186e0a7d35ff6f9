//! Why a job request is refused before anything is created.

use crate::mcp::GrantError;

/// Why a request is refused before anything is created. Each message names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidJob {
    #[error("unsupported payload version {0}")]
    UnsupportedVersion(u32),
    #[error("image `{0}` is not on this node's allowlist")]
    ImageNotAllowed(String),
    #[error("sandbox.command must be a non-empty argv")]
    EmptyCommand,
    #[error("sandbox.timeout_seconds must not be negative (got {0})")]
    NegativeTimeout(i64),
    #[error("sandbox.timeout_seconds {requested} exceeds this node's maximum of {max} seconds")]
    TimeoutTooLong { requested: i64, max: u64 },
    #[error("sandbox.env may not set {0}: the worker sets it")]
    ReservedEnv(String),
    #[error("sandbox.env name `{0}` is invalid: it must be non-empty and contain no `=` or NUL")]
    BadEnvName(String),
    #[error("{0} contains a NUL byte")]
    NulByte(&'static str),
    #[error("sandbox.use_inference: inference is disabled on this node")]
    InferenceDisabled,
    #[error("sandbox.use_mcp: this node has no MCP gateway configured")]
    McpDisabled,
    #[error(
        "mcp: a job with sandbox.use_mcp needs the orchestrator's grant (`mcp.url`, `mcp.token`)"
    )]
    McpGrantMissing,
    #[error("mcp: a grant is only for a job with sandbox.use_mcp")]
    McpGrantUnused,
    #[error(transparent)]
    McpGrant(#[from] GrantError),
    #[error("sandbox.job_spec_json (SBA jobs) is not supported by this node yet")]
    JobSpecUnsupported,
    #[error(
        "sandbox.resources.workspace_mib: this node does not limit /workspace (it is the job's \
         directory on the host)"
    )]
    WorkspaceNotLimited,
    #[error("sandbox.resources.{field} {requested} is below the least a sandbox may have, {min}")]
    BelowMinimum {
        field: &'static str,
        requested: u64,
        min: u64,
    },
    #[error("sandbox.resources.{field} {requested} exceeds this node's limit of {max}")]
    OverLimit {
        field: &'static str,
        requested: u64,
        max: u64,
    },
}
