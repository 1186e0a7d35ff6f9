//! Worker API payloads (`node.md` §3.1): `POST /v1/worker/jobs:run`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Env vars every sandbox gets; a job's own env may not override them.
pub const RESERVED_SANDBOX_ENV: [&str; 3] =
    ["CYNODE_TASK_ID", "CYNODE_JOB_ID", "CYNODE_WORKSPACE_DIR"];

/// Where a job with `sandbox.use_mcp` finds the orchestrator's MCP gateway: an
/// `http://127.0.0.1:<port>/mcp` URL inside its pod (the sidecar, which forwards to the job's
/// socket on the worker). Only the worker sets it; a job's own env may not.
pub const MCP_URL_ENV: &str = "CYNODE_MCP_URL";

/// Largest request body the worker API accepts (10 MiB).
pub const MAX_REQUEST_BYTES: u64 = 10 * 1024 * 1024;

/// Per-stream output cap (256 KiB).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// `POST /v1/worker/jobs:run` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunJobRequest {
    pub version: u32,
    pub task_id: Uuid,
    pub job_id: Uuid,
    pub sandbox: SandboxSpec,
    /// The job's grant to the orchestrator's MCP gateway; required with `sandbox.use_mcp` and
    /// refused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpGrant>,
}

/// What the worker needs to forward a job's MCP calls (`workflow_mcp_agents.md` §2: tokens are
/// issued to the worker, never to agents; the worker's proxy attaches them). Minted by the
/// orchestrator at dispatch for this one job. The worker keeps it in memory only: the sandbox
/// gets neither the token nor the URL, only `CYNODE_MCP_URL` (its pod's loopback).
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpGrant {
    /// The orchestrator's MCP endpoint, e.g. `http://127.0.0.1:12083/mcp`. Its origin must be
    /// the node's configured MCP gateway (`--mcp-gateway-url`).
    pub url: String,
    /// Short-lived bearer token scoped to this job; sent as `Authorization: Bearer <token>` on
    /// each forwarded call. Secret: redacted in `Debug`.
    pub token: String,
}

impl std::fmt::Debug for McpGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGrant")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// What to run and how. `command` is an argv, run without a shell unless it names one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Image reference; empty means the node's default image.
    #[serde(default)]
    pub image: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds; absent or 0 means the node's default. Capped by the node's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicy>,
    #[serde(default)]
    pub use_inference: bool,
    /// Give the job the orchestrator's MCP gateway at `CYNODE_MCP_URL` (its pod's loopback,
    /// forwarded by the worker with the request's `mcp` grant attached). Needs `mcp`. Left out
    /// when false, so that workers from before MCP (which refuse unknown fields) take the rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_mcp: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_spec_json: Option<String>,
    /// Tighter limits than the node's for this job; absent: the node's limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<SandboxResources>,
}

/// Sandbox limits in the units of a node's `sandbox.limits`, each optional: what a job asks for
/// (`sandbox.resources`: each at most the node's own; a field left out gets the node's limit; one
/// above it, or 0, is refused with the limit named, never silently clipped), or the caps an
/// orchestrator puts on a node's limits (`constraints.sandbox_limits`: the node runs with the
/// lower of cap and own limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxResources {
    /// Memory (swap limited to the same total), MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// CPU in thousandths of a CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Most processes and threads at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Size of the `/tmp` tmpfs, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_mib: Option<u64>,
    /// Size of the `/workspace` tmpfs, MiB. As a cap it also gives a node whose `/workspace` is
    /// its host directory a tmpfs of this size; a job may ask for it only on a node that
    /// limits `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_mib: Option<u64>,
}

impl SandboxResources {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Phase 1 knows only deny-all policies; both mean `--network=none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    Restricted,
    None,
}

/// Outcome of a sandbox run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Failed,
    Timeout,
    /// Stopped through the worker's stop endpoint (its task was canceled) before it ended.
    Canceled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [Self::Completed, Self::Failed, Self::Timeout, Self::Canceled];

    /// The wire string (as serialised), e.g. for a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
        }
    }
}

/// `POST /v1/worker/jobs:run` response: HTTP 200 even when the command inside failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunJobResponse {
    pub version: u32,
    pub task_id: Uuid,
    pub job_id: Uuid,
    pub status: RunStatus,
    /// Always present (0 included); -1 when the process never exited on its own.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub truncated: Truncated,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sba_result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub artifacts: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub run_diagnostics: Option<Value>,
    /// The limits the sandbox ran under; absent in results of older workers and of jobs that
    /// never got a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<SandboxLimits>,
    /// The kernel killed the job's process for exceeding `limits.memory_bytes`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// What a node enforces on every sandbox, as reported with each result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxLimits {
    /// Wall-clock timeout of the run.
    pub timeout_seconds: u64,
    /// Memory limit; swap is limited to the same total, so the job gets no extra swap.
    pub memory_bytes: u64,
    /// CPU limit in thousandths of a CPU (1000 = one full CPU).
    pub cpu_millis: u64,
    /// Most processes and threads the sandbox may have at once.
    pub pids: u64,
    /// Size of the `/tmp` tmpfs (it counts against `memory_bytes` too).
    pub tmp_bytes: u64,
    /// Cap of the container's log file on the host.
    pub log_bytes: u64,
    /// Cap of stdout and of stderr in the result.
    pub output_bytes: u64,
    /// Size limit of `/workspace`; `None`: not limited by the node (only by its disk).
    #[serde(default)]
    pub workspace_bytes: Option<u64>,
    /// New user namespaces (`unshare -U`, `clone(CLONE_NEWUSER)`) and `setns` are refused.
    pub user_namespaces_denied: bool,
}

/// Which of a sandbox's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Truncated {
    pub stdout: bool,
    pub stderr: bool,
}

/// Most bytes a managed sandbox's file may have, written or read (10 MiB).
pub const MAX_SANDBOX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// `POST /v1/worker/sandboxes`: a long-lived sandbox the Project Manager drives with exec and
/// file calls until it deletes it (or it idles out). Hardened, limited and labelled exactly as
/// a job's sandbox; no network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedSandboxRequest {
    pub version: u32,
    pub task_id: Uuid,
    /// Chosen by the orchestrator (the MCP tools' `job_id`); `409` if this node has it already.
    pub sandbox_id: Uuid,
    /// Image reference; absent or empty means the node's default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Removed after this long without a call; absent: the node's default (30 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
}

/// `201` answer to [`ManagedSandboxRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManagedSandbox {
    pub task_id: Uuid,
    pub sandbox_id: Uuid,
    pub image: String,
    pub idle_timeout_seconds: u64,
    pub limits: SandboxLimits,
}

/// `POST /v1/worker/sandboxes/{sandbox_id}/exec`: one command, run without a shell unless it
/// names one. One exec at a time per sandbox; a second waits for the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxExecRequest {
    /// Non-empty argv.
    pub argv: Vec<String>,
    /// Killed after this many seconds; absent or 0: the node's default job timeout (capped
    /// by its maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Working directory relative to `/workspace`; absent: `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// What an exec printed and how it ended; `200` whatever its exit code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxExecResponse {
    /// -1 when it was killed at its timeout.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub truncated: Truncated,
    pub timed_out: bool,
}

/// The query of `…/files`: a path relative to `/workspace` (no `..`, not absolute, no NUL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SandboxFileQuery {
    pub path: String,
}

/// Cuts `bytes` to at most `cap` bytes without splitting a UTF-8 character and decodes it,
/// replacing invalid sequences. Returns the text and whether anything was cut.
pub fn truncate_utf8(bytes: &[u8], cap: usize) -> (String, bool) {
    if bytes.len() <= cap {
        return (String::from_utf8_lossy(bytes).into_owned(), false);
    }
    let mut end = cap;
    // Back off over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
    while end > 0 && (bytes[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
    }
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_status_strings_are_the_wire_strings() {
        for status in RunStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
    }

    #[test]
    fn an_mcp_grant_is_optional_and_its_token_never_debug_printed() {
        let request = serde_json::json!({
            "version": 1, "task_id": Uuid::nil(), "job_id": Uuid::nil(),
            "sandbox": {"command": ["true"], "use_mcp": true},
            "mcp": {"url": "http://127.0.0.1:12083/mcp", "token": "s3cret-token"}
        });
        let parsed: RunJobRequest = serde_json::from_value(request.clone()).unwrap();
        assert!(parsed.sandbox.use_mcp);
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(written["mcp"], request["mcp"]);
        assert_eq!(
            serde_json::from_value::<RunJobRequest>(written).unwrap(),
            parsed
        );
        let printed = format!("{parsed:?}");
        assert!(!printed.contains("s3cret-token"), "{printed}");
        assert!(printed.contains("12083"), "{printed}");
        let plain: RunJobRequest = serde_json::from_value(serde_json::json!({
            "version": 1, "task_id": Uuid::nil(), "job_id": Uuid::nil(),
            "sandbox": {"command": ["true"]}
        }))
        .unwrap();
        assert!(!plain.sandbox.use_mcp);
        assert_eq!(plain.mcp, None);
        let unknown = serde_json::json!({"url": "u", "token": "t", "scope": "x"});
        assert!(serde_json::from_value::<McpGrant>(unknown).is_err());
    }

    #[test]
    fn a_result_without_limits_parses_and_limits_round_trip() {
        let old = serde_json::json!({
            "version": 1, "task_id": Uuid::nil(), "job_id": Uuid::nil(), "status": "completed",
            "exit_code": 0, "stdout": "", "stderr": "",
            "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:00:01Z",
            "truncated": {"stdout": false, "stderr": false}
        });
        let mut parsed: RunJobResponse = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(parsed.limits, None);
        assert!(!parsed.oom_killed);
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            old,
            "nothing new is written"
        );
        parsed.limits = Some(SandboxLimits {
            timeout_seconds: 1,
            memory_bytes: 2,
            cpu_millis: 3,
            pids: 4,
            tmp_bytes: 5,
            log_bytes: 6,
            output_bytes: 7,
            workspace_bytes: None,
            user_namespaces_denied: true,
        });
        parsed.oom_killed = true;
        let back: RunJobResponse =
            serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
        assert_eq!(back, parsed);
    }
}
