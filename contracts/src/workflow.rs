//! The workflow API on the control plane (`workflow_mcp_agents.md` §1.4, orchestrator spec
//! "Workflow API"): a workflow runner takes a task's lease, saves and reads its checkpoint and
//! releases the lease. Every route is `POST` with `Authorization: Bearer
//! $WORKFLOW_RUNNER_BEARER_TOKEN`; errors are problem+json.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Request header by which the Project Manager agent marks a start it asked for itself (the
/// start gate then skips its "plan not active" check).
pub const REQUESTED_BY_HEADER: &str = "x-cynode-workflow-requested-by";
/// The value of [`REQUESTED_BY_HEADER`] for a PMA start.
pub const REQUESTED_BY_PMA: &str = "pma";
/// Lease lifetime of a start that does not say (`expires_in_sec`).
pub const DEFAULT_LEASE_SECS: u64 = 3600;
/// The longest lease a start may ask for (a day).
pub const MAX_LEASE_SECS: u64 = 86_400;

/// `POST /v1/workflow/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub task_id: Uuid,
    /// Who runs the workflow (a runner instance); not blank, at most 256 characters.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    pub holder_id: String,
    /// Becomes the `lease_id`; the same holder starting again with it gets `already_running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<Uuid>,
    /// Lease lifetime in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub expires_in_sec: Option<u64>,
}

/// Whether a start took the lease now or found it already held by the same holder and lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartStatus {
    Started,
    AlreadyRunning,
}

/// `200` answer of a start. `run_id` equals `lease_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StartResponse {
    pub run_id: Uuid,
    pub lease_id: Uuid,
    pub status: StartStatus,
}

/// `POST /v1/workflow/resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    pub task_id: Uuid,
}

/// `200` answer of a resume: the task's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResumeResponse {
    pub task_id: Uuid,
    /// The workflow state as JSON text (a string on the wire, as upstream sends it).
    pub state: String,
    pub last_node_id: String,
    pub updated_at: DateTime<Utc>,
}

/// `POST /v1/workflow/checkpoint`: upserts the task's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    pub task_id: Uuid,
    /// A JSON object, as JSON text.
    pub state: String,
    /// One of the graph's node ids (`load_task_context`, `plan_steps`, `dispatch_step`,
    /// `collect_result`, `verify_step_result`, `finalize_summary`, `mark_failed`).
    pub last_node_id: String,
}

/// `POST /v1/workflow/release`: ends the lease if it is still `lease_id` (idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub task_id: Uuid,
    pub lease_id: Uuid,
}
