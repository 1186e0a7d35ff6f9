//! What a completion request says: its body, checked before anything else happens, and the
//! project and thread its headers name.

use axum::http::HeaderMap;
use cynode_contracts::routes::user::{CHAT_PROJECT_HEADER, CHAT_THREAD_HEADER};
use cynode_contracts::user::PM_MODEL;
use serde_json::Value;
use uuid::Uuid;

use super::ChatError;
use super::redact::{self, Findings};
use crate::auth::CurrentUser;
use crate::pm::ProjectManager;

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

pub(super) async fn project(
    state: &ProjectManager,
    user: &CurrentUser,
    headers: &HeaderMap,
) -> Result<Uuid, ChatError> {
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
            found.ok_or_else(|| {
                ChatError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "not_found",
                    format!("project {id} does not exist"),
                )
            })
        }
        None => Ok(crate::projects::default_of(&state.db, user.id).await?),
    }
}

pub(super) fn thread_header(headers: &HeaderMap) -> Result<Option<Uuid>, ChatError> {
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

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
