//! OpenAI-compatible chat on the user gateway: `GET /v1/models`, `POST /v1/chat/completions`
//! (streaming or not) and the caller's stored conversations, `GET /v1/chat/threads[/{id}/messages]`.
//!
//! A completion goes through the pipeline of `orchestrator.md` §4 in order: authenticate,
//! validate, resolve the project (`OpenAI-Project`), replace detected secrets with
//! `SECRET_REDACTED` ([`redact`]), store the new message in the caller's thread ([`threads`]),
//! route (`cynodeai.pm` or no model → the Project Manager; any other model → a node that serves
//! it, through [`crate::node_inference`]), store the answer, record token usage and one
//! `chat_audit_log` row (no message content), answer. The two OpenAI routes answer errors in
//! OpenAI's shape, `{"error":{"message","type","param","code"}}`, never problem+json.
//!
//! The routes take the Project Manager's handles ([`ProjectManager`]: the pool, settings, node
//! client and metrics), which answering with any other model needs as well.

pub mod redact;
pub mod stream;
pub mod threads;

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::{PROBLEM_CONTENT_TYPE, Problem};
use cynode_contracts::routes::user::{CHAT_PROJECT_HEADER, CHAT_THREAD_HEADER};
use cynode_contracts::user::{
    ChatCompletion, ChatCompletionRequest, ChatMessageList, ChatThreadList, ModelList, ModelObject,
    OpenAiError, OpenAiErrorBody, PM_MODEL, PageQuery,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::{CurrentUser, Principal};
use crate::error;
use crate::node_inference::{self, NodeInferenceError};
use crate::pm::ProjectManager;
use crate::usage::{self, ModelCall};
use crate::web::ApiPath;
use cynode_service_kit::http::ApiQuery;

use redact::Findings;

/// An error of the OpenAI routes.
#[derive(Debug)]
pub struct ChatError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
}

impl ChatError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "chat request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the cause is in the orchestrator's log",
        )
    }

    fn timeout(secs: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "cynodeai_completion_timeout",
            format!("the model did not answer within {secs}s"),
        )
    }

    /// `timeout` / `error` for the audit log.
    fn outcome(&self) -> &'static str {
        if self.status == StatusCode::GATEWAY_TIMEOUT {
            "timeout"
        } else {
            "error"
        }
    }
}

/// The OpenAI `code` for a problem+json status.
fn code_for(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request",
        401 => "invalid_api_key",
        403 => "permission_denied",
        404 => "not_found",
        413 => "request_too_large",
        429 => "rate_limit_exceeded",
        503 => "service_unavailable",
        504 => "cynodeai_completion_timeout",
        _ => "internal_error",
    }
}

impl From<Problem> for ChatError {
    fn from(problem: Problem) -> Self {
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(
            status,
            code_for(problem.status),
            problem.detail.unwrap_or(problem.title),
        )
    }
}

impl From<error::Error> for ChatError {
    fn from(e: error::Error) -> Self {
        match e {
            error::Error::Problem(problem, _) => problem.into(),
            other => {
                // Text PostgreSQL cannot store is the client's (see `error.rs`); the shared
                // conversion knows which.
                let response = other.into_response();
                if response.status() == StatusCode::BAD_REQUEST {
                    Self::invalid(Some("messages"), "text must not contain NUL characters")
                } else {
                    Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "internal error; the cause is in the orchestrator's log",
                    )
                }
            }
        }
    }
}

impl From<sqlx::Error> for ChatError {
    fn from(e: sqlx::Error) -> Self {
        error::Error::Db(e).into()
    }
}

pub fn error_body(
    status: StatusCode,
    code: &str,
    message: String,
    param: Option<&str>,
) -> Response {
    (
        status,
        Json(OpenAiError {
            error: OpenAiErrorBody {
                message,
                kind: "cynodeai_error".into(),
                param: param.map(str::to_owned),
                code: code.to_owned(),
            },
        }),
    )
        .into_response()
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        error_body(self.status, self.code, self.message, self.param)
    }
}

/// Layer of the OpenAI routes: a problem+json answer from an extractor (authentication, the
/// body limit, ...) becomes the same error in OpenAI's shape.
pub async fn openai_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
    if !is_problem {
        return response;
    }
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let problem: Option<Problem> = serde_json::from_slice(&body).ok();
    let message = problem
        .and_then(|p| p.detail.or(Some(p.title)))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let mut converted = error_body(status, code_for(status.as_u16()), message, None);
    if let Some(value) = retry_after {
        converted.headers_mut().insert(header::RETRY_AFTER, value);
    }
    converted
}

/// How long the gateway waits for a model: the request timeout less a margin (a tenth, 1 to
/// 10 s), so that a slow model is a 504 from here rather than the edge's generic 503.
pub fn completion_timeout(state: &ProjectManager) -> Duration {
    let total = state.config.request_timeout;
    let margin = (total / 10).clamp(Duration::from_secs(1), Duration::from_secs(10));
    total.saturating_sub(margin).max(Duration::from_millis(500))
}

/// Every model the caller can chat with: `cynodeai.pm`, then each model a dispatchable node
/// serves.
#[utoipa::path(get, path = "/v1/models", tag = "chat", security(("bearer" = [])), responses(
    (status = 200, body = ModelList), (status = 401, body = OpenAiError),
))]
pub async fn models(
    State(state): State<ProjectManager>,
    user: Result<CurrentUser, error::Error>,
) -> Result<Json<ModelList>, ChatError> {
    user?;
    let served = node_inference::served_models(&state.db, state.config.node_stale_after).await?;
    let model = |id: String| ModelObject {
        id,
        object: "model".into(),
        created: 0,
        owned_by: "cynodeai".into(),
    };
    let data = std::iter::once(PM_MODEL.to_owned())
        .chain(served.into_iter().filter(|m| m != PM_MODEL))
        .map(model)
        .collect();
    Ok(Json(ModelList {
        object: "list".into(),
        data,
    }))
}

/// A chat completion, OpenAI-style. `model` empty or absent, or `cynodeai.pm`: the Project
/// Manager answers; any other model: a node that serves it. The whole `messages` history is
/// passed on, with detected secrets replaced by `SECRET_REDACTED`. With `stream: true` the
/// answer is server-sent `chat.completion.chunk` events as the model produces them, then
/// `data: [DONE]`; a last chunk with `usage` comes only with `stream_options.include_usage`.
/// The conversation is stored in the caller's thread for the project (`OpenAI-Project`, else
/// the default), which continues until 2 h idle; `X-CyNodeAI-Thread-Id` names another of the
/// caller's threads, and the answer's `X-CyNodeAI-Thread-Id` says which one was used.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "chat", security(("bearer" = [])),
    request_body = ChatCompletionRequest,
    params(
        ("OpenAI-Project" = Option<Uuid>, Header, description = "project of the conversation; default: the caller's default project"),
        ("X-CyNodeAI-Thread-Id" = Option<Uuid>, Header, description = "continue this thread of the caller"),
    ),
    responses(
        (status = 200, description = "the answer; `text/event-stream` of `chat.completion.chunk` with `stream: true`",
            headers(("X-CyNodeAI-Thread-Id" = Uuid, description = "the thread the exchange was stored in")),
            content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, body = OpenAiError, description = "code invalid_request"),
        (status = 401, body = OpenAiError, description = "code invalid_api_key"),
        (status = 404, body = OpenAiError, description = "code model_not_found, or an unknown thread"),
        (status = 502, body = OpenAiError, description = "code orchestrator_inference_failed"),
        (status = 503, body = OpenAiError, description = "code model_unavailable: no node serving the model answers"),
        (status = 504, body = OpenAiError, description = "code cynodeai_completion_timeout"),
    ))]
pub async fn completions(
    State(state): State<ProjectManager>,
    headers: HeaderMap,
    user: Result<CurrentUser, error::Error>,
    body: Bytes,
) -> Result<Response, ChatError> {
    let started = Instant::now();
    let user = user?;
    let mut request = Validated::parse(&body)?;
    let project_id = project(&state, &user, &headers).await?;
    let mut call = Call {
        state: state.clone(),
        principal: user.principal(),
        project_id,
        thread_id: None,
        model: request.model.clone(),
        stream: request.stream,
        findings: Findings::default(),
        started,
    };
    let result = async {
        call.findings = request.redact();
        let named = thread_header(&headers)?;
        let last = request.last_message();
        let thread =
            threads::store_user_message(&state.db, user.id, project_id, named, &last.0, &last.1)
                .await?;
        call.thread_id = Some(thread);
        if request.model == PM_MODEL {
            pm(&call, &user, request).await
        } else {
            node(&call, request).await
        }
    }
    .await;
    match result {
        Ok(mut response) => {
            if let Some(thread) = call.thread_id
                && let Ok(value) = HeaderValue::from_str(&thread.to_string())
            {
                response.headers_mut().insert(CHAT_THREAD_HEADER, value);
            }
            Ok(response)
        }
        Err(e) => {
            let how = Outcome {
                outcome: e.outcome(),
                status: e.status.as_u16(),
                error_code: Some(e.code),
                usage: None,
            };
            call.close(None, None, how).await;
            Err(e)
        }
    }
}

/// A request that passed validation; `body` is what goes to the model.
#[derive(Debug)]
pub struct Validated {
    pub body: Value,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
}

impl Validated {
    pub fn parse(bytes: &[u8]) -> Result<Self, ChatError> {
        let body: Value = serde_json::from_slice(bytes)
            .map_err(|e| ChatError::invalid(None, format!("the body is not valid JSON: {e}")))?;
        if !body.is_object() {
            return Err(ChatError::invalid(None, "the body must be a JSON object"));
        }
        let model = match &body["model"] {
            Value::Null => PM_MODEL.to_owned(),
            Value::String(m) if m.trim().is_empty() => PM_MODEL.to_owned(),
            Value::String(m) if m.chars().count() > 256 => {
                return Err(ChatError::invalid(
                    Some("model"),
                    "model must be at most 256 characters",
                ));
            }
            Value::String(m) => m.clone(),
            _ => return Err(ChatError::invalid(Some("model"), "model must be a string")),
        };
        let stream = match &body["stream"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            _ => {
                return Err(ChatError::invalid(
                    Some("stream"),
                    "stream must be a boolean",
                ));
            }
        };
        let include_usage = match &body["stream_options"]["include_usage"] {
            Value::Null => false,
            Value::Bool(b) => *b,
            _ => {
                return Err(ChatError::invalid(
                    Some("stream_options"),
                    "stream_options.include_usage must be a boolean",
                ));
            }
        };
        let Some(messages) = body["messages"].as_array() else {
            return Err(ChatError::invalid(
                Some("messages"),
                "messages must be a non-empty array",
            ));
        };
        if messages.is_empty() {
            return Err(ChatError::invalid(
                Some("messages"),
                "messages must not be empty",
            ));
        }
        for (i, message) in messages.iter().enumerate() {
            let role = message["role"].as_str().unwrap_or_default();
            if role.trim().is_empty() {
                return Err(ChatError::invalid(
                    Some("messages"),
                    format!("messages[{i}] needs a role"),
                ));
            }
            let content_ok = match &message["content"] {
                Value::String(_) | Value::Array(_) => true,
                // An assistant turn that only calls tools has no content.
                Value::Null => role == "assistant" && message.get("tool_calls").is_some(),
                _ => false,
            };
            if !content_ok {
                return Err(ChatError::invalid(
                    Some("messages"),
                    format!("messages[{i}] needs a content (a string or an array of parts)"),
                ));
            }
        }
        Ok(Self {
            body,
            model,
            stream,
            include_usage,
        })
    }

    /// Replaces detected secrets in every message's content.
    pub fn redact(&mut self) -> Findings {
        let mut findings = Findings::default();
        if let Some(messages) = self.body["messages"].as_array_mut() {
            for message in messages {
                if let Some(content) = message.get_mut("content") {
                    redact::redact_content(content, &mut findings);
                }
            }
        }
        findings
    }

    /// `(role, text)` of the last message (the one this call adds to the conversation).
    pub fn last_message(&self) -> (String, String) {
        let last = self.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        (
            last["role"].as_str().unwrap_or_default().to_owned(),
            text_of(&last["content"]),
        )
    }

    /// The messages as they go to a model.
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// The text of an OpenAI `content`: the string, or the `text` of its parts joined by newlines.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

async fn project(
    state: &ProjectManager,
    user: &CurrentUser,
    headers: &HeaderMap,
) -> Result<Option<Uuid>, ChatError> {
    match headers.get(CHAT_PROJECT_HEADER) {
        Some(value) => {
            let id = value
                .to_str()
                .ok()
                .and_then(|v| Uuid::parse_str(v.trim()).ok())
                .ok_or_else(|| ChatError::invalid(None, "OpenAI-Project must be a project id"))?;
            let found: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM projects WHERE id = $1 AND is_active")
                    .bind(id)
                    .fetch_optional(&state.db)
                    .await?;
            found
                .map(Some)
                .ok_or_else(|| ChatError::invalid(None, format!("project {id} does not exist")))
        }
        None => Ok(
            sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
                .bind(format!("default-{}", user.id))
                .fetch_optional(&state.db)
                .await?,
        ),
    }
}

fn thread_header(headers: &HeaderMap) -> Result<Option<Uuid>, ChatError> {
    headers
        .get(CHAT_THREAD_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| Uuid::parse_str(v.trim()).ok())
                .ok_or_else(|| ChatError::invalid(None, "X-CyNodeAI-Thread-Id must be a thread id"))
        })
        .transpose()
}

/// One completion call's context, for the stored answer, usage and the audit row.
#[derive(Debug, Clone)]
pub struct Call {
    pub state: ProjectManager,
    pub principal: Principal,
    pub project_id: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub model: String,
    pub stream: bool,
    pub findings: Findings,
    pub started: Instant,
}

/// How a call ended, for [`Call::close`].
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// `success`, `error`, `canceled` or `timeout`.
    pub outcome: &'a str,
    pub status: u16,
    pub error_code: Option<&'a str>,
    /// The model's token counts, for the audit row.
    pub usage: Option<(u64, u64)>,
}

impl Outcome<'_> {
    pub const fn success(usage: Option<(u64, u64)>) -> Self {
        Outcome {
            outcome: "success",
            status: 200,
            error_code: None,
            usage,
        }
    }
}

impl Call {
    /// Ends the call in one transaction: stores the answer (`answer`: content and the model
    /// that wrote it) in the thread, records `record` as token usage, and writes the audit row.
    /// Failures are logged: the client already has (or is getting) the answer.
    pub async fn close(
        &self,
        answer: Option<(&str, &str)>,
        record: Option<(u64, u64)>,
        how: Outcome<'_>,
    ) {
        let result = async {
            let mut tx = self.state.db.begin().await?;
            threads::relaxed(&mut tx).await?;
            if let (Some(thread), Some((content, model))) = (self.thread_id, answer)
                && !content.is_empty()
            {
                threads::insert(&mut tx, thread, "assistant", content, Some(model)).await?;
            }
            if let (Some((prompt_tokens, completion_tokens)), Some((_, model))) = (record, answer) {
                let call = ModelCall {
                    task_id: None,
                    model,
                    prompt_tokens,
                    completion_tokens,
                };
                usage::record(&mut *tx, self.principal, &call).await?;
                self.state
                    .metrics
                    .tokens("chat", model, prompt_tokens, completion_tokens);
            }
            self.audit(&mut tx, how).await?;
            tx.commit().await?;
            Ok::<_, error::Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "storing the chat answer, usage or audit row failed");
        }
        tracing::info!(
            model = %self.model,
            path = if self.model == PM_MODEL { "pm" } else { "node" },
            outcome = how.outcome,
            status = how.status,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "chat completion"
        );
    }

    /// The call's `chat_audit_log` row (no message content).
    async fn audit(&self, tx: &mut sqlx::PgConnection, how: Outcome<'_>) -> error::Result<()> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let kinds = self
            .findings
            .any()
            .then(|| json!(self.findings.kinds.clone()));
        sqlx::query(
            "INSERT INTO chat_audit_log (id, user_id, api_key_id, project_id, thread_id, model,
                 stream, outcome, status_code, error_code, redaction_applied, redaction_kinds,
                 duration_ms, prompt_tokens, completion_tokens)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(Uuid::new_v4())
        .bind(self.principal.user_id)
        .bind(self.principal.api_key_id)
        .bind(self.project_id)
        .bind(self.thread_id)
        .bind(&self.model)
        .bind(self.stream)
        .bind(how.outcome)
        .bind(i32::from(how.status))
        .bind(how.error_code)
        .bind(self.findings.any())
        .bind(kinds)
        .bind(i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX))
        .bind(how.usage.map(|u| count(u.0)))
        .bind(how.usage.map(|u| count(u.1)))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// `(prompt_tokens, completion_tokens)` of an OpenAI `usage` object.
pub fn usage_of(usage: &Value) -> Option<(u64, u64)> {
    Some((
        usage.get("prompt_tokens")?.as_u64()?,
        usage.get("completion_tokens")?.as_u64()?,
    ))
}

/// Any model but `cynodeai.pm`: the first node serving it that answers. A node that cannot be
/// reached or says it is unavailable gives way to the next; a timeout ends the call (another
/// node would start the wait over).
async fn node(call: &Call, request: Validated) -> Result<Response, ChatError> {
    let state = &call.state;
    let routes = node_inference::nodes_serving(
        &state.db,
        state.config.node_stale_after,
        &request.model,
        &state.worker_tokens,
    )
    .await?;
    if routes.is_empty() {
        return Err(if threads::model_known(&state.db, &request.model).await? {
            ChatError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                format!("no node that serves {} is available now", request.model),
            )
        } else {
            ChatError {
                param: Some("model"),
                ..ChatError::new(
                    StatusCode::NOT_FOUND,
                    "model_not_found",
                    format!(
                        "model {} does not exist; GET /v1/models lists the models",
                        request.model
                    ),
                )
            }
        });
    }
    let mut body = request.body.clone();
    body["model"] = json!(request.model);
    if request.stream {
        // Always asked for, so that usage can be recorded; dropped unless the client asked.
        body["stream_options"]["include_usage"] = json!(true);
    }
    let timeout = completion_timeout(state);
    let mut last = ChatError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "model_unavailable",
        format!("no node that serves {} answered", request.model),
    );
    for route in &routes {
        match node_inference::chat(&state.http, route, &body, timeout).await {
            Ok(answer) if request.stream => {
                return Ok(stream::relay(call.clone(), answer, request.include_usage));
            }
            Ok(answer) => return complete(call, answer, timeout).await,
            Err(NodeInferenceError::Timeout(secs)) => return Err(ChatError::timeout(secs)),
            Err(NodeInferenceError::Unreachable(why)) => {
                tracing::warn!(node = %route.node_slug, %why, "chat: node unreachable, trying the next");
            }
            Err(NodeInferenceError::Refused { status, message }) => match status {
                400 | 413 | 422 => {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                    return Err(ChatError::new(status, "invalid_request", message));
                }
                404 | 503 => {
                    tracing::warn!(node = %route.node_slug, status, %message, "chat: node cannot serve the model now, trying the next");
                }
                _ => {
                    last = ChatError::new(
                        StatusCode::BAD_GATEWAY,
                        "orchestrator_inference_failed",
                        format!("the model failed: {message}"),
                    );
                }
            },
            Err(NodeInferenceError::Unreadable(why)) => {
                last = ChatError::new(
                    StatusCode::BAD_GATEWAY,
                    "orchestrator_inference_failed",
                    format!("the node's answer was unreadable: {why}"),
                );
            }
        }
    }
    Err(last)
}

/// A node's non-streaming answer: passed on as it is, after storing it and its usage.
async fn complete(
    call: &Call,
    answer: reqwest::Response,
    timeout: Duration,
) -> Result<Response, ChatError> {
    let completion: Value = answer.json().await.map_err(|e| {
        if e.is_timeout() {
            ChatError::timeout(timeout.as_secs())
        } else {
            ChatError::new(
                StatusCode::BAD_GATEWAY,
                "orchestrator_inference_failed",
                format!("the node's answer was unreadable: {e}"),
            )
        }
    })?;
    let content = text_of(&completion["choices"][0]["message"]["content"]);
    let model = completion["model"]
        .as_str()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(&call.model)
        .to_owned();
    let usage = usage_of(&completion["usage"]);
    call.close(Some((&content, &model)), usage, Outcome::success(usage))
        .await;
    Ok(Json(completion).into_response())
}

/// What the Project Manager answered.
#[derive(Debug)]
pub struct PmAnswer {
    pub content: String,
    pub model: String,
    pub usage: Option<(u64, u64)>,
}

/// `cynodeai.pm`: the Project Manager answers with the whole history.
async fn pm(call: &Call, user: &CurrentUser, request: Validated) -> Result<Response, ChatError> {
    let answer = pm_answer(call, user, request.messages()).await?;
    // Stored with the model that answered; the PM recorded the usage already.
    let stored = Some((answer.content.as_str(), answer.model.as_str()));
    call.close(stored, None, Outcome::success(answer.usage))
        .await;
    let id = format!("chatcmpl-{}", Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if request.stream {
        return Ok(stream::synthesized(
            &id,
            created,
            PM_MODEL,
            &answer.content,
            answer.usage.filter(|_| request.include_usage),
        ));
    }
    let completion = ChatCompletion {
        id,
        object: "chat.completion".into(),
        created,
        model: PM_MODEL.into(),
        choices: vec![json!({
            "index": 0,
            "message": {"role": "assistant", "content": answer.content},
            "finish_reason": "stop",
        })],
        usage: answer.usage.map(
            |(p, c)| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}),
        ),
    };
    Ok(Json(completion).into_response())
}

/// The Project Manager's answer ([`crate::pm::chat_answer`], which records the token usage
/// itself).
async fn pm_answer(
    call: &Call,
    user: &CurrentUser,
    messages: Vec<Value>,
) -> Result<PmAnswer, ChatError> {
    match crate::pm::chat_answer(&call.state, user.principal(), messages).await {
        Ok(reply) => Ok(PmAnswer {
            content: reply.content,
            model: reply.model,
            usage: Some((reply.usage.prompt_tokens, reply.usage.completion_tokens)),
        }),
        Err(crate::pm::PmError::Unavailable(why)) => Err(ChatError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_unavailable",
            format!("the Project Manager is not available: {why}"),
        )),
        Err(crate::pm::PmError::Backend(why)) if why.contains("did not answer within") => {
            Err(ChatError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "cynodeai_completion_timeout",
                format!("the Project Manager {why}"),
            ))
        }
        Err(crate::pm::PmError::Backend(why)) => Err(ChatError::new(
            StatusCode::BAD_GATEWAY,
            "orchestrator_inference_failed",
            format!("the Project Manager's model failed: {why}"),
        )),
    }
}

/// The caller's chat threads, newest first.
#[utoipa::path(get, path = "/v1/chat/threads", tag = "chat", security(("bearer" = [])),
    params(PageQuery), responses(
    (status = 200, body = ChatThreadList), (status = 400, body = Problem), (status = 401, body = Problem),
))]
pub async fn list_threads(
    State(state): State<ProjectManager>,
    user: CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> error::Result<Json<ChatThreadList>> {
    let (limit, offset) = page(&query)?;
    Ok(Json(
        threads::list(&state.db, user.id, limit, offset).await?,
    ))
}

/// One of the caller's threads' messages, oldest first; another user's thread is 404.
#[utoipa::path(get, path = "/v1/chat/threads/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery), responses(
    (status = 200, body = ChatMessageList), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 404, body = Problem),
))]
pub async fn thread_messages(
    State(state): State<ProjectManager>,
    user: CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> error::Result<Json<ChatMessageList>> {
    let (limit, offset) = page(&query)?;
    Ok(Json(
        threads::messages(&state.db, user.id, id, limit, offset).await?,
    ))
}

fn page(query: &PageQuery) -> error::Result<(i64, i64)> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::validation("query parameter limit: must be 1 to 200").into());
    }
    let offset = i64::try_from(query.offset.unwrap_or(0))
        .map_err(|_| Problem::validation("query parameter offset: too large"))?;
    Ok((i64::from(limit), offset))
}

/// Body of an SSE response.
pub fn sse_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|e| ChatError::internal(e).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(body: &str) -> ChatError {
        Validated::parse(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn requests_are_validated() {
        assert_eq!(invalid("{").code, "invalid_request");
        assert_eq!(invalid("[]").status, StatusCode::BAD_REQUEST);
        assert_eq!(invalid(r#"{"messages":[]}"#).param, Some("messages"));
        assert_eq!(invalid(r#"{"model":"m"}"#).param, Some("messages"));
        assert_eq!(
            invalid(r#"{"messages":[{"content":"hi"}]}"#).param,
            Some("messages")
        );
        assert_eq!(
            invalid(r#"{"messages":[{"role":"user"}]}"#).param,
            Some("messages")
        );
        assert_eq!(
            invalid(r#"{"messages":[{"role":"user","content":1}]}"#).param,
            Some("messages")
        );
        assert_eq!(
            invalid(r#"{"model":3,"messages":[{"role":"user","content":"x"}]}"#).param,
            Some("model")
        );
        assert_eq!(
            invalid(r#"{"stream":"yes","messages":[{"role":"user","content":"x"}]}"#).param,
            Some("stream")
        );
    }

    #[test]
    fn no_model_means_the_pm_and_fields_pass_through() {
        let r = Validated::parse(
            br#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"temperature":0.2,"model":""}"#,
        )
        .unwrap();
        assert_eq!(r.model, PM_MODEL);
        assert!(!r.stream);
        assert_eq!(r.body["temperature"], 0.2);
        assert_eq!(r.last_message(), ("user".to_owned(), "a\nb".to_owned()));
        assert_eq!(r.messages().len(), 2);
        let r = Validated::parse(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"assistant","content":null,"tool_calls":[]}]}"#,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn secrets_are_redacted_in_every_message() {
        let mut r = Validated::parse(
            br#"{"messages":[{"role":"user","content":"password=hunter2"},{"role":"user","content":"and sk-abcdefghijklmnopqrstuvwxyz"}]}"#,
        )
        .unwrap();
        let findings = r.redact();
        assert_eq!(findings.kinds, ["password", "openai_key"]);
        assert_eq!(r.body["messages"][0]["content"], "password=SECRET_REDACTED");
        assert_eq!(r.last_message().1, "and SECRET_REDACTED");
    }
}
