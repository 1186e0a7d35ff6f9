//! Who answers a completion: `cynodeai.pm` (or no model) goes to the Project Manager, any other
//! model to a node that serves it, through [`crate::node_inference`].

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cynode_contracts::user::{ChatCompletion, PM_MODEL};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Call, ChatError, Outcome, Validated, stream, text_of, threads, usage_of};
use crate::auth::CurrentUser;
use crate::node_inference::{self, NodeInferenceError};
use crate::pm::ProjectManager;

/// How long the gateway waits for a model: the request timeout less a margin (a tenth, 1 to
/// 10 s), so that a slow model is a 504 from here rather than the edge's generic 503.
pub fn completion_timeout(state: &ProjectManager) -> Duration {
    let total = state.config.request_timeout;
    let margin = (total / 10).clamp(Duration::from_secs(1), Duration::from_secs(10));
    total.saturating_sub(margin).max(Duration::from_millis(500))
}

/// Any model but `cynodeai.pm`: the first node serving it that answers. A node that cannot be
/// reached or says it is unavailable gives way to the next; a timeout ends the call (another
/// node would start the wait over).
pub(super) async fn node(call: &Call, request: Validated) -> Result<Response, ChatError> {
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
pub(super) async fn pm(
    call: &Call,
    user: &CurrentUser,
    request: Validated,
) -> Result<Response, ChatError> {
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
