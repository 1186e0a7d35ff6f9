//! OpenAI-compatible chat on the user gateway, against an in-process orchestrator on real
//! PostgreSQL: validation and authentication in OpenAI's error shape, thread ownership, and how
//! the gateway treats nodes: one it cannot reach gives way to the next (a worker stand-in that
//! forwards to the dev environment's real llama.cpp server), none reachable is 503, a silent one
//! is 504. The full path through the real node manager and worker API is in
//! `e2e/tests/chat.rs`.

use crate::common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{Node, Orchestrator, capability};
use cynode_e2e::{DevEnv, free_port};
use serde_json::{Value, json};

const MODEL: &str = "smollm2:135m";

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 8,
           "messages": [{"role": "user", "content": "Say hello."}]})
}

impl Orchestrator {
    async fn chat(&self, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/v1/chat/completions", self.gw))
            .json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    /// A node that is dispatchable and reports serving `MODEL`, with its worker at `worker_url`.
    /// Returns the worker token the orchestrator will send.
    async fn model_node(&self, slug: &str, worker_url: &str) -> String {
        let mut node = Node::register(self, slug, worker_url).await;
        let config = node.fetch_config(self).await.clone();
        let token = config.worker_api.orchestrator_bearer_token.clone();
        let resp = node.ack(self, &config.config_version, "applied").await;
        assert_eq!(resp.status(), 204);
        let mut report = capability(slug, worker_url);
        report["inference"]["running"] = json!(true);
        report["inference"]["available_models"] = json!([MODEL]);
        report["inference"]["loaded_models"] = json!([MODEL]);
        let resp = node.report(self, &report).await;
        assert!(resp.status().is_success(), "{}", resp.status());
        token
    }
}

/// `(status, error object)` of an OpenAI-shaped error answer.
async fn openai_error(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(content_type, "application/json", "{body}");
    let error = body["error"].clone();
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], "cynodeai_error", "{body}");
    assert!(error.get("param").is_some(), "{body}");
    assert!(error["code"].is_string(), "{body}");
    (status, error)
}

#[tokio::test]
async fn bad_requests_and_missing_credentials_are_openai_errors() {
    let o = Orchestrator::start(&[]).await;
    let token = o.admin_token().await;

    for (auth, why) in [(None, "no token"), (Some("not-a-jwt"), "bad token")] {
        let (status, error) = openai_error(o.chat(auth, hello(MODEL)).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{why}"
        );
        let resp = o
            .http
            .get(format!("{}/v1/models", o.gw))
            .bearer_auth(auth.unwrap_or(""))
            .send()
            .await
            .unwrap();
        assert_eq!(openai_error(resp).await.0, 401, "{why}");
    }
    let revoked_key = format!("cyn_{}", "0".repeat(64));
    let (status, _) = openai_error(o.chat(Some(&revoked_key), hello(MODEL)).await).await;
    assert_eq!(status, 401);

    let cases = [
        (json!({"model": MODEL, "messages": []}), "messages"),
        (json!({"model": MODEL}), "messages"),
        (json!({"model": MODEL, "messages": "hi"}), "messages"),
        (
            json!({"model": MODEL, "messages": [{"content": "hi"}]}),
            "messages",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user"}]}),
            "messages",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": 7}]}),
            "messages",
        ),
        (
            json!({"model": 7, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": MODEL, "stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
            "stream",
        ),
    ];
    for (body, param) in cases {
        let (status, error) = openai_error(o.chat(Some(&token), body.clone()).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["code"], "invalid_request", "{body}");
        assert_eq!(error["param"], param, "{body}");
    }
    let resp = o
        .http
        .post(format!("{}/v1/chat/completions", o.gw))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(openai_error(resp).await.0, 400);
    let resp = o
        .http
        .post(format!("{}/v1/chat/completions", o.gw))
        .bearer_auth(&token)
        .header("openai-project", "not-a-uuid")
        .json(&hello(MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(openai_error(resp).await.0, 400);

    // No node lists it: unknown.
    let (status, error) = openai_error(o.chat(Some(&token), hello("no-such:1b")).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("model_not_found"))
    );
    assert_eq!(error["param"], "model");
    // Rejected requests leave no thread behind; the 404 (after the pipeline stored the message)
    // is audited.
    let audited: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT outcome, status_code, error_code FROM chat_audit_log ORDER BY created_at",
    )
    .fetch_all(&o.db)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [("error".to_owned(), 404, Some("model_not_found".to_owned()))]
    );
}

#[tokio::test]
async fn the_model_list_has_the_pm_and_what_nodes_serve() {
    let o = Orchestrator::start(&[]).await;
    let token = o.admin_token().await;
    let (status, list) = o.get(&token, "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cynodeai.pm"]);
    o.model_node("node-a", "http://127.0.0.1:9").await;
    let (_, list) = o.get(&token, "/v1/models").await;
    assert_eq!(list["data"][1]["id"], MODEL, "{list}");
    for model in list["data"].as_array().unwrap() {
        assert_eq!(model["object"], "model");
        assert!(
            model["created"].is_i64() && model["owned_by"].is_string(),
            "{model}"
        );
    }
}

/// A stand-in for a node's worker API that checks the node's token and forwards chat to the
/// real llama.cpp server of the dev environment.
async fn forwarding_worker(token: String) -> String {
    let inference = DevEnv::load().inference_url;
    let port = free_port();
    async fn forward(
        State((token, inference)): State<(String, String)>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&expected) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let answer = reqwest::Client::new()
            .post(format!("{inference}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
        (status, answer.bytes().await.unwrap()).into_response()
    }
    let app = axum::Router::new()
        .route(
            "/v1/worker/inference/v1/chat/completions",
            axum::routing::post(forward),
        )
        .with_state((token, inference));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://127.0.0.1:{port}")
}

/// A worker that accepts connections and never answers.
async fn silent_worker() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test]
async fn an_unreachable_node_gives_way_to_the_next_and_none_reachable_is_503() {
    let o = Orchestrator::start(&[]).await;
    let token = o.admin_token().await;
    // Sorted first (both have the model loaded): a worker URL nothing listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    o.model_node("a-dead", &dead).await;
    let (status, error) = openai_error(o.chat(Some(&token), hello(MODEL)).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (503, Some("model_unavailable"))
    );

    // The live node's token is known only after registration: register with a placeholder
    // URL, then point the node at a forwarder holding that token.
    let provisional = format!("http://127.0.0.1:{}", free_port());
    let token_b = o.model_node("b-live", &provisional).await;
    let live = forwarding_worker(token_b).await;
    sqlx::query("UPDATE nodes SET worker_api_target_url = $1 WHERE node_slug = 'b-live'")
        .bind(&live)
        .execute(&o.db)
        .await
        .unwrap();
    let resp = o.chat(Some(&token), hello(MODEL)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.trim().is_empty(), "{body}");
}

#[tokio::test]
async fn a_node_that_does_not_answer_in_time_is_504() {
    // Logging in (Argon2 in a debug build) may itself take seconds: log in first, then run the
    // orchestrator again on the same database with a short request timeout.
    let mut first = Orchestrator::start(&[]).await;
    let token = first.admin_token().await;
    first.stop().await;
    let o = Orchestrator::start_on(
        &first.database_url,
        cynode_orchestrator::Role::All,
        &[("REQUEST_TIMEOUT", "3s")],
    )
    .await;
    let silent = silent_worker().await;
    o.model_node("silent", &silent).await;
    let (status, error) = openai_error(o.chat(Some(&token), hello(MODEL)).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (504, Some("cynodeai_completion_timeout"))
    );
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM chat_audit_log")
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(outcome, "timeout");
}

#[tokio::test]
async fn threads_are_their_owners_alone() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    o.create_user("bob", "correct-horse-b-1").await;
    let (bob, _) = o.login("bob", "correct-horse-b-1").await;
    // Unknown model: the message is still stored (the pipeline stores before routing).
    let resp = o
        .chat(
            Some(&admin),
            json!({"model": "none:1b", "messages": [{"role": "user", "content": "my password=hunter2"}]}),
        )
        .await;
    let thread = resp
        .headers()
        .get("x-cynodeai-thread-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(resp.status(), 404);
    assert!(thread.is_none(), "an error answer names no thread");

    let (status, list) = o.get(&admin, "/v1/chat/threads").await;
    assert_eq!(status, 200);
    let threads = list["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{list}");
    let id = threads[0]["id"].as_str().unwrap();
    assert_eq!(threads[0]["message_count"], 1);
    let (status, messages) = o
        .get(&admin, &format!("/v1/chat/threads/{id}/messages"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        messages["messages"][0]["content"], "my password=SECRET_REDACTED",
        "{messages}"
    );

    let (status, _) = o
        .get(&bob, &format!("/v1/chat/threads/{id}/messages"))
        .await;
    assert_eq!(status, 404);
    let (_, bobs) = o.get(&bob, "/v1/chat/threads").await;
    assert_eq!(bobs["threads"], json!([]));
    // Naming another user's thread is a 404 too, in OpenAI's shape.
    let resp = o
        .http
        .post(format!("{}/v1/chat/completions", o.gw))
        .bearer_auth(&bob)
        .header("x-cynodeai-thread-id", id)
        .json(&hello(MODEL))
        .send()
        .await
        .unwrap();
    let (status, error) = openai_error(resp).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("thread_not_found"))
    );

    for bad in ["limit=0", "limit=201", "offset=-1", "colour=red"] {
        let (status, _) = o.get(&admin, &format!("/v1/chat/threads?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = o.get(&admin, "/v1/chat/threads/not-a-uuid/messages").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_new_thread_starts_a_fresh_conversation_where_the_caller_may_chat() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let say = |thread: Option<String>, text: &str| {
        let mut req = o
            .http
            .post(format!("{}/v1/chat/completions", o.gw))
            .bearer_auth(&admin)
            .json(&json!({"model": "none:1b", "messages": [{"role": "user", "content": text}]}));
        if let Some(thread) = thread {
            req = req.header("x-cynodeai-thread-id", thread);
        }
        req.send()
    };
    // A first conversation (the model is unknown, but the message is stored before routing).
    say(None, "first conversation").await.unwrap();
    let create = |body: Value| {
        o.http
            .post(format!("{}/v1/chat/threads", o.gw))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let resp = create(json!({})).await.unwrap();
    assert_eq!(resp.status(), 201);
    let fresh: Value = resp.json().await.unwrap();
    assert_eq!(fresh["message_count"], 0);
    assert_eq!(fresh["creator"], "admin");
    assert!(fresh.get("title").is_none(), "{fresh}");
    let id = fresh["id"].as_str().unwrap().to_owned();
    say(Some(id.clone()), "second conversation").await.unwrap();
    let (_, list) = o.get(&admin, "/v1/chat/threads").await;
    let threads = list["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "{list}");
    assert_eq!(threads[0]["id"], id.as_str());
    assert_eq!(
        threads[0]["title"], "second conversation",
        "titled by its first message"
    );
    assert_eq!(threads[1]["title"], "first conversation");
    assert_eq!(
        (
            threads[0]["message_count"].as_i64(),
            threads[1]["message_count"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let titled: Value = create(json!({"title": "Release notes"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(titled["title"], "Release notes");

    // Where the caller may not chat, or nothing is made.
    let viewer_project = o.create_project("read-only", &[]).await;
    o.create_user("vera", "correct-horse-b-2").await;
    let resp = o
        .http
        .post(format!("{}/v1/role-bindings", o.gw))
        .bearer_auth(&admin)
        .json(
            &json!({"role": "viewer", "subject_type": "user", "subject": "vera",
                      "scope_type": "project", "scope_id": "read-only"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let (vera, _) = o.login("vera", "correct-horse-b-2").await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_threads")
        .fetch_one(&o.db)
        .await
        .unwrap();
    for (who, body, want) in [
        (&vera, json!({"project_id": viewer_project}), 403),
        (&admin, json!({"project_id": uuid::Uuid::new_v4()}), 404),
        (&admin, json!({"title": "  "}), 400),
        (&admin, json!({"title": "x".repeat(81)}), 400),
        (&admin, json!({"colour": "red"}), 400),
    ] {
        let resp = o
            .http
            .post(format!("{}/v1/chat/threads", o.gw))
            .bearer_auth(who)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{body}");
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_threads")
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_shared_projects_threads_are_read_by_its_members_and_nobody_else() {
    let o = Orchestrator::start(&[]).await;
    for (who, pw) in [
        ("alice", "correct-horse-a-1"),
        ("bob", "correct-horse-b-1"),
        ("carol", "correct-horse-c-1"),
    ] {
        o.create_user(who, pw).await;
    }
    let vision = o.create_project("vision", &["alice", "bob"]).await;
    let (alice, _) = o.login("alice", "correct-horse-a-1").await;
    let (bob, _) = o.login("bob", "correct-horse-b-1").await;
    let (carol, _) = o.login("carol", "correct-horse-c-1").await;
    // An unknown model: the message is stored before routing, in alice's thread of vision.
    let resp = o
        .http
        .post(format!("{}/v1/chat/completions", o.gw))
        .bearer_auth(&alice)
        .header("openai-project", vision.to_string())
        .json(&json!({"model": "none:1b", "messages": [{"role": "user", "content": "plan the labels"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let (status, list) = o.get(&bob, "/v1/chat/threads?project=vision").await;
    assert_eq!(status, 200, "{list}");
    let threads = list["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{list}");
    assert_eq!(threads[0]["creator"], "alice");
    assert_eq!(threads[0]["project_id"], json!(vision));
    let id = threads[0]["id"].as_str().unwrap().to_owned();
    let (status, messages) = o
        .get(&bob, &format!("/v1/chat/threads/{id}/messages"))
        .await;
    assert_eq!(status, 200, "{messages}");
    assert_eq!(messages["messages"][0]["content"], "plan the labels");
    // Bob's own list is his own threads; he cannot write into alice's.
    let (_, own) = o.get(&bob, "/v1/chat/threads").await;
    assert_eq!(own["threads"], json!([]));
    let resp = o
        .http
        .post(format!("{}/v1/chat/completions", o.gw))
        .bearer_auth(&bob)
        .header("openai-project", vision.to_string())
        .header("x-cynodeai-thread-id", &id)
        .json(&hello(MODEL))
        .send()
        .await
        .unwrap();
    let (status, error) = openai_error(resp).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("thread_not_found"))
    );

    // Outside the project, neither the list nor the thread exists; both denials are audited.
    let denied_before = o.count("access_control_audit_log").await;
    let (status, _) = o.get(&carol, "/v1/chat/threads?project=vision").await;
    assert_eq!(status, 404);
    let (status, _) = o
        .get(&carol, &format!("/v1/chat/threads/{id}/messages"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(o.count("access_control_audit_log").await, denied_before + 2);
    let (status, _) = o.get(&bob, "/v1/chat/threads?project=Not%20A%20Slug").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn openapi_documents_the_chat_routes() {
    let o = Orchestrator::start(&[]).await;
    let doc = o.openapi(&o.gw).await;
    use cynode_contracts::routes::user;
    for path in [
        user::MODELS,
        user::CHAT_COMPLETIONS,
        user::CHAT_THREADS,
        user::CHAT_THREAD_MESSAGES,
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let post = &doc["paths"]["/v1/chat/completions"]["post"];
    for status in ["200", "400", "401", "404", "503", "504"] {
        assert!(post["responses"][status].is_object(), "{status}");
    }
    let request = &doc["components"]["schemas"]["ChatCompletionRequest"];
    assert_eq!(
        request["properties"]["messages"]["minItems"], 1,
        "{request}"
    );
}
