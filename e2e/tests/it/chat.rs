//! OpenAI-compatible chat on the user gateway with the real processes: `cynode-orchestrator all`
//! on a fresh database, the real node manager and worker API, and the dev environment's
//! llama.cpp server with SmolLM2-135M. The official `openai` Python package (installed by
//! `scripts/bootstrap.sh` into `CYNODE_TEST_PYTHON`'s venv) talks to the gateway with a personal
//! API key; the other test checks what the gateway keeps: threads, usage, audit rows. Only the
//! shape of answers is asserted, never the model's wording.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{MODEL, NodeManager, Orchestrator, User};
use serde_json::{Value, json};
use sqlx::Connection;

/// The orchestrator with a node that serves the dev model, and an admin login.
struct Stack {
    orchestrator: Orchestrator,
    node: NodeManager,
    http: reqwest::Client,
    token: String,
}

impl Stack {
    async fn start() -> Self {
        let env = DevEnv::load();
        let orchestrator = Orchestrator::start(&env, &[]).await;
        let node = NodeManager::start_serving(&env, &orchestrator).await;
        let token = User::login(&orchestrator).await.token().to_owned();
        Self {
            orchestrator,
            node,
            http: reqwest::Client::new(),
            token,
        }
    }

    /// A new personal API key: `(id, key)`.
    async fn api_key(&self, name: &str) -> (String, String) {
        let created: Value = self
            .http
            .post(format!("{}/v1/users/me/api-keys", self.orchestrator.gw))
            .bearer_auth(&self.token)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            created["id"].as_str().unwrap().to_owned(),
            created["key"].as_str().unwrap().to_owned(),
        )
    }

    async fn chat(&self, credential: &str, thread: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/v1/chat/completions", self.orchestrator.gw))
            .bearer_auth(credential)
            .json(&body);
        if let Some(thread) = thread {
            req = req.header("x-cynodeai-thread-id", thread);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, credential: &str, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.orchestrator.gw))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    async fn db(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.orchestrator.database_url)
            .await
            .unwrap()
    }
}

fn thread_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-cynodeai-thread-id")
        .expect("the answer names its thread")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `data:` payloads of a server-sent event stream, read chunk by chunk as they arrive.
async fn sse_events(mut resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut text = String::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: ").map(str::to_owned))
        .collect()
}

/// Drives the gateway with the official client; prints one JSON object of what it saw.
const OPENAI_SCRIPT: &str = r#"
import json, os, sys
import openai
from openai import OpenAI

base, key, model = os.environ["GATEWAY"] + "/v1", os.environ["API_KEY"], os.environ["MODEL"]
client = OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
history = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Name another one."},
]
out = {"models": [m.id for m in client.models.list()]}

r = client.chat.completions.create(model=model, messages=history, max_tokens=16)
out["plain"] = {"content": r.choices[0].message.content, "role": r.choices[0].message.role,
                "object": r.object, "usage": r.usage.model_dump() if r.usage else None}

def streamed(**extra):
    deltas, usage, chunks = [], None, 0
    for chunk in client.chat.completions.create(model=model, messages=history, max_tokens=16,
                                                stream=True, **extra):
        chunks += 1
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    return {"deltas": deltas, "usage": usage, "chunks": chunks}

out["stream"] = streamed()
out["stream_usage"] = streamed(stream_options={"include_usage": True})

def status_of(call):
    try:
        call()
        return {"status": 200}
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {"status": e.status_code, "code": body.get("code"), "type": body.get("type")}

out["unknown_model"] = status_of(lambda: client.chat.completions.create(
    model="no-such-model:1b", messages=history, max_tokens=4))
out["empty_messages"] = status_of(lambda: client.chat.completions.create(
    model=model, messages=[], max_tokens=4))
out["bad_key"] = status_of(lambda: OpenAI(base_url=base, api_key="cyn_" + "0" * 64,
    max_retries=0).models.list())

def pm():
    r = client.chat.completions.create(model="cynodeai.pm", messages=history)
    out["pm_content"] = r.choices[0].message.content
    out["pm_model"] = r.model
out["pm"] = status_of(pm)
model = "cynodeai.pm"
out["pm_stream"] = streamed(stream_options={"include_usage": True})
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_openai_python_client_lists_models_and_chats_through_the_gateway() {
    let mut stack = Stack::start().await;
    let (_, key) = stack.api_key("openai-python").await;
    let output = tokio::process::Command::new(DevEnv::load().python)
        .arg("-c")
        .arg(OPENAI_SCRIPT)
        .env("GATEWAY", &stack.orchestrator.gw)
        .env("API_KEY", &key)
        .env("MODEL", MODEL)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the venv's python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let out: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));

    assert_eq!(out["models"], json!(["cynodeai.pm", MODEL]), "{out}");
    let plain = &out["plain"];
    assert_eq!(plain["object"], "chat.completion", "{out}");
    assert_eq!(plain["role"], "assistant", "{out}");
    assert!(
        plain["content"]
            .as_str()
            .is_some_and(|c| !c.trim().is_empty()),
        "{out}"
    );
    assert!(
        plain["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{out}"
    );
    assert!(
        plain["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{out}"
    );
    // Streaming: the answer arrives as several chunks (its text in one delta or more: a model
    // may answer in a single token); the usage chunk only when asked for.
    for name in ["stream", "stream_usage"] {
        assert!(out[name]["chunks"].as_u64().unwrap() >= 2, "{name}: {out}");
        let deltas = out[name]["deltas"].as_array().unwrap();
        let text: String = deltas.iter().filter_map(Value::as_str).collect();
        assert!(!text.trim().is_empty(), "{name}: {out}");
    }
    assert_eq!(out["stream"]["usage"], Value::Null, "{out}");
    assert!(
        out["stream_usage"]["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{out}"
    );
    assert_eq!(
        out["unknown_model"],
        json!({"status": 404, "code": "model_not_found", "type": "cynodeai_error"})
    );
    assert_eq!(out["empty_messages"]["status"], 400, "{out}");
    assert_eq!(out["empty_messages"]["code"], "invalid_request", "{out}");
    assert_eq!(out["bad_key"]["status"], 401, "{out}");
    // cynodeai.pm: the Project Manager answers (on the node's model), whole or as chunks.
    assert_eq!(out["pm"], json!({"status": 200}), "{out}");
    assert_eq!(out["pm_model"], "cynodeai.pm", "{out}");
    assert!(
        out["pm_content"]
            .as_str()
            .is_some_and(|c| !c.trim().is_empty()),
        "{out}"
    );
    let pm_stream = &out["pm_stream"];
    assert!(!pm_stream["deltas"].as_array().unwrap().is_empty(), "{out}");
    assert!(
        pm_stream["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{out}"
    );

    // A node that went away: its model is unavailable, not unknown. (Killed: the worker API
    // goes with it through its parent-death signal.)
    stack.node.process.0.start_kill().unwrap();
    let stopped = stack.node.process.wait_exit(Duration::from_secs(30)).await;
    assert!(stopped.is_some(), "the node manager did not die");
    let resp = stack
        .chat(
            &key,
            None,
            json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_unavailable", "{body}");
}

#[tokio::test]
async fn the_gateway_keeps_threads_usage_and_audit_rows_of_real_completions() {
    let stack = Stack::start().await;
    let (key_id, key) = stack.api_key("threads").await;
    let secret = "sk-abcdefghijklmnopqrstuvwxyz0123";
    let first = json!({"model": MODEL, "max_tokens": 12, "messages": [
        {"role": "user", "content": format!("Remember my key {secret}. Say ok.")}]});
    let resp = stack.chat(&key, None, first).await;
    assert_eq!(resp.status(), 200);
    let thread = thread_of(&resp);
    let answer: Value = resp.json().await.unwrap();
    let reply = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!reply.trim().is_empty(), "{answer}");

    // The client sends the whole history; streaming continues the same thread.
    let second = json!({"model": MODEL, "max_tokens": 12, "stream": true, "messages": [
        {"role": "user", "content": "Say ok."},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "Again, please."}]});
    let resp = stack.chat(&key, None, second).await;
    assert_eq!(thread_of(&resp), thread);
    let events = sse_events(resp).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.trim().is_empty(), "{events:?}");

    // Stored: four messages, oldest first, the secret redacted, the answers as sent.
    let messages = stack
        .get(&key, &format!("/v1/chat/threads/{thread}/messages"))
        .await;
    let stored = messages["messages"].as_array().unwrap();
    let roles: Vec<&str> = stored.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "{messages}"
    );
    let user_text = stored[0]["content"].as_str().unwrap();
    assert!(
        user_text.contains("SECRET_REDACTED") && !user_text.contains(secret),
        "{user_text}"
    );
    assert_eq!(stored[1]["content"], reply.as_str());
    assert_eq!(stored[3]["content"], text.as_str());
    assert_eq!(stored[3]["model"], MODEL);

    // Usage: two calls through this key, with the model's counts.
    let usage = stack.get(&key, "/v1/users/me/usage").await;
    let by_key = usage["by_api_key"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["api_key_id"] == key_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{usage}"));
    assert_eq!(by_key["requests"], 2, "{usage}");
    assert!(by_key["completion_tokens"].as_i64().unwrap() > 0, "{usage}");
    assert_eq!(usage["by_model"][0]["model"], MODEL, "{usage}");

    // Audit: one row per call, no content anywhere in it.
    let mut db = stack.db().await;
    let rows: Vec<(String, bool, bool, Option<i64>, String)> = sqlx::query_as(
        "SELECT outcome, stream, redaction_applied, completion_tokens, row_to_json(a)::text
         FROM chat_audit_log a ORDER BY created_at",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2),
        ("success", false, true)
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1, rows[1].2),
        ("success", true, false)
    );
    assert!(rows.iter().all(|r| r.3.is_some_and(|n| n > 0)), "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| !r.4.contains("Say ok") && !r.4.contains(secret)),
        "{rows:?}"
    );

    // After 2 h idle the next message starts a new thread; naming the old one continues it.
    sqlx::query("UPDATE chat_threads SET updated_at = now() - interval '3 hours'")
        .execute(&mut db)
        .await
        .unwrap();
    let short = json!({"model": MODEL, "max_tokens": 4,
                       "messages": [{"role": "user", "content": "Hi"}]});
    let resp = stack.chat(&key, None, short.clone()).await;
    assert_eq!(resp.status(), 200);
    let fresh = thread_of(&resp);
    assert_ne!(fresh, thread);
    let resp = stack.chat(&key, Some(&thread), short).await;
    assert_eq!(thread_of(&resp), thread);
    let threads = stack.get(&stack.token, "/v1/chat/threads").await;
    let listed: Vec<(&str, i64)> = threads["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["message_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [(thread.as_str(), 6), (fresh.as_str(), 2)],
        "{threads}"
    );
    let page = stack.get(&stack.token, "/v1/chat/threads?limit=1").await;
    assert_eq!(page["threads"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_offset"], 1);
}
