//! User gateway payloads (`orchestrator.md` §4): auth and tasks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// `POST /v1/auth/login`.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Not blank; at most 256 bytes of UTF-8.
    #[schema(min_length = 1, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub handle: String,
    /// At most 1024 bytes of UTF-8.
    #[schema(min_length = 1)]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("handle", &self.handle)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Answer to login and refresh.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/refresh`.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { .. }")
    }
}

/// `POST /v1/auth/logout`; the refresh token, when given, is revoked too.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for LogoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogoutRequest { .. }")
    }
}

/// `GET /v1/users/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub id: Uuid,
    pub handle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub is_active: bool,
}

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

/// `POST /v1/tasks/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelResponse {
    pub task_id: Uuid,
    pub canceled: bool,
}

/// `stream` of `GET /v1/tasks/{id}/logs`: which output to return (default `all`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskLogStream {
    Stdout,
    Stderr,
    #[default]
    All,
}

impl TaskLogStream {
    pub const ALL: [TaskLogStream; 3] = [Self::Stdout, Self::Stderr, Self::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::All => "all",
        }
    }
}

impl std::str::FromStr for TaskLogStream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|stream| stream.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not one of stdout, stderr, all"))
    }
}

impl TaskLogStream {
    /// Whether lines of `stream` pass this filter.
    pub fn admits(self, stream: crate::logs::OutputStream) -> bool {
        use crate::logs::OutputStream;
        matches!(
            (self, stream),
            (Self::All, _)
                | (Self::Stdout, OutputStream::Stdout)
                | (Self::Stderr, OutputStream::Stderr)
        )
    }
}

/// The query of `GET /v1/tasks/{id}/logs`: `stream` (default `all`) and `follow` (`true` or
/// `false`, default `false`). Anything else is refused by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskLogsQuery {
    pub stream: TaskLogStream,
    pub follow: bool,
}

impl TaskLogsQuery {
    /// The parameter names, for messages.
    pub const PARAMS: [&str; 2] = ["stream", "follow"];

    /// Parses the query's pairs; the error names the parameter and what is wrong with it.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, (String, String)> {
        let mut query = Self::default();
        for (name, value) in pairs {
            match name {
                "stream" => query.stream = value.parse().map_err(|e| (name.to_owned(), e))?,
                "follow" => {
                    query.follow = match value {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err((
                                name.to_owned(),
                                format!("{other:?} is not true or false"),
                            ));
                        }
                    }
                }
                other => {
                    return Err((
                        other.to_owned(),
                        format!("unknown parameter ({})", Self::PARAMS.join(", ")),
                    ));
                }
            }
        }
        Ok(query)
    }

    /// The query string cynork sends.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("stream", self.stream.as_str().to_owned())];
        if self.follow {
            pairs.push(("follow", "true".to_owned()));
        }
        pairs
    }
}

/// `GET /v1/tasks/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskLogs {
    pub task_id: Uuid,
    pub stdout: String,
    pub stderr: String,
}

/// Longest API key name, in characters.
pub const MAX_API_KEY_NAME_CHARS: usize = 128;
/// Longest lifetime of an API key, in days (ten years).
pub const MAX_API_KEY_DAYS: i64 = 3650;
/// Most API keys a user may have active (neither revoked nor expired) at once.
pub const MAX_ACTIVE_API_KEYS: i64 = 50;
/// What every API key starts with, so that people and secret scanners recognise one.
pub const API_KEY_PREFIX: &str = "cyn_";

/// `POST /v1/users/me/api-keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// What the key is for; not blank, at most 128 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Days until the key stops working, 1 to 3650; without it the key works until revoked.
    #[serde(
        default,
        deserialize_with = "whole_days",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

/// Any JSON number or null; anything else is an error naming the field (serde's own message
/// for a float or a string would not).
fn whole_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(_) => Err(D::Error::custom(format!(
            "expires_in_days must be a whole number of days from 1 to {MAX_API_KEY_DAYS}"
        ))),
    }
}

/// Answer to `POST /v1/users/me/api-keys`: the only time the key is shown.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    pub name: String,
    /// The key itself, `cyn_` + 64 hex digits. Send it as `Authorization: Bearer <key>`. It is
    /// stored only as a hash and cannot be shown again.
    pub key: String,
    /// The start of the key (`cyn_` + 6 characters), as lists show it.
    pub prefix: String,
    /// The key's last four characters, as lists show them.
    pub last_four: String,
    pub created_at: DateTime<Utc>,
    /// Absent: the key works until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("last_four", &self.last_four)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStatus {
    Active,
    Expired,
    Revoked,
}

impl ApiKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// One key in `GET /v1/users/me/api-keys`; never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub last_four: String,
    pub status: ApiKeyStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// To the minute: it moves at most once a minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `GET /v1/users/me/api-keys`: the caller's keys, newest first, revoked and expired ones too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyInfo>,
}

/// Query of `GET /v1/users/me/usage`: RFC 3339 instants (`Z`, or `%2B` for a `+` offset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Count usage recorded at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Count usage recorded before this instant; must be after `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Token counts of a set of model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// Model calls counted.
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: i64,
}

/// Usage of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelUsage {
    pub model: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Usage through one API key; `api_key_id` absent: calls made with a login session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// `GET /v1/users/me/usage`: the caller's token usage, overall, per model and per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    pub total: UsageTotals,
    /// By model name, ascending.
    pub by_model: Vec<ModelUsage>,
    /// Login-session calls first, then keys by creation.
    pub by_api_key: Vec<ApiKeyUsage>,
}

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

/// A chat thread of the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatThread {
    pub id: Uuid,
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

/// Query of the chat thread lists: `limit` 1..200 (default 50), `offset`.
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
