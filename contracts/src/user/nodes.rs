//! Nodes as an admin sees them (`GET /v1/nodes`, `GET /v1/nodes/{slug}`) and drains them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A node's state as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Registered, configured and heard from recently: it takes jobs (`ready` says whether
    /// right now).
    Active,
    /// Taken out of service by an admin: no new jobs; its running jobs finish, or past the
    /// drain deadline run again elsewhere.
    Drained,
    /// Not heard from within the orchestrator's staleness window, or not (yet) configured.
    Inactive,
}

impl NodeState {
    /// The wire word, which is also what `nodes.status` stores for the states an admin sets
    /// (`active`, `drained`; inactive is derived from staleness, never stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Drained => "drained",
            Self::Inactive => "inactive",
        }
    }
}

/// `GET /v1/nodes/{slug}` (admin): what placement knows about a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub node_slug: String,
    pub state: NodeState,
    /// Whether the dispatcher would give it a job now (active, configured, acked, not paused
    /// after a failed delivery, below capacity).
    pub ready: bool,
    /// When a drain's deadline passes: its running jobs are then requeued elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_deadline: Option<DateTime<Utc>>,
    pub labels: Vec<String>,
    /// Models its inference server serves (empty without inference).
    pub models: Vec<String>,
    /// Most jobs at once; absent: no limit reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    pub running_jobs: u32,
    pub cpu_cores: u32,
    pub memory_mb: u64,
    pub gpu: bool,
    pub config_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ack_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The last snapshot pulled from the node's Telemetry API; absent until one succeeds.
    /// Informational only: placement never uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub telemetry: Option<NodeTelemetry>,
}

/// What the orchestrator last pulled from a node's Worker Telemetry API, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeTelemetry {
    pub pulled_at: DateTime<Utc>,
    pub info: crate::telemetry::NodeInfo,
    pub stats: crate::telemetry::NodeStats,
}

/// `GET /v1/nodes` (admin), by slug.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeInfo>,
}

/// Longest drain deadline, in seconds (a week).
pub const MAX_DRAIN_DEADLINE_SECONDS: u64 = 7 * 24 * 3600;

/// `POST /v1/nodes/{slug}/drain` (admin). The body may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Seconds from now after which jobs still running there are stopped and requeued
    /// elsewhere (1 to a week); left out: they may finish however long they take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604800)]
    pub deadline_seconds: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::NodeState;

    #[test]
    fn the_stored_word_is_the_wire_word() {
        for state in [NodeState::Active, NodeState::Drained, NodeState::Inactive] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
