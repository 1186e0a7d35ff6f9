//! User gateway endpoints against a real PostgreSQL: auth, tasks, ownership, bad input.

use crate::common;

use std::time::Duration;

use common::*;
use cynode_orchestrator::auth::TokenType;
use serde_json::{Value, json};

#[tokio::test]
async fn login_refresh_logout_and_me() {
    let o = Orchestrator::start(&[]).await;
    let (access, refresh) = o.login("admin", ADMIN_PASSWORD).await;
    let (status, me) = o.get(&access, "/v1/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["handle"], "admin");
    assert_eq!(me["is_active"], true);

    // Passwords are stored as Argon2id PHC strings with the spec's parameters.
    let hash: Vec<u8> = sqlx::query_scalar("SELECT password_hash FROM password_credentials")
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert!(
        String::from_utf8(hash)
            .unwrap()
            .starts_with("$argon2id$v=19$m=65536,t=3,p=2$")
    );
    // Refresh tokens are stored hashed, never as given.
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT refresh_token_hash FROM refresh_sessions")
            .fetch_all(&o.db)
            .await
            .unwrap();
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 32 && h != refresh.as_bytes())
    );

    for (handle, password, needle) in [
        ("admin", "nope", "invalid handle or password"),
        ("ghost", "nope", "invalid handle or password"),
        ("system", "x", "invalid"),
    ] {
        let body = json!({"handle": handle, "password": password});
        assert_problem(o.post_json("/v1/auth/login", body).await, 401, needle).await;
    }

    // Rotation: the new pair works, the old refresh token works no more.
    let refresh_with = |token: &str| json!({"refresh_token": token});
    let rotated: Value = o
        .post_json("/v1/auth/refresh", refresh_with(&refresh))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rotated["token_type"], "Bearer");
    assert_eq!(rotated["expires_in"], 900);
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let reused = o
        .post_json("/v1/auth/refresh", refresh_with(&refresh))
        .await;
    assert_problem(reused, 401, "refresh token").await;
    assert_eq!(o.get(&access2, "/v1/users/me").await.0, 200);

    // Logout revokes the access token and its refresh token at once.
    let out = o
        .http
        .post(format!("{}/v1/auth/logout", o.gw))
        .bearer_auth(&access2)
        .json(&json!({"refresh_token": refresh2}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let after = o.get_url(&format!("{}/v1/users/me", o.gw), &access2).await;
    assert_problem(after, 401, "revoked").await;
    let refresh_after = o
        .post_json("/v1/auth/refresh", refresh_with(&refresh2))
        .await;
    assert_problem(refresh_after, 401, "refresh token").await;
    // Logout without a body works too.
    let (access3, _) = o.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(o.post_auth(&access3, "/v1/auth/logout").await.status(), 204);
    assert_eq!(o.get(&access3, "/v1/users/me").await.0, 401);

    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM auth_audit_log ORDER BY created_at")
            .fetch_all(&o.db)
            .await
            .unwrap();
    for e in [
        "user_created",
        "login_success",
        "login_failure",
        "refresh_success",
        "refresh_failure",
        "logout",
    ] {
        assert!(events.iter().any(|x| x == e), "audit lacks {e}: {events:?}");
    }

    let doc = o.openapi(&o.gw).await;
    // The documented paths are the ones the router serves and cynork calls.
    use cynode_contracts::routes::{HEALTHZ, user};
    for path in [
        user::AUTH_LOGIN,
        user::AUTH_REFRESH,
        user::AUTH_LOGOUT,
        user::USERS_ME,
        user::TASKS,
        user::TASK,
        user::TASK_RESULT,
        user::TASK_CANCEL,
        user::TASK_LOGS,
        HEALTHZ,
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["paths"][user::TASK_CANCEL]["post"].is_object());
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let o = Orchestrator::start(&[]).await;
    let me = format!("{}/v1/users/me", o.gw);
    assert_problem(o.fetch(&me).await, 401, "Bearer").await;
    assert_problem(
        o.http
            .get(&me)
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
        401,
        "Bearer",
    )
    .await;
    assert_problem(o.get_url(&me, "garbage").await, 401, "invalid").await;
    let forged = sign_token(
        b"forged-key-forged-key",
        TokenType::Access,
        Duration::from_secs(60),
        |c| {
            c.user_id = Some(uuid::Uuid::new_v4());
            c.sid = Some(uuid::Uuid::new_v4());
        },
    );
    assert_problem(o.get_url(&me, &forged).await, 401, "invalid").await;
    let (access, _) = o.login("admin", ADMIN_PASSWORD).await;
    assert_problem(o.get_url(&me, &expired(&access)).await, 401, "expired").await;
}

#[tokio::test]
async fn login_is_rate_limited_per_ip_and_per_handle() {
    let o = Orchestrator::start(&[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    let login = |handle: &str, password: &str| {
        o.post_json(
            "/v1/auth/login",
            json!({"handle": handle, "password": password}),
        )
    };
    // Oversized credentials are refused before the limiter, Argon2 and the audit log.
    let audit = o.count("auth_audit_log").await;
    for _ in 0..5 {
        assert_problem(
            login(&"h".repeat(257), "x").await,
            400,
            "handle must be at most 256 bytes",
        )
        .await;
        assert_problem(
            login("admin", &"p".repeat(1025)).await,
            400,
            "password must be at most 1024 bytes",
        )
        .await;
    }
    assert_eq!(o.count("auth_audit_log").await, audit);
    // The budget is untouched by them.
    for _ in 0..3 {
        assert_eq!(login("admin", "wrong").await.status(), 401);
    }
    let limited = login("admin", ADMIN_PASSWORD).await;
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=61).contains(&retry));
    assert_problem(limited, 429, "too many login attempts").await;
    // Another handle from the same IP is limited too (per-IP budget).
    assert_eq!(login("someone", "x").await.status(), 429);
}

#[tokio::test]
async fn bad_auth_bodies_are_400_naming_the_field() {
    let o = Orchestrator::start(&[]).await;
    let url = format!("{}/v1/auth/login", o.gw);
    for (body, needle) in [
        ("{", "malformed JSON"),
        (r#"{"handle":"admin"}"#, "password"),
        (r#"{"handle":"admin","password":"x","otp":1}"#, "otp"),
        (r#"{"handle":1,"password":"x"}"#, "invalid type"),
        (r#"{"handle":"","password":"x"}"#, "handle"),
    ] {
        assert_problem(o.post_raw(&url, None, body.into()).await, 400, needle).await;
    }
    let refresh = o.post_json("/v1/auth/refresh", json!({})).await;
    assert_problem(refresh, 400, "refresh_token").await;
    let (access, _) = o.login("admin", ADMIN_PASSWORD).await;
    let logout = o
        .http
        .post(format!("{}/v1/auth/logout", o.gw))
        .bearer_auth(&access)
        .body("{\"refresh\":1}")
        .send()
        .await
        .unwrap();
    assert_problem(logout, 400, "refresh").await;
    assert_eq!(
        o.get(&access, "/v1/users/me").await.0,
        200,
        "a rejected logout changes nothing"
    );
    let unknown = o.fetch(&format!("{}/v1/nope", o.gw)).await;
    assert_problem(unknown, 404, "/v1/nope").await;
}

#[tokio::test]
async fn tasks_are_created_listed_named_and_owned() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    o.create_user("bob", "correct-horse-b-0").await;
    let (bob, _) = o.login("bob", "correct-horse-b-0").await;

    let sql = "'; DROP TABLE tasks; -- \" \\ %_";
    let t1 = o.create_task(&admin, json!({"prompt": format!("echo {sql}"), "input_mode": "script", "task_name": sql, "attachments": ["a.txt", "dir/b.md"]})).await;
    assert_eq!(t1["status"], "queued");
    assert_eq!(t1["task_name"], sql, "stored verbatim");
    assert_eq!(t1["prompt"], format!("echo {sql}"));
    assert_eq!(t1["input_mode"], "script");
    assert_eq!(t1["attachments"], json!(["a.txt", "dir/b.md"]));
    let t2 = o
        .create_task(
            &admin,
            json!({"prompt": "echo 2", "input_mode": "commands", "task_name": sql}),
        )
        .await;
    assert_eq!(t2["task_name"], format!("{sql}-2"));
    let t3 = o
        .create_task(
            &admin,
            json!({"prompt": "echo 3", "input_mode": "script", "task_name": sql}),
        )
        .await;
    assert_eq!(t3["task_name"], format!("{sql}-3"));
    let unnamed = o
        .create_task(&admin, json!({"prompt": "echo 4", "input_mode": "script"}))
        .await;
    assert_eq!(unnamed["task_name"], "task");
    // The job carries the text as `sh -c`, nothing else.
    let payload: Value = sqlx::query_scalar("SELECT payload FROM jobs WHERE task_id = $1::uuid")
        .bind(t1["id"].as_str().unwrap())
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(
        payload["command"],
        json!(["sh", "-c", format!("echo {sql}")])
    );

    // Get by id and by name (URL-encoded).
    let id = t1["id"].as_str().unwrap();
    assert_eq!(o.get(&admin, &format!("/v1/tasks/{id}")).await.1["id"], id);
    let (_, by_name) = o
        .get(&admin, &format!("/v1/tasks/{}", urlencode(sql)))
        .await;
    assert_eq!(by_name["id"], id);

    // Another user sees none of it: 404, the same as a task that does not exist.
    for path in [
        format!("/v1/tasks/{id}"),
        format!("/v1/tasks/{id}/result"),
        format!("/v1/tasks/{id}/logs"),
        format!("/v1/tasks/{id}/logs?follow=true"),
    ] {
        let (status, body) = o.get(&bob, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_problem(o.cancel(&bob, id).await, 404, "does not exist").await;
    let (_, bobs) = o.get(&bob, "/v1/tasks").await;
    assert_eq!(bobs["tasks"], json!([]));

    // A prompt task is never run as shell: without a Project Manager model it fails with the
    // reason, and no job reaches a worker.
    let prompt = o
        .create_task(&bob, json!({"prompt": "rm -rf / please"}))
        .await;
    let prompt_id = prompt["id"].as_str().unwrap();
    let prompt = o.wait_finished(&bob, prompt_id).await;
    assert_eq!(prompt["status"], "failed", "{prompt}");
    assert!(
        prompt["summary"]
            .as_str()
            .unwrap()
            .contains("project manager model is not available"),
        "{prompt}"
    );
    let (_, result) = o.get(&bob, &format!("/v1/tasks/{prompt_id}/result")).await;
    assert_eq!(result["jobs"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["jobs"][0]["status"], "failed");
    assert!(
        result["jobs"][0]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("project manager model is not available")
    );

    // Pagination with the filters applied first (the admin's own: a system admin sees every
    // project's tasks).
    let (_, page1) = o.get(&admin, "/v1/tasks?limit=2&mine=true").await;
    assert_eq!(page1["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(page1["next_offset"], 2);
    let (_, page2) = o
        .get(
            &admin,
            &format!(
                "/v1/tasks?limit=2&mine=true&cursor={}",
                page1["next_cursor"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(page2["tasks"].as_array().unwrap().len(), 2);
    assert!(page2.get("next_offset").is_none());
    let mut seen: Vec<Value> = page1["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["tasks"].as_array().unwrap())
        .map(|t| t["id"].clone())
        .collect();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    let t2_id = t2["id"].as_str().unwrap();
    o.cancel(&admin, t2_id).await;
    let (_, canceled) = o.get(&admin, "/v1/tasks?status=canceled&limit=1").await;
    assert_eq!(canceled["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(canceled["tasks"][0]["id"], t2["id"]);
    assert!(canceled.get("next_offset").is_none());

    // Cancel: a queued task cancels with its job; a finished one is a conflict.
    let job: String = sqlx::query_scalar("SELECT status FROM jobs WHERE task_id = $1::uuid")
        .bind(t2_id)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(job, "canceled");
    assert_problem(o.cancel(&admin, t2_id).await, 409, "already canceled").await;

    // The schema is intact after all those metacharacters.
    assert_eq!(o.count("tasks").await, 5);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn bad_task_input_is_400_and_writes_nothing() {
    let o = Orchestrator::start(&[("MAX_REQUEST_BODY_MB", "1")]).await;
    let admin = o.admin_token().await;
    let url = format!("{}/v1/tasks", o.gw);
    let post = |body: String| o.post_raw(&url, Some(&admin), body);
    let cases: Vec<(String, &str)> = vec![
        ("{\"prompt\":".into(), "malformed JSON"),
        ("{}".into(), "prompt"),
        (json!({"prompt": 5}).to_string(), "invalid type"),
        (json!({"prompt": "x", "mode": "script"}).to_string(), "mode"),
        (
            json!({"prompt": "x", "input_mode": "python"}).to_string(),
            "python",
        ),
        (
            json!({"prompt": "  "}).to_string(),
            "prompt must not be empty",
        ),
        (
            json!({"prompt": "a\u{0}b", "input_mode": "script"}).to_string(),
            "NUL",
        ),
        (
            json!({"prompt": "x", "input_mode": "script", "task_name": ""}).to_string(),
            "task_name",
        ),
        (
            json!({"prompt": "x", "input_mode": "script", "attachments": [""]}).to_string(),
            "attachments[0]",
        ),
        (
            json!({"prompt": "x", "input_mode": "script", "attachments": ["a", "a"]}).to_string(),
            "attachments[1]",
        ),
        (
            json!({"prompt": "x", "input_mode": "script", "attachments": "a"}).to_string(),
            "invalid type",
        ),
        (
            json!({"prompt": "x", "input_mode": "script", "project_id": "nope"}).to_string(),
            "UUID",
        ),
    ];
    for (body, needle) in cases {
        assert_problem(post(body.clone()).await, 400, needle).await;
    }
    // An unknown project is not a malformed request: it does not exist.
    let unknown_project =
        json!({"prompt": "x", "input_mode": "script", "project_id": uuid::Uuid::new_v4()})
            .to_string();
    assert_problem(post(unknown_project).await, 404, "does not exist").await;
    let big = json!({"prompt": "x".repeat(2 * 1024 * 1024), "input_mode": "script"}).to_string();
    assert_problem(post(big).await, 413, "exceeds").await;
    for (query, needle) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("status=done", "done"),
        ("colour=red", "colour"),
    ] {
        let resp = o.get_url(&format!("{url}?{query}"), &admin).await;
        assert_problem(resp, 400, needle).await;
    }
    let t = o
        .create_task(&admin, json!({"prompt": "echo", "input_mode": "script"}))
        .await;
    let logs_url = format!("{url}/{}/logs?stream=both", t["id"].as_str().unwrap());
    assert_problem(o.get_url(&logs_url, &admin).await, 400, "both").await;
    let logs_url = format!("{url}/{}/logs?follow=maybe", t["id"].as_str().unwrap());
    assert_problem(o.get_url(&logs_url, &admin).await, 400, "follow").await;
    let missing = o
        .get_url(&format!("{url}/{}", uuid::Uuid::new_v4()), &admin)
        .await;
    assert_problem(missing, 404, "does not exist").await;
    assert_eq!(o.count("tasks").await, 1);
    assert_eq!(o.count("jobs").await, 1);
    assert_eq!(o.count("task_artifacts").await, 0);
}

#[tokio::test]
async fn nul_characters_are_400_and_write_nothing() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let audit = o.count("auth_audit_log").await;
    let login = o
        .post_json(
            "/v1/auth/login",
            json!({"handle": "ad\u{0}min", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_problem(login, 400, "must not contain NUL characters").await;
    assert_eq!(o.count("auth_audit_log").await, audit);
    assert_eq!(o.count("refresh_sessions").await, 1);
    for path in ["a%00b", "a%00b/result", "a%00b/logs"] {
        let resp = o
            .get_url(&format!("{}/v1/tasks/{path}", o.gw), &admin)
            .await;
        assert_problem(resp, 400, "must not contain NUL characters").await;
    }
    assert_problem(
        o.cancel(&admin, "a%00b").await,
        400,
        "must not contain NUL characters",
    )
    .await;
    assert_eq!(o.count("tasks").await, 0);
}

#[tokio::test]
async fn a_huge_numeric_suffix_does_not_break_duplicate_names() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let named = |name: &str| json!({"prompt": "x", "task_name": name});
    for name in ["t", "t-18446744073709551615", "t-4294967295"] {
        assert_eq!(o.create_task(&admin, named(name)).await["task_name"], name);
    }
    // A suffix past u32 is not one of ours; u32::MAX has no successor, so the smallest free N
    // is used. Nothing overflows.
    assert_eq!(o.create_task(&admin, named("t")).await["task_name"], "t-2");
    assert_eq!(o.create_task(&admin, named("t")).await["task_name"], "t-3");
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_bad_paths_are_problems() {
    let o = Orchestrator::start(&[]).await;
    let (access, _) = o.login("admin", ADMIN_PASSWORD).await;
    let me = format!("{}/v1/users/me", o.gw);
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let resp = o
            .http
            .get(&me)
            .header("authorization", format!("{scheme} {access}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "scheme {scheme}");
    }
    assert_problem(
        o.get_url(&format!("{}/v1/tasks/%FF", o.gw), &access).await,
        400,
        "request path",
    )
    .await;
    assert_problem(o.cancel(&access, "%FF").await, 400, "request path").await;
}

/// The parameter `name` of `method path` in the OpenAPI document.
fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

/// The first value of `key` anywhere in `schema` (a nullable schema wraps the real one).
fn find<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    match schema {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

/// A fuzzer driven by `/openapi.json` found inputs the document allowed and the server refused.
/// The document now states each constraint, and the server refuses exactly what it excludes.
#[tokio::test]
async fn openapi_states_the_constraints_the_server_enforces() {
    let o = Orchestrator::start(&[]).await;
    let doc = o.openapi(&o.gw).await;
    let schemas = &doc["components"]["schemas"];
    let property = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
    // A job's setbacks are part of the documented result.
    assert_eq!(
        property("JobResult", "setbacks")["items"]["$ref"],
        "#/components/schemas/JobSetback"
    );
    assert!(
        schemas["JobSetback"]["properties"]["why"].is_object(),
        "{doc}"
    );

    for (schema, field) in [
        ("LoginRequest", "handle"),
        ("LoginRequest", "password"),
        ("RefreshRequest", "refresh_token"),
        ("CreateTaskRequest", "prompt"),
    ] {
        assert_eq!(
            property(schema, field)["minLength"],
            1,
            "{schema}.{field}: {doc}"
        );
    }
    for (schema, field) in [("LoginRequest", "handle"), ("CreateTaskRequest", "prompt")] {
        let pattern = property(schema, field)["pattern"].clone();
        assert!(
            pattern.as_str().unwrap().contains(r"\s"),
            "{schema}.{field} refuses blanks: {pattern}"
        );
    }
    let name = property("CreateTaskRequest", "task_name");
    assert_eq!(find(&name, "maxLength"), Some(&json!(200)), "{name}");
    let attachments = property("CreateTaskRequest", "attachments");
    assert_eq!(attachments["items"]["minLength"], 1, "{attachments}");
    assert_eq!(attachments["items"]["maxLength"], 2048);
    assert_eq!(attachments["maxItems"], 16);
    assert_eq!(attachments["uniqueItems"], true);
    let sba = property("CreateTaskRequest", "use_sba");
    assert_eq!(find(&sba, "enum"), Some(&json!([false])), "{sba}");
    assert_eq!(schemas["CreateTaskRequest"]["additionalProperties"], false);

    let limit = &parameter(&doc, "get", "/v1/tasks", "limit")["schema"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(1), &json!(200)),
        "{limit}"
    );
    let status = parameter(&doc, "get", "/v1/tasks", "status");
    assert_eq!(
        find(status, "enum"),
        Some(&json!([
            "queued",
            "running",
            "completed",
            "failed",
            "canceled",
            "superseded"
        ])),
        "{status}"
    );
    let stream = parameter(&doc, "get", "/v1/tasks/{id}/logs", "stream");
    assert_eq!(
        find(stream, "enum"),
        Some(&json!(["stdout", "stderr", "all"])),
        "{stream}"
    );
    let follow = parameter(&doc, "get", "/v1/tasks/{id}/logs", "follow");
    assert_eq!(find(follow, "type"), Some(&json!("boolean")), "{follow}");
    let logs_ok = &doc["paths"]["/v1/tasks/{id}/logs"]["get"]["responses"]["200"]["content"];
    assert!(logs_ok["application/json"].is_object(), "{logs_ok}");
    assert!(logs_ok["text/event-stream"].is_object(), "{logs_ok}");
    for schema in ["TaskLogs", "TaskLogLine", "TaskLogEnd"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} is documented"
        );
    }

    // The server refuses what the document excludes...
    for body in [
        json!({"handle": "", "password": "x"}),
        json!({"handle": " ", "password": "x"}),
    ] {
        assert_eq!(o.post_json("/v1/auth/login", body).await.status(), 400);
    }
    assert_eq!(
        o.post_json("/v1/auth/refresh", json!({"refresh_token": ""}))
            .await
            .status(),
        400
    );
    let admin = o.admin_token().await;
    let create = |body: Value| {
        o.http
            .post(format!("{}/v1/tasks", o.gw))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    for body in [
        json!({"prompt": ""}),
        json!({"prompt": " \n"}),
        json!({"prompt": "x", "attachments": [""]}),
        json!({"prompt": "x", "attachments": ["a", "a"]}),
        json!({"prompt": "x", "use_sba": true}),
        json!({"prompt": "x", "task_name": "a".repeat(201)}),
    ] {
        assert_eq!(create(body.clone()).await.unwrap().status(), 400, "{body}");
    }
    for query in ["limit=0", "limit=201", "status=", "status=done", "cursor=x"] {
        assert_eq!(
            o.get(&admin, &format!("/v1/tasks?{query}")).await.0,
            400,
            "{query}"
        );
    }
    let id = o
        .create_task(&admin, json!({"prompt": "echo x", "input_mode": "script"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for query in [
        "stream=",
        "stream=both",
        "follow=",
        "follow=maybe",
        "follow=1",
    ] {
        let (status, _) = o.get(&admin, &format!("/v1/tasks/{id}/logs?{query}")).await;
        assert_eq!(status, 400, "{query}");
    }
    // ...and takes what it allows at the edges.
    for body in [
        json!({"prompt": "x", "use_sba": false, "attachments": ["a", "b".repeat(2048)]}),
        json!({"prompt": "x", "task_name": "a".repeat(200)}),
    ] {
        assert_eq!(create(body.clone()).await.unwrap().status(), 201, "{body}");
    }
    for query in ["limit=1", "limit=200", "status=queued", "cursor=0"] {
        assert_eq!(
            o.get(&admin, &format!("/v1/tasks?{query}")).await.0,
            200,
            "{query}"
        );
    }
    for query in [
        "stream=stdout",
        "stream=stderr",
        "stream=all",
        "follow=false",
    ] {
        let (status, _) = o.get(&admin, &format!("/v1/tasks/{id}/logs?{query}")).await;
        assert_eq!(status, 200, "{query}");
    }
}
