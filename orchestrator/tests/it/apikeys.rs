//! Personal API keys and token usage against a real PostgreSQL: keys work wherever an access
//! JWT does, until revoked or expired; they are stored hashed and audited; usage is reported per
//! model and per key.

use crate::common;

use common::*;
use cynode_orchestrator::auth::Principal;
use cynode_orchestrator::usage::{self, ModelCall};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

impl Orchestrator {
    async fn revoke_key(&self, token: &str, id: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/v1/users/me/api-keys/{id}", self.gw))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn keys(&self, token: &str) -> Vec<Value> {
        let (status, list) = self.get(token, "/v1/users/me/api-keys").await;
        assert_eq!(status, 200, "{list}");
        list["api_keys"].as_array().unwrap().clone()
    }

    async fn audit_events(&self, key_id: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT event_type FROM auth_audit_log WHERE api_key_id = $1::uuid ORDER BY created_at",
        )
        .bind(key_id)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }

    async fn last_used(&self, key_id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1::uuid")
            .bind(key_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_key_works_like_an_access_token_until_revoked() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;

    let resp = o
        .create_key(&admin, json!({"name": "open-webui", "expires_in_days": 30}))
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.headers().get("cache-control").unwrap(),
        "no-store",
        "the key must not be cached"
    );
    let created: Value = resp.json().await.unwrap();
    let key = s(&created["key"]);
    let id = s(&created["id"]);
    assert!(key.starts_with("cyn_") && key.len() == 68, "{key}");
    assert!(key[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert!(key.ends_with(created["last_four"].as_str().unwrap()));
    let created_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created["created_at"].clone()).unwrap();
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created["expires_at"].clone()).unwrap();
    assert_eq!(expires_at - created_at, chrono::Duration::days(30));

    // Stored as its SHA-256 only; the key appears in no row of any column we write.
    let hash: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(hash, Sha256::digest(key.as_bytes()).to_vec());
    for table in ["api_keys", "auth_audit_log"] {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0"
        ))
        .bind(&key[4..])
        .fetch_one(&o.db)
        .await
        .unwrap();
        assert_eq!(hits, 0, "{table} holds the key");
    }

    // Every user route takes it: who am I, tasks, the key list itself, usage.
    assert_eq!(o.last_used(&id).await, None);
    let (status, me) = o.get(&key, "/v1/users/me").await;
    assert_eq!((status, me["handle"].as_str()), (200, Some("admin")));
    let task = o.create_script_task(&key, "echo via key").await;
    let (status, got) = o.get(&key, &format!("/v1/tasks/{task}")).await;
    assert_eq!((status, got["id"].as_str()), (200, Some(task.as_str())));
    let (status, list) = o.get(&key, "/v1/tasks").await;
    assert_eq!(status, 200);
    assert_eq!(list["tasks"][0]["id"], json!(task));
    assert_eq!(o.get(&key, "/v1/users/me/usage").await.0, 200);
    let listed = o.keys(&key).await;
    assert_eq!(listed.len(), 1);
    let entry = &listed[0];
    assert_eq!(entry["id"], json!(id));
    assert_eq!(entry["name"], "open-webui");
    assert_eq!(entry["status"], "active");
    assert_eq!(entry["prefix"], created["prefix"]);
    assert_eq!(entry["last_four"], created["last_four"]);
    assert!(entry["last_used_at"].is_string(), "{entry}");
    assert!(entry.get("revoked_at").is_none());
    assert!(
        !entry.to_string().contains(&key[4..]),
        "the list shows the key"
    );

    // last_used_at moves at most once a minute, and only the first use is audited.
    let first = o.last_used(&id).await.expect("used");
    assert_eq!(o.get(&key, "/v1/users/me").await.0, 200);
    assert_eq!(o.last_used(&id).await, Some(first));
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&o.db)
    .await
    .unwrap();
    let stale = o.last_used(&id).await.unwrap();
    assert_eq!(o.get(&key, "/v1/users/me").await.0, 200);
    assert!(o.last_used(&id).await.unwrap() > stale);
    assert_eq!(
        o.audit_events(&id).await,
        ["api_key_created", "api_key_first_use"]
    );

    // A key cannot mint keys, and logging out with one says what to do instead.
    assert_problem(
        o.create_key(&key, json!({"name": "child"})).await,
        403,
        "log in",
    )
    .await;
    assert_problem(
        o.post_auth(&key, "/v1/auth/logout").await,
        400,
        "DELETE /v1/users/me/api-keys",
    )
    .await;
    assert_eq!(o.get(&key, "/v1/users/me").await.0, 200);

    // Another user sees none of it and cannot revoke it.
    o.create_user("bob", "correct-horse-b-0").await;
    let (bob, _) = o.login("bob", "correct-horse-b-0").await;
    assert!(o.keys(&bob).await.is_empty());
    assert_problem(o.revoke_key(&bob, &id).await, 404, "no API key").await;
    assert_problem(
        o.get_url(&format!("{}/v1/tasks/{task}", o.gw), &bob).await,
        404,
        "",
    )
    .await;
    for unknown in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        assert_problem(o.revoke_key(&admin, &unknown).await, 404, "no API key").await;
    }

    // Revocation takes effect at once; revoking again is harmless and not audited twice.
    assert_eq!(o.revoke_key(&admin, &id).await.status(), 204);
    let me_url = format!("{}/v1/users/me", o.gw);
    assert_problem(o.get_url(&me_url, &key).await, 401, "revoked").await;
    assert_problem(
        o.get_url(&format!("{}/v1/tasks", o.gw), &key).await,
        401,
        "revoked",
    )
    .await;
    assert_eq!(o.revoke_key(&admin, &id).await.status(), 204);
    let listed = o.keys(&admin).await;
    assert_eq!(listed[0]["status"], "revoked");
    assert!(listed[0]["revoked_at"].is_string());
    assert_eq!(
        o.audit_events(&id).await,
        ["api_key_created", "api_key_first_use", "api_key_revoked"]
    );

    // An expired key, a malformed one, an unknown one and a disabled user's key: 401.
    let other = o.new_key(&admin, "short-lived").await;
    assert_eq!(o.get(&s(&other["key"]), "/v1/users/me").await.0, 200);
    sqlx::query(
        "UPDATE api_keys SET created_at = now() - interval '2 days',
                expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(s(&other["id"]))
    .execute(&o.db)
    .await
    .unwrap();
    assert_problem(o.get_url(&me_url, &s(&other["key"])).await, 401, "expired").await;
    let listed = o.keys(&admin).await;
    let entry = listed.iter().find(|k| k["id"] == other["id"]).unwrap();
    assert_eq!(entry["status"], "expired");
    let unknown = format!("cyn_{}", "ab".repeat(32));
    for (bad, needle) in [("cyn_short", "invalid"), (unknown.as_str(), "invalid")] {
        let body = assert_problem(o.get_url(&me_url, bad).await, 401, needle).await;
        assert!(!body.to_string().contains(bad), "the error repeats the key");
    }
    let bobs = o.new_key(&bob, "bob's").await;
    assert_eq!(
        o.get(&s(&bobs["key"]), "/v1/users/me").await.1["handle"],
        "bob"
    );
    sqlx::query("UPDATE users SET is_active = false WHERE handle = 'bob'")
        .execute(&o.db)
        .await
        .unwrap();
    assert_problem(o.get_url(&me_url, &s(&bobs["key"])).await, 401, "disabled").await;
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_keys_are_limited() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let url = format!("{}/v1/users/me/api-keys", o.gw);
    for (body, needle) in [
        (r#"{}"#.to_owned(), "name"),
        (r#"{"name":""}"#.to_owned(), "name"),
        (r#"{"name":"  "}"#.to_owned(), "name"),
        (format!(r#"{{"name":"{}"}}"#, "a".repeat(129)), "name"),
        (r#"{"name":"a\nb"}"#.to_owned(), "name"),
        (r#"{"name":"a\u0000b"}"#.to_owned(), "name"),
        (
            r#"{"name":"x","expires_in_days":0}"#.to_owned(),
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":-1}"#.to_owned(),
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":3651}"#.to_owned(),
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":1.5}"#.to_owned(),
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":"7"}"#.to_owned(),
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":1e300}"#.to_owned(),
            "expires_in_days",
        ),
        (r#"{"name":"x","scope":"all"}"#.to_owned(), "scope"),
    ] {
        let resp = o.post_raw(&url, Some(&admin), body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        assert_problem(resp, 400, needle).await;
    }
    assert_eq!(o.count("api_keys").await, 0);

    // The document states the same constraints.
    let doc = o.openapi(&o.gw).await;
    let schema = &doc["components"]["schemas"]["CreateApiKeyRequest"];
    assert_eq!(schema["properties"]["name"]["minLength"], 1, "{schema}");
    assert_eq!(schema["properties"]["name"]["maxLength"], 128, "{schema}");
    assert!(
        schema["properties"]["name"]["pattern"]
            .as_str()
            .unwrap()
            .contains(r"\s")
    );
    let days = &schema["properties"]["expires_in_days"];
    assert_eq!(
        (&days["minimum"], &days["maximum"]),
        (&json!(1), &json!(3650)),
        "{schema}"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["name"]));
    for (method, path) in [
        ("post", "/v1/users/me/api-keys"),
        ("get", "/v1/users/me/api-keys"),
        ("delete", "/v1/users/me/api-keys/{id}"),
        ("get", "/v1/users/me/usage"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let params = doc["paths"]["/v1/users/me/usage"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for name in ["since", "until"] {
        let p = params.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(p["in"], "query");
        assert!(p["schema"].to_string().contains("date-time"), "{p}");
    }
    for (schema, fields) in [
        (
            "UsageReport",
            &["total", "by_model", "by_api_key", "by_day"][..],
        ),
        (
            "ModelUsage",
            &["model", "#/components/schemas/UsageTotals"][..],
        ),
        (
            "ApiKeyUsage",
            &["api_key_id", "name", "#/components/schemas/UsageTotals"][..],
        ),
        (
            "UsageTotals",
            &[
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
            ][..],
        ),
        (
            "ApiKeyInfo",
            &["prefix", "last_four", "status", "last_used_at"][..],
        ),
    ] {
        let text = doc["components"]["schemas"][schema].to_string();
        for field in fields {
            assert!(
                text.contains(&format!("\"{field}\"")),
                "{schema}.{field}: {text}"
            );
        }
    }
    assert!(
        !doc["components"]["schemas"]["ApiKeyInfo"]["properties"]
            .as_object()
            .unwrap()
            .contains_key("key"),
        "the list never carries the key"
    );
    assert!(
        doc["components"]["securitySchemes"]["bearer"]["description"]
            .as_str()
            .unwrap()
            .contains("API key")
    );

    // The edges are accepted.
    for body in [
        json!({"name": "é".repeat(128), "expires_in_days": 1}),
        json!({"name": "x", "expires_in_days": 3650}),
        json!({"name": "x", "expires_in_days": null}),
    ] {
        assert_eq!(
            o.create_key(&admin, body.clone()).await.status(),
            201,
            "{body}"
        );
    }

    // At most 50 active keys; revoked and expired ones do not count.
    for i in 3..50 {
        o.new_key(&admin, &format!("k{i}")).await;
    }
    assert_problem(
        o.create_key(&admin, json!({"name": "one too many"})).await,
        409,
        "50",
    )
    .await;
    let first = s(&o.keys(&admin).await[0]["id"]);
    assert_eq!(o.revoke_key(&admin, &first).await.status(), 204);
    o.new_key(&admin, "after revoking").await;
    sqlx::query(
        "UPDATE api_keys SET created_at = now() - interval '2 days',
                expires_at = now() - interval '1 day' WHERE name = 'k3'",
    )
    .execute(&o.db)
    .await
    .unwrap();
    o.new_key(&admin, "after expiry").await;
    assert_eq!(
        o.create_key(&admin, json!({"name": "again too many"}))
            .await
            .status(),
        409
    );
}

#[tokio::test]
async fn usage_is_totalled_per_model_and_key() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let me = o.get(&admin, "/v1/users/me").await.1;
    let user_id: Uuid = s(&me["id"]).parse().unwrap();
    let a = o.new_key(&admin, "key a").await;
    let b = o.new_key(&admin, "key b").await;
    let a_id: Uuid = s(&a["id"]).parse().unwrap();
    let b_id: Uuid = s(&b["id"]).parse().unwrap();
    let task: Uuid = o
        .create_script_task(&admin, "echo x")
        .await
        .parse()
        .unwrap();
    o.create_user("bob", "correct-horse-b-0").await;
    let (bob, _) = o.login("bob", "correct-horse-b-0").await;
    let bob_id: Uuid = s(&o.get(&bob, "/v1/users/me").await.1["id"])
        .parse()
        .unwrap();

    let session = Principal {
        user_id,
        api_key_id: None,
    };
    let via = |key| Principal {
        user_id,
        api_key_id: Some(key),
    };
    let call = |model, task_id, prompt_tokens, completion_tokens| ModelCall {
        task_id,
        model,
        prompt_tokens,
        completion_tokens,
    };
    for (principal, model_call) in [
        (session, call("m1", Some(task), 10, 5)),
        (via(a_id), call("m1", None, 1, 2)),
        (via(a_id), call("m2", Some(task), 100, 50)),
        (via(b_id), call("m2", None, 7, 3)),
        (
            Principal {
                user_id: bob_id,
                api_key_id: None,
            },
            call("m1", None, 1000, 1000),
        ),
    ] {
        usage::record(&o.db, principal, &model_call).await.unwrap();
    }
    // A call without a model name is a bug of the caller, not a row.
    assert!(
        usage::record(&o.db, session, &call(" ", None, 1, 1))
            .await
            .is_err()
    );
    let with_task: i64 = sqlx::query_scalar("SELECT count(*) FROM token_usage WHERE task_id = $1")
        .bind(task)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(with_task, 2);

    let totals = |requests: i64, prompt: i64, completion: i64| {
        json!({"requests": requests, "prompt_tokens": prompt,
               "completion_tokens": completion, "total_tokens": prompt + completion})
    };
    let merge = |mut base: Value, extra: Value| {
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    };
    // Days are UTC calendar days: a call at midnight counts for the day it starts.
    sqlx::query("UPDATE token_usage SET created_at = '2026-03-01T12:00:00Z' WHERE user_id = $1")
        .bind(user_id)
        .execute(&o.db)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE token_usage SET created_at = '2026-03-02T00:00:00Z'
         WHERE model = 'm2' AND api_key_id = $1",
    )
    .bind(a_id)
    .execute(&o.db)
    .await
    .unwrap();
    let expected = json!({
        "total": totals(4, 118, 60),
        "by_model": [
            merge(json!({"model": "m1"}), totals(2, 11, 7)),
            merge(json!({"model": "m2"}), totals(2, 107, 53)),
        ],
        "by_api_key": [
            totals(1, 10, 5),
            merge(json!({"api_key_id": a_id, "name": "key a"}), totals(2, 101, 52)),
            merge(json!({"api_key_id": b_id, "name": "key b"}), totals(1, 7, 3)),
        ],
        "by_day": [
            merge(json!({"day": "2026-03-01"}), totals(3, 18, 10)),
            merge(json!({"day": "2026-03-02"}), totals(1, 100, 50)),
        ],
    });
    let (status, report) = o.get(&admin, "/v1/users/me/usage").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report, expected);
    // The same through an API key of the same user; bob sees only his own.
    assert_eq!(o.get(&s(&a["key"]), "/v1/users/me/usage").await.1, expected);
    let (_, bobs) = o.get(&bob, "/v1/users/me/usage").await;
    assert_eq!(bobs["total"], totals(1, 1000, 1000));

    // since is inclusive, until exclusive.
    sqlx::query(
        "UPDATE token_usage SET created_at = '2020-06-01T00:00:00Z'
         WHERE model = 'm2' AND api_key_id = $1",
    )
    .bind(b_id)
    .execute(&o.db)
    .await
    .unwrap();
    let (status, recent) = o
        .get(&admin, "/v1/users/me/usage?since=2021-01-01T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{recent}");
    assert_eq!(recent["since"], "2021-01-01T00:00:00Z");
    assert_eq!(recent["total"], totals(3, 111, 57));
    assert_eq!(recent["by_api_key"].as_array().unwrap().len(), 2);
    let (_, old) = o
        .get(
            &admin,
            "/v1/users/me/usage?since=2020-06-01T00:00:00Z&until=2020-06-01T00:00:01%2B00:00",
        )
        .await;
    assert_eq!(old["total"], totals(1, 7, 3), "{old}");
    assert_eq!(old["by_model"][0]["model"], "m2");
    assert_eq!(
        old["by_day"],
        json!([merge(json!({"day": "2020-06-01"}), totals(1, 7, 3))])
    );
    let (_, none) = o
        .get(&admin, "/v1/users/me/usage?until=2020-06-01T00:00:00Z")
        .await;
    assert_eq!(
        none,
        json!({"until": "2020-06-01T00:00:00Z", "total": totals(0, 0, 0),
               "by_model": [], "by_api_key": [], "by_day": []})
    );

    for (query, needle) in [
        ("since=yesterday", "since"),
        ("since=", "since"),
        ("until=2021-13-01T00:00:00Z", "until"),
        ("since=2021-01-01T00:00:00", "since"),
        (
            "since=2021-01-02T00:00:00Z&until=2021-01-01T00:00:00Z",
            "until",
        ),
        (
            "since=2021-01-01T00:00:00Z&until=2021-01-01T00:00:00Z",
            "until",
        ),
        ("model=m1", "model"),
    ] {
        let resp = o
            .get_url(&format!("{}/v1/users/me/usage?{query}", o.gw), &admin)
            .await;
        assert_problem(resp, 400, needle).await;
    }
    assert_eq!(o.get("nope", "/v1/users/me/usage").await.0, 401);
}
