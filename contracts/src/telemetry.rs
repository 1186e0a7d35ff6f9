//! Worker Telemetry API payloads: what a node's worker API tells about the node, its containers
//! and their logs (`GET /v1/worker/telemetry/…`, paths in [`crate::routes::worker`]).
//!
//! Query types are what the worker *receives* and reject unknown parameters; response types
//! are parsed leniently by the orchestrator.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Largest telemetry response body (2 MiB); a page that would pass it ends early with a
/// `next_page_token`.
pub const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// Most log message bytes in one `logs` page (1 MiB).
pub const MAX_LOG_BYTES: usize = 1024 * 1024;
/// `limit` of `containers` when none is given, and the most it may be (a larger one is
/// clamped to it, not refused).
pub const DEFAULT_CONTAINER_LIMIT: u32 = 100;
pub const MAX_CONTAINER_LIMIT: u32 = 1000;
/// `limit` of `logs` when none is given, and the most it may be (a larger one is clamped).
pub const DEFAULT_LOG_LIMIT: u32 = 1000;
pub const MAX_LOG_LIMIT: u32 = 5000;
/// `source_name` of the worker API's own service log events.
pub const WORKER_API_SOURCE: &str = "worker_api";

/// `GET node:info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub version: u32,
    /// `None` when the worker was not told its node's slug (`--node-slug`).
    pub node_slug: Option<String>,
    pub build: BuildInfo,
    pub platform: PlatformInfo,
    /// The node's last capability report; the worker API does not know it, so it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_capability_report: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub build_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformInfo {
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
}

/// `GET node:stats`: a snapshot taken when asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub version: u32,
    pub captured_at: DateTime<Utc>,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub disk: DiskStats,
    pub container_runtime: ContainerRuntime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub cores: u32,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub total_mb: u64,
    pub used_mb: u64,
    /// Available memory (`MemAvailable`), not merely unused pages.
    pub free_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStats {
    pub state_dir_free_mb: u64,
    pub state_dir_total_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRuntime {
    pub runtime: String,
    /// `None` when the runtime did not answer.
    pub version: Option<String>,
}

/// Who made a container: the worker's job sandboxes, or services the node manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerKind {
    Managed,
    Sandbox,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::Sandbox => "sandbox",
        }
    }
}

/// A container's state, normalised from the runtime's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
    Paused,
    Unknown,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Exited => "exited",
            Self::Paused => "paused",
            Self::Unknown => "unknown",
        }
    }

    /// Podman's and Docker's state words, normalised (`stopped` and `dead` are `exited`,
    /// `configured` and `initialized` are `created`, `stopping` is still `running`).
    pub fn normalise(runtime_state: &str) -> Self {
        match runtime_state.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => Self::Created,
            "running" | "stopping" | "restarting" => Self::Running,
            "exited" | "stopped" | "dead" | "removing" => Self::Exited,
            "paused" => Self::Paused,
            _ => Self::Unknown,
        }
    }
}

/// One row of the node's container inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub container_id: String,
    pub container_name: String,
    pub kind: ContainerKind,
    pub runtime: String,
    pub image_ref: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: ContainerStatus,
    pub exit_code: Option<i32>,
    pub task_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `GET containers`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerList {
    pub version: u32,
    pub containers: Vec<Container>,
    /// Present when there may be more: pass it as `page_token` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `GET containers/{container_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerDetail {
    pub version: u32,
    pub container: Container,
    /// The container's lifecycle events, oldest first, at most [`MAX_CONTAINER_EVENTS`] (an
    /// addition to the upstream shape, which has no other way to read them).
    #[serde(default)]
    pub events: Vec<ContainerEvent>,
}

/// Most events a [`ContainerDetail`] carries.
pub const MAX_CONTAINER_EVENTS: u32 = 100;

/// What happened to a container, and its state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerAction {
    Create,
    Start,
    Stop,
    Remove,
}

impl ContainerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Remove => "remove",
        }
    }
}

/// One lifecycle step of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    pub occurred_at: DateTime<Utc>,
    pub container_id: String,
    pub action: ContainerAction,
    pub status: ContainerStatus,
    pub exit_code: Option<i32>,
    pub task_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    #[serde(default)]
    pub details: Map<String, Value>,
}

/// The query of `GET containers`. `limit`: default [`DEFAULT_CONTAINER_LIMIT`], at least 1,
/// clamped to [`MAX_CONTAINER_LIMIT`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainersQuery {
    pub kind: Option<ContainerKind>,
    pub status: Option<ContainerStatus>,
    pub task_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub limit: Option<u32>,
    pub page_token: Option<String>,
}

/// Where a log event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Service,
    Container,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Container => "container",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// The query of `GET logs`: either `source_kind=service&source_name=…` or
/// `source_kind=container&container_id=…`. `since` is inclusive, `until` exclusive (RFC 3339).
/// `limit`: default [`DEFAULT_LOG_LIMIT`], at least 1, clamped to [`MAX_LOG_LIMIT`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    pub source_kind: Option<SourceKind>,
    pub source_name: Option<String>,
    pub container_id: Option<String>,
    pub stream: Option<LogStream>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub page_token: Option<String>,
}

/// One log line or service event, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    pub occurred_at: DateTime<Utc>,
    pub source_kind: SourceKind,
    pub source_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<LogStream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    pub message: String,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// `GET logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub version: u32,
    pub events: Vec<LogEvent>,
    pub truncated: LogTruncation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Why a page of logs ended before the last matching event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTruncation {
    pub limited_by: LimitedBy,
    /// Always [`MAX_LOG_BYTES`].
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitedBy {
    /// More events match: the `limit` was reached.
    Count,
    /// More events match: the next one would have passed [`MAX_LOG_BYTES`].
    Bytes,
    /// This page holds the last matching event.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_states_are_normalised() {
        for (word, status) in [
            ("running", ContainerStatus::Running),
            ("Stopping", ContainerStatus::Running),
            ("configured", ContainerStatus::Created),
            ("stopped", ContainerStatus::Exited),
            ("exited", ContainerStatus::Exited),
            ("paused", ContainerStatus::Paused),
            ("weird", ContainerStatus::Unknown),
        ] {
            assert_eq!(ContainerStatus::normalise(word), status, "{word}");
        }
    }

    #[test]
    fn queries_refuse_unknown_parameters() {
        let q: Result<LogsQuery, _> =
            serde_json::from_value(serde_json::json!({"source_kind": "service", "x": 1}));
        assert!(q.is_err());
        let q: ContainersQuery =
            serde_json::from_value(serde_json::json!({"kind": "sandbox", "status": "exited"}))
                .unwrap();
        assert_eq!(q.kind, Some(ContainerKind::Sandbox));
    }
}
