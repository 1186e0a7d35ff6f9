//! A task's jobs as its owner sees them: status, result, setbacks (`GET /v1/tasks/{id}/result`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::tasks::TaskStatus;

/// Job status, stored as this text in `jobs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Terminal states are never left.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job status {s:?}; expected one of queued, running, completed, failed, canceled"
                )
            })
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's `result` when no worker ran it: nothing could run (a prompt task), or dispatch gave
/// up. One shape for every such case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    pub version: u32,
    /// Always `failed`.
    pub status: JobStatus,
    /// What the task's owner reads; never worker URLs or error chains.
    pub error: String,
}

impl JobFailure {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            version: crate::PAYLOAD_VERSION,
            status: JobStatus::Failed,
            error: error.into(),
        }
    }
}

/// One job of a task result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    pub id: Uuid,
    pub status: JobStatus,
    /// Deliveries to a node so far (a run a stopping node interrupted does not count).
    #[serde(default)]
    pub attempts: i32,
    /// Every time the job went back to the queue or gave up, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setbacks: Vec<JobSetback>,
    /// The worker's `RunJobResponse`, or `{version, status: "failed", error}` when dispatch failed.
    /// Upstream sends this as a JSON string; we send the object itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// One time a job did not run to its end where it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSetback {
    pub at: DateTime<Utc>,
    /// The node it was with, if it reached one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub why: String,
}

/// `GET /v1/tasks/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskResult {
    pub task_id: Uuid,
    pub status: TaskStatus,
    pub jobs: Vec<JobResult>,
    /// A completed prompt task's answer (the Project Manager model's final text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}
