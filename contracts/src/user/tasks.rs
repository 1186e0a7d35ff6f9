//! Tasks: what `POST /v1/tasks` takes (text, mode, requirements, attachments), a task's
//! status, and how the gateway shows, lists and cancels tasks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How the orchestrator treats a task's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Natural language, interpreted by the model; never run as shell.
    #[default]
    Prompt,
    /// Literal shell, run as `sh -c` in the sandbox.
    Script,
    /// Literal shell commands (one per line), run as `sh -c` in the sandbox.
    Commands,
}

impl InputMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Script => "script",
            Self::Commands => "commands",
        }
    }
}

/// `POST /v1/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// Not blank, no NUL characters.
    #[schema(min_length = 1, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_mode: Option<InputMode>,
    /// Not blank, at most 200 characters, no control characters; a taken name gets `-2`, `-3`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub task_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// Distinct paths, each 1 to 2048 characters without NUL; at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = attachments_schema)]
    pub attachments: Vec<String>,
    /// SBA jobs are not supported yet: only `false` (or leaving it out) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = use_sba_schema)]
    pub use_sba: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_inference: Option<bool>,
    /// The job's sandbox may call the MCP gateway (as a sandbox agent of this task and job,
    /// through its node's worker; it never holds a token). `script` and `commands` tasks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_mcp: Option<bool>,
    /// What a node must offer to run this task's jobs; a job no node meets waits, with the
    /// reason in the task's `wait_reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<JobRequirements>,
}

/// What a node must offer to run a job (`requirements` of a task). Every field narrows the
/// nodes that may run it; left out, it narrows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequirements {
    /// Labels the node must carry (all of them): at most 16, each 1 to 64 characters of
    /// letters, digits and `._-:/=`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A model the node's inference server must serve (1 to 200 characters, no control
    /// characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Least memory the node must have, MB (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_mb: Option<u64>,
    /// Least CPU cores the node must have (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cpu_cores: Option<u32>,
    /// `true`: only a node with a GPU; `false` or left out: any node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<bool>,
}

/// Most labels a job may require.
pub const MAX_REQUIRED_LABELS: usize = 16;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest model name a job may require, in characters.
pub const MAX_MODEL_NAME_CHARS: usize = 200;

impl JobRequirements {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the documented bounds; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.labels.len() > MAX_REQUIRED_LABELS {
            return Err(format!(
                "requirements.labels has {} entries; at most {MAX_REQUIRED_LABELS} are allowed",
                self.labels.len()
            ));
        }
        for (i, label) in self.labels.iter().enumerate() {
            let fine = |c: char| c.is_ascii_alphanumeric() || "._-:/=".contains(c);
            if label.is_empty() || label.len() > MAX_LABEL_CHARS || !label.chars().all(fine) {
                return Err(format!(
                    "requirements.labels[{i}] must be 1 to {MAX_LABEL_CHARS} letters, digits or ._-:/="
                ));
            }
        }
        if let Some(model) = &self.model
            && (model.trim().is_empty()
                || model.chars().count() > MAX_MODEL_NAME_CHARS
                || model.chars().any(char::is_control))
        {
            return Err(format!(
                "requirements.model must be 1 to {MAX_MODEL_NAME_CHARS} characters without control characters"
            ));
        }
        if self.min_memory_mb == Some(0) {
            return Err("requirements.min_memory_mb must be at least 1".into());
        }
        if self.min_cpu_cores == Some(0) {
            return Err("requirements.min_cpu_cores must be at least 1".into());
        }
        Ok(())
    }
}

/// Most attachments a task may name.
pub const MAX_ATTACHMENTS: usize = 16;
/// Longest attachment path, in characters.
pub const MAX_ATTACHMENT_PATH_CHARS: usize = 2048;
/// Longest task name, in characters.
pub const MAX_TASK_NAME_CHARS: usize = 200;

fn attachments_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let path = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ATTACHMENT_PATH_CHARS))
        .pattern(Some(r"^[^\u0000]*$"));
    ArrayBuilder::new()
        .items(path)
        .max_items(Some(MAX_ATTACHMENTS))
        .unique_items(true)
        .build()
}

fn use_sba_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([false]))
        .description(Some(
            "SBA jobs are not supported yet: only false (or leaving it out) is accepted",
        ))
        .build()
}

/// Task status as the API shows it (the database's `pending` is `queued` here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Canceled,
    Superseded,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
        Self::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Superseded => "superseded",
        }
    }

    /// Terminal states are never left.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task status {s:?}; expected one of queued, running, completed, failed, canceled, superseded"
                )
            })
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task as the gateway returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    /// Same as `id`; kept for upstream clients.
    pub task_id: Uuid,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default)]
    pub input_mode: InputMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<JobRequirements>,
    /// Why a job of the task is waiting for a node (`no node serves model …`, `all nodes at
    /// capacity`); absent when nothing waits for that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<String>,
    /// The project the task belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// Who created it: its handle (names are unique per creator, so `creator` + `task_name`
    /// names a task within a shared project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
}

/// `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/tasks/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub task_id: Uuid,
    pub canceled: bool,
}
