//! `GET /v1/tasks/{id}/steps`: the Project Manager loop of a prompt task, one model call a
//! step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One step of a prompt task's Project Manager loop (`GET /v1/tasks/{id}/steps`): a model call
/// and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskStep {
    /// 0-based, in order.
    pub index: i32,
    /// The model that was asked, and the node it ran on.
    pub model: String,
    pub node_slug: String,
    /// The chat `messages` sent.
    #[schema(value_type = Vec<Object>)]
    pub request: Value,
    /// The model's raw text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// What it decided: `{"action":"answer","answer":…}` or
    /// `{"action":"run","commands":[…],"why":…,"use_inference":…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    /// The sandbox job a `run` decision enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// The job's capped output as fed back to the model:
    /// `{job_status, exit_code, stdout, stderr}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// Why the step ended the task (bad model output, backend failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Duration of the model call.
    pub model_ms: i64,
    /// Duration of the step's job in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/tasks/{id}/steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskSteps {
    pub task_id: Uuid,
    pub steps: Vec<TaskStep>,
}
