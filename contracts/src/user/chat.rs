//! The OpenAI-compatible models and chat completions, and the caller's stored chat threads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The model id that answers through the Project Manager; also the default chat model.
pub const PM_MODEL: &str = "cynodeai.pm";

/// One entry of `GET /v1/models` (OpenAI `model` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds; 0 when unknown.
    pub created: i64,
    pub owned_by: String,
}

/// `GET /v1/models` (OpenAI list shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ModelObject>,
}

/// One chat message of `POST /v1/chat/completions` (OpenAI shape; other fields pass through).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessageIn {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// Text, or an array of OpenAI content parts.
    #[schema(value_type = Object)]
    pub content: Value,
}

/// `stream_options` of a chat completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatStreamOptions {
    /// With `stream: true`: send a last chunk with `usage` and no choices.
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions` (OpenAI Chat Completions; unknown fields are passed on to the
/// model as they are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    /// A model of `GET /v1/models`; empty or absent means `cynodeai.pm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The whole conversation so far, oldest first; not empty.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessageIn>,
    /// Answer as server-sent events (`chat.completion.chunk`), ending with `data: [DONE]`.
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<ChatStreamOptions>,
}

/// `POST /v1/chat/completions` without streaming (OpenAI `chat.completion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    pub created: i64,
    pub model: String,
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Value>,
}

/// The error body of the OpenAI-compatible routes: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenAiError {
    pub error: OpenAiErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    pub message: String,
    /// Always `cynodeai_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// `invalid_request`, `invalid_api_key`, `model_not_found`, `model_unavailable`,
    /// `orchestrator_inference_failed`, `cynodeai_completion_timeout`, `internal_error`.
    pub code: String,
}

/// A chat thread: the caller's own, or one of a project the caller may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatThread {
    pub id: Uuid,
    /// Whose conversation it is (their handle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// The start of its first user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    /// Its last message.
    pub updated_at: DateTime<Utc>,
}

/// `POST /v1/chat/threads`: a new, empty thread, so that the next completions sent with its id
/// in `X-CyNodeAI-Thread-Id` start a fresh conversation instead of continuing the active one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateThreadRequest {
    /// Default: the caller's default project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// 1 to 80 characters, not blank; default: the start of the first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 80)]
    pub title: Option<String>,
}

/// `GET /v1/chat/threads`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatThreadList {
    pub threads: Vec<ChatThread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// A stored chat message: its content as stored, with secrets replaced by `SECRET_REDACTED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub id: Uuid,
    pub role: String,
    pub content: String,
    /// The model that wrote it (assistant messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/chat/threads/{id}/messages`: oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessageList {
    pub thread_id: Uuid,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// Query of `GET /v1/chat/threads`: the caller's own threads, or with `project` every thread
/// of that project (for whoever may read its threads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ThreadListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// A project's id or slug: its threads, everyone's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// Query of the chat message list: `limit` 1..200 (default 50), `offset`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}
