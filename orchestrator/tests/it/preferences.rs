//! Preferences against a real PostgreSQL: CRUD with versions and audit rows, optimistic
//! concurrency (a stale `expected_version` is 409 and changes nothing), who may read and write
//! which scope, and the effective view's precedence, through the gateway and the store API the
//! MCP tools call.

use crate::common;

use common::*;
use cynode_orchestrator::preferences::{self, PrefError, Scope, ValueType};
use serde_json::{Value, json};
use uuid::Uuid;

impl Orchestrator {
    async fn put_pref(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .put(format!("{}/v1/prefs/{path}", self.gw))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn delete_pref(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/v1/prefs/{path}", self.gw))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn user_id(&self, handle: &str) -> Uuid {
        sqlx::query_scalar("SELECT id FROM users WHERE handle = $1")
            .bind(handle)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// A project alice and bob are members of.
    async fn project(&self, slug: &str) -> Uuid {
        self.create_project(slug, &["alice", "bob"]).await
    }

    /// Two users besides the admin: (admin, alice, bob) tokens.
    async fn three_users(&self) -> (String, String, String) {
        self.create_user("alice", "correct-horse-a-1").await;
        self.create_user("bob", "correct-horse-b-0").await;
        (
            self.admin_token().await,
            self.login("alice", "correct-horse-a-1").await.0,
            self.login("bob", "correct-horse-b-0").await.0,
        )
    }
}

#[tokio::test]
async fn entries_are_versioned_audited_and_guarded_by_expected_version() {
    let o = Orchestrator::start(&[]).await;
    let (_, alice, _) = o.three_users().await;
    let alice_id = o.user_id("alice").await;

    let resp = o
        .put_pref(
            &alice,
            "user/output.summary_style",
            json!({"value": "concise", "reason": "shorter please"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["version"], 1);
    assert_eq!(created["value_type"], "string");
    assert_eq!(created["scope_type"], "user");
    assert_eq!(
        created["scope_id"],
        json!(alice_id),
        "user scope defaults to the caller"
    );
    assert_eq!(created["updated_by"], json!(alice_id));

    let (status, got) = o.get(&alice, "/v1/prefs/user/output.summary_style").await;
    assert_eq!(status, 200);
    assert_eq!(got["value"], "concise");

    let resp = o
        .put_pref(
            &alice,
            "user/output.summary_style",
            json!({"value": "detailed", "expected_version": 1}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(
        (updated["version"].clone(), updated["value"].clone()),
        (json!(2), json!("detailed"))
    );

    // A writer that read version 1 loses, and the entry stays as the winner left it.
    let resp = o
        .put_pref(
            &alice,
            "user/output.summary_style",
            json!({"value": "stale", "expected_version": 1}),
        )
        .await;
    assert_problem(resp, 409, "version 2").await;
    let resp = o
        .delete_pref(&alice, "user/output.summary_style?expected_version=1")
        .await;
    assert_problem(resp, 409, "expected_version 1").await;
    let (_, got) = o.get(&alice, "/v1/prefs/user/output.summary_style").await;
    assert_eq!(
        (got["version"].clone(), got["value"].clone()),
        (json!(2), json!("detailed"))
    );

    // A new type needs a value of that type.
    let resp = o
        .put_pref(
            &alice,
            "user/output.summary_style",
            json!({"value": 3, "value_type": "string"}),
        )
        .await;
    assert_problem(resp, 400, "value_type string").await;
    let resp = o
        .put_pref(
            &alice,
            "user/output.summary_style",
            json!({"value": ["a"], "value_type": "array"}),
        )
        .await;
    assert_eq!(resp.status(), 200);

    let (status, page) = o.get(&alice, "/v1/prefs?scope_type=user").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    assert!(page.get("next_cursor").is_none(), "{page}");

    let resp = o
        .delete_pref(
            &alice,
            "user/output.summary_style?expected_version=3&reason=done",
        )
        .await;
    assert_eq!(resp.status(), 204);
    let (status, _) = o.get(&alice, "/v1/prefs/user/output.summary_style").await;
    assert_eq!(status, 404);

    /// old value, new value, changed by, reason
    type AuditRow = (Option<Value>, Option<Value>, Option<Uuid>, Option<String>);
    let audit: Vec<AuditRow> = sqlx::query_as(
        "SELECT old_value, new_value, changed_by, reason FROM preference_audit_log
         WHERE entry_id = $1::uuid ORDER BY changed_at, id",
    )
    .bind(created["id"].as_str().unwrap())
    .fetch_all(&o.db)
    .await
    .unwrap();
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert_eq!(
        audit[0],
        (
            None,
            Some(json!("concise")),
            Some(alice_id),
            Some("shorter please".into())
        )
    );
    assert_eq!(audit[1].0, Some(json!("concise")));
    assert_eq!(audit[1].1, Some(json!("detailed")));
    assert_eq!(
        audit[3],
        (
            Some(json!(["a"])),
            None,
            Some(alice_id),
            Some("done".into())
        )
    );
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_writes_nothing() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    for (path, body, needle) in [
        ("user/Bad%20Key", json!({"value": 1}), "key must be"),
        (
            "user/k",
            json!({"value": 1, "value_type": "string"}),
            "value_type string",
        ),
        ("user/k", json!({"value": null}), "value_type is required"),
        (
            "user/k",
            json!({"value": 1, "value_type": "text"}),
            "value_type",
        ),
        ("user/k", json!({"value": 1, "extra": 1}), "extra"),
        (
            "group/k",
            json!({"value": 1}),
            "scope_id is required for the group scope",
        ),
        ("team/k", json!({"value": 1}), "scope_type"),
        (
            "system/k?scope_id=00000000-0000-0000-0000-000000000000",
            json!({"value": 1}),
            "scope_id",
        ),
        ("project/k", json!({"value": 1}), "scope_id is required"),
        (
            "user/k",
            json!({"value": "x".repeat(70_000)}),
            "at most 65536",
        ),
        ("user/k", json!({"value": "nul\u{0}"}), "NUL"),
        (
            "user/k",
            json!({"value": 1, "reason": "r".repeat(1025)}),
            "reason",
        ),
        (
            "user/k",
            json!({"value": 1, "expected_version": 0}),
            "expected_version",
        ),
    ] {
        let resp = o.put_pref(&admin, path, body).await;
        assert_problem(resp, 400, needle).await;
    }
    for (query, needle) in [
        ("scope_type=user&limit=0", "limit"),
        ("scope_type=user&limit=101", "limit"),
        ("scope_type=user&cursor=Nope", "cursor"),
        ("scope_type=nope", "scope_type"),
        ("", "scope_type"),
    ] {
        let resp = o
            .get_url(&format!("{}/v1/prefs?{query}", o.gw), &admin)
            .await;
        assert_problem(resp, 400, needle).await;
    }
    let resp = o
        .get_url(
            &format!(
                "{}/v1/prefs/effective?task_id={}&project_id={}",
                o.gw,
                Uuid::new_v4(),
                Uuid::new_v4()
            ),
            &admin,
        )
        .await;
    assert_problem(resp, 400, "not both").await;
    let resp = o.delete_pref(&admin, "user/k?expected_version=0").await;
    assert_problem(resp, 400, "expected_version").await;
    assert_eq!(o.count("preference_entries").await, 0);
    assert_eq!(o.count("preference_audit_log").await, 0);
}

#[tokio::test]
async fn scopes_are_open_to_whom_the_rules_say() {
    let o = Orchestrator::start(&[]).await;
    let (admin, alice, bob) = o.three_users().await;
    let bob_id = o.user_id("bob").await;
    let bob_task = o.create_script_task(&bob, "echo hi").await;
    let project = o.project("shared").await;

    // System: everyone reads, only a system admin writes.
    let resp = o
        .put_pref(&alice, "system/language.preferred", json!({"value": "en"}))
        .await;
    assert_problem(resp, 403, "not allowed").await;
    let resp = o
        .put_pref(&admin, "system/language.preferred", json!({"value": "en"}))
        .await;
    assert_eq!(resp.status(), 201);
    let (status, got) = o.get(&alice, "/v1/prefs/system/language.preferred").await;
    assert_eq!((status, got["value"].clone()), (200, json!("en")));
    let resp = o.delete_pref(&alice, "system/language.preferred").await;
    assert_problem(resp, 403, "not allowed").await;

    // Project: its members read, its owner (and admins) write.
    let resp = o
        .put_pref(
            &bob,
            &format!("project/k?scope_id={project}"),
            json!({"value": 1}),
        )
        .await;
    assert_problem(resp, 403, "not allowed").await;
    let resp = o
        .put_pref(
            &admin,
            &format!("project/k?scope_id={project}"),
            json!({"value": 1}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let (status, _) = o
        .get(&bob, &format!("/v1/prefs/project/k?scope_id={project}"))
        .await;
    assert_eq!(status, 200);
    let resp = o
        .put_pref(
            &admin,
            &format!("project/k?scope_id={}", Uuid::new_v4()),
            json!({"value": 1}),
        )
        .await;
    assert_problem(resp, 404, "does not exist").await;

    // User: oneself; a system admin may act for anyone.
    let resp = o
        .put_pref(
            &alice,
            &format!("user/k?scope_id={bob_id}"),
            json!({"value": 1}),
        )
        .await;
    assert_problem(resp, 403, "user.manage is not allowed").await;
    let (status, _) = o
        .get(
            &alice,
            &format!("/v1/prefs?scope_type=user&scope_id={bob_id}"),
        )
        .await;
    assert_eq!(status, 403);
    let resp = o
        .put_pref(
            &admin,
            &format!("user/k?scope_id={bob_id}"),
            json!({"value": 2}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let (status, got) = o.get(&bob, "/v1/prefs/user/k").await;
    assert_eq!((status, got["value"].clone()), (200, json!(2)));

    // Task: its owner; to anyone without a role in its project it does not exist.
    let resp = o
        .put_pref(
            &alice,
            &format!("task/k?scope_id={bob_task}"),
            json!({"value": 1}),
        )
        .await;
    assert_problem(resp, 404, "does not exist").await;
    let resp = o
        .put_pref(
            &bob,
            &format!("task/k?scope_id={bob_task}"),
            json!({"value": 3}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    for path in [
        format!("/v1/prefs/task/k?scope_id={bob_task}"),
        format!("/v1/prefs?scope_type=task&scope_id={bob_task}"),
        format!("/v1/prefs/effective?task_id={bob_task}"),
    ] {
        let (status, body) = o.get(&alice, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let resp = o
        .delete_pref(&alice, &format!("task/k?scope_id={bob_task}"))
        .await;
    assert_eq!(resp.status(), 404);
    let (status, effective) = o
        .get(&bob, &format!("/v1/prefs/effective?task_id={bob_task}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(effective["effective"]["k"], 3);
    let (status, _) = o
        .get(&admin, &format!("/v1/prefs/effective?task_id={bob_task}"))
        .await;
    assert_eq!(status, 200);

    // Refused writes left nothing behind: the admin's system, project and bob entries, bob's task.
    assert_eq!(o.count("preference_entries").await, 4);
    assert_eq!(o.count("preference_audit_log").await, 4);
}

#[tokio::test]
async fn the_effective_view_folds_system_user_project_task() {
    let o = Orchestrator::start(&[]).await;
    let (admin, alice, _) = o.three_users().await;
    let alice_id = o.user_id("alice").await;
    let project = o.project("p1").await;
    let task = o
        .create_task(
            &alice,
            json!({"prompt": "echo hi", "input_mode": "script", "project_id": project}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task_id: Uuid = task.parse().unwrap();

    for key in ["a", "b", "c", "d", "e"] {
        let resp = o
            .put_pref(&admin, &format!("system/{key}"), json!({"value": 1}))
            .await;
        assert_eq!(resp.status(), 201);
    }
    let put = |path: String, body: Value, token: String| {
        let o = &o;
        async move {
            let resp = o.put_pref(&token, &path, body).await;
            assert_eq!(resp.status(), 201, "{path}");
        }
    };
    put("user/b".into(), json!({"value": 2}), alice.clone()).await;
    put(
        "user/c".into(),
        json!({"value": null, "value_type": "number"}),
        alice.clone(),
    )
    .await;
    put(
        "user/e".into(),
        json!({"value": null, "value_type": "number"}),
        alice.clone(),
    )
    .await;
    put(
        format!("project/c?scope_id={project}"),
        json!({"value": 3}),
        admin.clone(),
    )
    .await;
    put(
        format!("task/d?scope_id={task}"),
        json!({"value": {"n": 4}}),
        alice.clone(),
    )
    .await;
    // Only data written before validation (or by hand) can be mistyped: it must mask nothing.
    sqlx::query(
        "INSERT INTO preference_entries (id, scope_type, scope_id, key, value, value_type)
         VALUES ($1, 'task', $2, 'a', '\"not a number\"', 'number')",
    )
    .bind(Uuid::new_v4())
    .bind(task_id)
    .execute(&o.db)
    .await
    .unwrap();

    let (status, view) = o
        .get(&alice, &format!("/v1/prefs/effective?task_id={task}"))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["effective"],
        json!({"a": 1, "b": 2, "c": 3, "d": {"n": 4}}),
        "e is masked by alice's null"
    );
    assert_eq!(
        view["sources"],
        json!([
            {"key": "a", "scope_type": "system"},
            {"key": "b", "scope_type": "user", "scope_id": alice_id},
            {"key": "c", "scope_type": "project", "scope_id": project},
            {"key": "d", "scope_type": "task", "scope_id": task_id},
        ])
    );
    // The store function the workflow engine calls agrees with the route.
    let direct = preferences::effective_for_task(&o.db, task_id)
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&direct).unwrap(), view);

    let (_, in_project) = o
        .get(&alice, &format!("/v1/prefs/effective?project_id={project}"))
        .await;
    assert_eq!(
        in_project["effective"],
        json!({"a": 1, "b": 2, "c": 3, "d": 1})
    );
    let (_, alone) = o.get(&alice, "/v1/prefs/effective").await;
    assert_eq!(alone["effective"], json!({"a": 1, "b": 2, "d": 1}));
    let direct = preferences::effective_for(&o.db, alice_id, None)
        .await
        .unwrap();
    assert_eq!(direct.effective.keys().collect::<Vec<_>>(), ["a", "b", "d"]);
    assert!(matches!(
        preferences::effective_for_task(&o.db, Uuid::new_v4()).await,
        Err(PrefError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_store_api_pages_and_refuses_stale_writes() {
    let o = Orchestrator::start(&[]).await;
    let db = &o.db;
    for key in ["k.e", "k.a", "other", "k.c", "k.b", "k.d"] {
        preferences::create(
            db,
            Scope::System,
            key,
            json!(key),
            ValueType::String,
            None,
            None,
        )
        .await
        .unwrap();
    }
    let err = preferences::create(
        db,
        Scope::System,
        "k.a",
        json!(1),
        ValueType::Number,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            PrefError::Conflict {
                current_version: Some(1),
                ..
            }
        ),
        "{err:?}"
    );

    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = preferences::list(db, Scope::System, Some("k."), 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.entries.len() <= 2);
        keys.extend(page.entries.into_iter().map(|e| e.key));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(keys, ["k.a", "k.b", "k.c", "k.d", "k.e"]);
    for limit in [0, 101] {
        assert!(matches!(
            preferences::list(db, Scope::System, None, limit, None).await,
            Err(PrefError::Invalid(_))
        ));
    }

    let actor = Some(o.user_id("admin").await);
    let v2 = preferences::update(
        db,
        Scope::System,
        "k.a",
        json!("two"),
        None,
        Some(1),
        actor,
        Some("r"),
    )
    .await
    .unwrap();
    assert_eq!(v2.version, 2);
    let err = preferences::update(
        db,
        Scope::System,
        "k.a",
        json!("lost"),
        None,
        Some(1),
        actor,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            PrefError::Conflict {
                current_version: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    let now = preferences::get(db, Scope::System, "k.a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.version, now.value), (2, json!("two")));
    assert!(matches!(
        preferences::delete(db, Scope::System, "k.a", Some(1), actor, None).await,
        Err(PrefError::Conflict { .. })
    ));
    preferences::delete(db, Scope::System, "k.a", Some(2), actor, None)
        .await
        .unwrap();
    assert!(matches!(
        preferences::update(db, Scope::System, "k.a", json!(1), None, None, actor, None).await,
        Err(PrefError::NotFound(_))
    ));
    assert!(matches!(
        preferences::create(
            db,
            Scope::Task(Uuid::new_v4()),
            "k",
            json!(1),
            ValueType::Number,
            None,
            None
        )
        .await,
        Err(PrefError::NotFound(_))
    ));
}

#[tokio::test]
async fn openapi_documents_the_preference_routes() {
    let o = Orchestrator::start(&[]).await;
    let doc = o.openapi(&o.gw).await;
    use cynode_contracts::routes::user;
    for (path, method) in [
        (user::PREFS, "get"),
        (user::PREFS_EFFECTIVE, "get"),
        (user::PREF, "get"),
        (user::PREF, "put"),
        (user::PREF, "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let limit = doc["paths"][user::PREFS]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"]
        .clone();
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(1), &json!(100)),
        "{limit}"
    );
    assert_eq!(
        doc["components"]["schemas"]["SetPreferenceRequest"]["additionalProperties"],
        false
    );
}

#[tokio::test]
async fn group_entries_sit_between_system_and_user_for_the_groups_members() {
    let o = Orchestrator::start(&[]).await;
    let (admin, alice, bob) = o.three_users().await;
    let post = |path: &'static str, body: Value| {
        let o = &o;
        let admin = admin.clone();
        async move {
            let resp = o
                .http
                .post(format!("{}{path}", o.gw))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    let group = post("/v1/groups", json!({"slug": "ml"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post("/v1/groups/ml/members", json!({"user": "alice"})).await;
    for (path, value, token) in [
        ("system/style".to_owned(), "system", &admin),
        ("system/lang".to_owned(), "en", &admin),
        (format!("group/style?scope_id={group}"), "group", &admin),
        (format!("group/lang?scope_id={group}"), "group", &admin),
        ("user/lang".to_owned(), "user", &alice),
    ] {
        let resp = o.put_pref(token, &path, json!({"value": value})).await;
        assert_eq!(resp.status(), 201, "{path}");
    }
    // A member's effective view: the group beats the system, the user beats the group.
    let (status, view) = o.get(&alice, "/v1/prefs/effective").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["effective"]["style"], "group", "{view}");
    assert_eq!(view["effective"]["lang"], "user", "{view}");
    let source = |key: &str| {
        view["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .map(|s| s["scope_type"].clone())
    };
    assert_eq!(source("style"), Some(json!("group")));
    // Someone outside the group gets the system's, and may not read the group's entries.
    let (_, view) = o.get(&bob, "/v1/prefs/effective").await;
    assert_eq!(view["effective"]["style"], "system", "{view}");
    let (status, _) = o
        .get(&bob, &format!("/v1/prefs/group/style?scope_id={group}"))
        .await;
    assert_eq!(status, 403);
    let (status, got) = o
        .get(&alice, &format!("/v1/prefs/group/style?scope_id={group}"))
        .await;
    assert_eq!((status, got["value"].clone()), (200, json!("group")));
    // Only a group admin (system admin) writes them.
    let resp = o
        .put_pref(
            &alice,
            &format!("group/style?scope_id={group}"),
            json!({"value": "mine"}),
        )
        .await;
    assert_problem(resp, 403, "group.manage is not allowed").await;
    // Leaving the group takes its entries away at the next request.
    let resp = o
        .http
        .delete(format!("{}/v1/groups/ml/members/alice", o.gw))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, view) = o.get(&alice, "/v1/prefs/effective").await;
    assert_eq!(view["effective"]["style"], "system", "{view}");
}
