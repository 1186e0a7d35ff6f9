//! A scripted model server speaking the OpenAI wire protocol (`GET /v1/models`,
//! `POST /v1/chat/completions`), for tests of control logic that must not depend on what a real
//! model happens to say. Put it behind a real worker API (`--inference-url`) so the orchestrator
//! reaches it the way it reaches a real model.
//!
//! Warm-ups (requests with `max_tokens: 1` and no `response_format`) are answered `OK` without
//! using the script, and can be held ([`ScriptedModel::hold_warmups`]). Other requests take the
//! next scripted [`Reply`]; an empty script answers with a plain `answer` decision. The helpers
//! build the answers the Project Manager's workflow asks for: a plan, a verification, an answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the server does with one (non-warm-up) request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `choices[0].message.content`.
    Content(String),
    /// An OpenAI error with this HTTP status.
    Status(u16),
    /// Wait until [`ScriptedModel::release`], then answer with the content.
    HoldThen(String),
}

impl Reply {
    /// A `{"action":"answer","answer":…}` decision.
    pub fn answer(text: &str) -> Self {
        Self::Content(json!({"action": "answer", "answer": text}).to_string())
    }
    /// A `{"action":"plan","steps":[…]}` with one step per command list, each expecting
    /// "output".
    pub fn plan(steps: &[&[&str]]) -> Self {
        let steps: Vec<Value> = steps
            .iter()
            .enumerate()
            .map(|(i, commands)| {
                json!({"description": format!("step {}", i + 1), "commands": commands,
                       "expected_evidence": "output"})
            })
            .collect();
        Self::Content(json!({"action": "plan", "steps": steps, "assumptions": []}).to_string())
    }
    /// A verification that passes.
    pub fn pass() -> Self {
        Self::Content(json!({"status": "pass", "findings": ["looks right"]}).to_string())
    }
    /// A verification that fails with `finding`, proposing `retry_commands` (none: run the
    /// same commands again).
    pub fn fail(finding: &str, retry_commands: &[&str]) -> Self {
        Self::Content(
            json!({"status": "fail", "findings": [finding],
                   "recommended_actions": ["print what was asked"],
                   "retry_commands": retry_commands})
            .to_string(),
        )
    }
}

#[derive(Debug)]
struct Inner {
    model: String,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Value>>,
    warmups: Mutex<u32>,
    hold_warmups: watch::Sender<bool>,
    release: watch::Sender<bool>,
}

/// A running scripted model server on loopback.
#[derive(Debug, Clone)]
pub struct ScriptedModel {
    pub url: String,
    inner: Arc<Inner>,
}

async fn models(State(inner): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": inner.model, "object": "model", "created": 0}]}))
}

async fn chat(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    let warmup = body["max_tokens"] == 1 && body.get("response_format").is_none();
    let reply = if warmup {
        let mut held = inner.hold_warmups.subscribe();
        let _ = held.wait_for(|hold| !*hold).await;
        *inner.warmups.lock().unwrap() += 1;
        Reply::Content("OK".into())
    } else {
        inner.requests.lock().unwrap().push(body.clone());
        let next = inner.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Reply::answer("default scripted answer"))
    };
    let content = match reply {
        Reply::Content(c) => c,
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (
                status,
                Json(json!({"error": {"message": "scripted failure", "type": "server_error"}})),
            )
                .into_response();
        }
        Reply::HoldThen(c) => {
            let mut released = inner.release.subscribe();
            let _ = released.wait_for(|r| *r).await;
            c
        }
    };
    Json(json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": inner.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    }))
    .into_response()
}

impl ScriptedModel {
    /// Serves `model` on a free loopback port.
    pub async fn start(model: &str) -> Self {
        let inner = Arc::new(Inner {
            model: model.to_owned(),
            script: Mutex::default(),
            requests: Mutex::default(),
            warmups: Mutex::default(),
            hold_warmups: watch::channel(false).0,
            release: watch::channel(false).0,
        });
        let app = axum::Router::new()
            .route("/v1/models", axum::routing::get(models))
            .route("/v1/chat/completions", axum::routing::post(chat))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            url: format!("http://{addr}"),
            inner,
        }
    }

    /// Appends replies to the script.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().unwrap().extend(replies);
    }

    /// The bodies of the non-warm-up requests, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Warm-ups answered so far.
    pub fn warmups(&self) -> u32 {
        *self.inner.warmups.lock().unwrap()
    }

    /// Holds (true) or lets through (false) warm-up requests.
    pub fn hold_warmups(&self, hold: bool) {
        self.inner.hold_warmups.send_replace(hold);
    }

    /// Lets every [`Reply::HoldThen`] answer.
    pub fn release(&self) {
        self.inner.release.send_replace(true);
    }
}
