//! The MCP gateway over its real wire (streamable HTTP, JSON-RPC) on a real PostgreSQL:
//! tokens, the enforcement pipeline's refusals, the tools, and exactly one audit row per call.

use crate::common;

use common::{Orchestrator, assert_problem};
use cynode_orchestrator::mcp::Agent;
use serde_json::json;
use uuid::Uuid;

/// A script task of the admin and its (queued) job.
async fn task_and_job(o: &Orchestrator, token: &str) -> (Uuid, Uuid, Uuid) {
    let task: Uuid = o
        .create_script_task(token, "echo hi")
        .await
        .parse()
        .unwrap();
    let (owner, job): (Uuid, Uuid) = sqlx::query_as(
        "SELECT t.created_by, j.id FROM tasks t JOIN jobs j ON j.task_id = t.id WHERE t.id = $1",
    )
    .bind(task)
    .fetch_one(&o.db)
    .await
    .unwrap();
    (task, job, owner)
}

/// The audit rows of `tool`, oldest first: (decision, status, error_type, subject_type).
async fn audit_of(o: &Orchestrator, tool: &str) -> Vec<(String, String, Option<String>, String)> {
    sqlx::query_as(
        "SELECT decision, status, error_type, subject_type FROM mcp_tool_call_audit_log \
         WHERE tool_name = $1 ORDER BY created_at, id",
    )
    .bind(tool)
    .fetch_all(&o.db)
    .await
    .unwrap()
}

fn row(
    decision: &str,
    status: &str,
    error: Option<&str>,
    subject: &str,
) -> (String, String, Option<String>, String) {
    (
        decision.into(),
        status.into(),
        error.map(Into::into),
        subject.into(),
    )
}

#[tokio::test]
async fn tools_are_listed_by_role_and_pm_calls_succeed_with_one_audit_row_each() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let pm = o.agent_token(&Agent::pm());
    let sandbox = o.agent_token(&Agent::sandbox(owner, task, job, None));

    let pm_tools = mcp.tool_names(&pm).await;
    for name in [
        "db.task.get",
        "db.job.get",
        "node.list",
        "model.list",
        "help.get",
    ] {
        assert!(
            pm_tools.contains(&name.to_owned()),
            "{name} in {pm_tools:?}"
        );
    }
    assert!(!pm_tools.iter().any(|t| t.starts_with("memory.")));
    let sandbox_tools = mcp.tool_names(&sandbox).await;
    assert!(sandbox_tools.contains(&"memory.add".to_owned()));
    assert!(
        !sandbox_tools
            .iter()
            .any(|t| t.starts_with("db.") || t.starts_with("node.")),
        "{sandbox_tools:?}"
    );
    // Schemas come from the argument types: closed objects with their required ids.
    let listed = mcp.rpc(Some(&pm), "tools/list", json!({})).await;
    let get = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "db.task.get")
        .unwrap()
        .clone();
    assert_eq!(get["inputSchema"]["required"], json!(["task_id"]));
    assert_eq!(get["inputSchema"]["additionalProperties"], false);
    assert_eq!(get["annotations"]["readOnlyHint"], true);

    let got = mcp
        .call(Some(&pm), "db.task.get", json!({"task_id": task}))
        .await;
    assert_eq!(got["status"], "success", "{got}");
    assert_eq!(got["result"]["task_id"], task.to_string());
    assert_eq!(got["result"]["prompt"], "echo hi");
    assert_eq!(got["result"]["jobs"][0]["job_id"], job.to_string());
    let job_view = mcp
        .call(Some(&pm), "db.job.get", json!({"job_id": job}))
        .await;
    assert_eq!(job_view["result"]["status"], "queued", "{job_view}");
    let missing = mcp
        .call(Some(&pm), "db.task.get", json!({"task_id": Uuid::new_v4()}))
        .await;
    assert_eq!(missing["error"]["type"], "not_found");

    assert_eq!(
        audit_of(&o, "db.task.get").await,
        vec![
            row("allow", "success", None, "pm"),
            row("allow", "error", Some("not_found"), "pm")
        ]
    );
    assert_eq!(
        audit_of(&o, "db.job.get").await,
        vec![row("allow", "success", None, "pm")]
    );
    // The row is filed under the task the arguments named; nothing of the arguments is kept.
    let (audited_task, subject): (Option<Uuid>, String) = sqlx::query_as(
        "SELECT task_id, subject_type FROM mcp_tool_call_audit_log \
         WHERE tool_name = 'db.task.get' AND status = 'success'",
    )
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!((audited_task, subject.as_str()), (Some(task), "pm"));
}

#[tokio::test]
async fn refusals_are_denied_audited_and_change_nothing() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let (other_task, other_job, _) = task_and_job(&o, &admin).await;
    let sandbox = o.agent_token(&Agent::sandbox(owner, task, job, None));
    let memory_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM agent_memory")
            .fetch_one(&o.db)
            .await
            .unwrap()
    };

    // Outside the role's list.
    let denied = mcp
        .call(Some(&sandbox), "db.task.get", json!({"task_id": task}))
        .await;
    assert_eq!(denied["error"]["type"], "not_allowed", "{denied}");
    // No token, a forged token, an expired one.
    let add = json!({"task_id": task, "job_id": job, "key": "k", "content": "v"});
    let anonymous = mcp.call(None, "memory.add", add.clone()).await;
    assert_eq!(anonymous["error"]["type"], "unauthenticated");
    let forged = mcp
        .call(Some("not-a-token"), "memory.add", add.clone())
        .await;
    assert_eq!(forged["error"]["type"], "unauthenticated");
    // Another task's or job's ids.
    let foreign = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": other_task, "job_id": job, "key": "k", "content": "v"}),
        )
        .await;
    assert_eq!(foreign["error"]["type"], "context_mismatch", "{foreign}");
    let foreign_job = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": task, "job_id": other_job, "key": "k", "content": "v"}),
        )
        .await;
    assert_eq!(foreign_job["error"]["type"], "context_mismatch");
    // Arguments that fail the schema: an unknown field, a missing one.
    let unknown_field = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": task, "job_id": job, "key": "k", "content": "v", "sneaky": 1}),
        )
        .await;
    assert_eq!(unknown_field["error"]["type"], "invalid_arguments");
    let no_content = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": task, "job_id": job, "key": "k"}),
        )
        .await;
    assert_eq!(no_content["error"]["type"], "invalid_arguments");
    // Over the size cap.
    let huge = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": task, "job_id": job, "key": "k", "content": "x".repeat(300 * 1024)}),
        )
        .await;
    assert_eq!(huge["error"]["type"], "too_large", "{huge}");
    // A tool that does not exist.
    let nonsense = mcp
        .call(Some(&sandbox), "db.drop_everything", json!({}))
        .await;
    assert_eq!(nonsense["error"]["type"], "unknown_tool");
    assert_eq!(memory_rows().await, 0, "no refused call wrote anything");

    assert_eq!(
        audit_of(&o, "db.task.get").await,
        vec![row("deny", "error", Some("not_allowed"), "sandbox")]
    );
    assert_eq!(
        audit_of(&o, "memory.add").await,
        vec![
            row("deny", "error", Some("unauthenticated"), "anonymous"),
            row("deny", "error", Some("unauthenticated"), "anonymous"),
            row("deny", "error", Some("context_mismatch"), "sandbox"),
            row("deny", "error", Some("context_mismatch"), "sandbox"),
            row("deny", "error", Some("invalid_arguments"), "sandbox"),
            row("deny", "error", Some("invalid_arguments"), "sandbox"),
            row("deny", "error", Some("too_large"), "sandbox"),
        ]
    );
    assert_eq!(
        audit_of(&o, "db.drop_everything").await,
        vec![row("deny", "error", Some("unknown_tool"), "sandbox")]
    );

    // The agent's own context works, and an access rule denies it again (deny wins).
    let ok = mcp.call(Some(&sandbox), "memory.add", add.clone()).await;
    assert_eq!(ok["status"], "success", "{ok}");
    let read = mcp
        .call(
            Some(&sandbox),
            "memory.retrieve",
            json!({"task_id": task, "job_id": job, "key": "k"}),
        )
        .await;
    assert_eq!(read["result"]["content"], "v");
    sqlx::query(
        "INSERT INTO mcp_access_rules (id, agent_type, tool_pattern, effect) \
         VALUES ($1, 'sandbox', 'memory.*', 'deny')",
    )
    .bind(Uuid::new_v4())
    .execute(&o.db)
    .await
    .unwrap();
    let ruled = mcp
        .call(
            Some(&sandbox),
            "memory.delete",
            json!({"task_id": task, "job_id": job, "key": "k"}),
        )
        .await;
    assert_eq!(ruled["error"]["type"], "access_denied");
    assert_eq!(memory_rows().await, 1, "the denied delete removed nothing");
}

#[tokio::test]
async fn memory_is_job_scoped_and_capped() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let sandbox = o.agent_token(&Agent::sandbox(owner, task, job, None));
    for i in 0..100 {
        let added = mcp
            .call(
                Some(&sandbox),
                "memory.add",
                json!({"task_id": task, "job_id": job, "key": format!("k{i:03}"), "content": "c"}),
            )
            .await;
        assert_eq!(added["status"], "success", "{added}");
    }
    let full = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": task, "job_id": job, "key": "one-more", "content": "c"}),
        )
        .await;
    assert_eq!(full["error"]["type"], "conflict", "{full}");
    // Replacing a key is not a new entry.
    let replaced = mcp
        .call(
            Some(&sandbox),
            "memory.add",
            json!({"task_id": task, "job_id": job, "key": "k000", "content": "new"}),
        )
        .await;
    assert_eq!(replaced["result"]["replaced"], true);
    let page = mcp
        .call(
            Some(&sandbox),
            "memory.list",
            json!({"task_id": task, "job_id": job, "limit": 60}),
        )
        .await;
    assert_eq!(page["result"]["entries"].as_array().unwrap().len(), 60);
    let rest = mcp
        .call(
            Some(&sandbox),
            "memory.list",
            json!({"task_id": task, "job_id": job, "cursor": page["result"]["next_cursor"]}),
        )
        .await;
    assert_eq!(rest["result"]["entries"].as_array().unwrap().len(), 40);
    assert!(rest["result"]["next_cursor"].is_null());
    // Another job of the same user sees none of it.
    let (task2, job2, _) = task_and_job(&o, &admin).await;
    let other = o.agent_token(&Agent::sandbox(owner, task2, job2, None));
    let empty = mcp
        .call(
            Some(&other),
            "memory.list",
            json!({"task_id": task2, "job_id": job2}),
        )
        .await;
    assert_eq!(empty["result"]["entries"], json!([]));
}

#[tokio::test]
async fn the_pm_ends_tasks_through_update_status() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let pm = o.agent_token(&Agent::pm());
    let (task, _, _) = task_and_job(&o, &admin).await;
    let no_reason = mcp
        .call(
            Some(&pm),
            "db.task.update_status",
            json!({"task_id": task, "status": "failed"}),
        )
        .await;
    assert_eq!(no_reason["error"]["type"], "invalid_arguments");
    let bad_status = mcp
        .call(
            Some(&pm),
            "db.task.update_status",
            json!({"task_id": task, "status": "running"}),
        )
        .await;
    assert_eq!(bad_status["error"]["type"], "invalid_arguments");
    let (_, view) = o.get(&admin, &format!("/v1/tasks/{task}")).await;
    assert_eq!(view["status"], "queued", "refused calls changed nothing");
    let canceled = mcp
        .call(
            Some(&pm),
            "db.task.update_status",
            json!({"task_id": task, "status": "canceled"}),
        )
        .await;
    assert_eq!(canceled["result"]["status"], "canceled", "{canceled}");
    let again = mcp
        .call(
            Some(&pm),
            "db.task.update_status",
            json!({"task_id": task, "status": "completed", "summary": "x"}),
        )
        .await;
    assert_eq!(again["error"]["type"], "conflict");
    let (_, view) = o.get(&admin, &format!("/v1/tasks/{task}")).await;
    assert_eq!(view["status"], "canceled");
}

#[tokio::test]
async fn disabled_tools_are_neither_listed_nor_callable() {
    let o = Orchestrator::start(&[("MCP_TOOLS_DISABLED", "node.list,help.get")]).await;
    let mcp = o.mcp();
    let pm = o.agent_token(&Agent::pm());
    let names = mcp.tool_names(&pm).await;
    assert!(!names.contains(&"node.list".to_owned()), "{names:?}");
    assert!(names.contains(&"node.get".to_owned()));
    let off = mcp.call(Some(&pm), "node.list", json!({})).await;
    assert_eq!(off["error"]["type"], "tool_disabled");
    assert_eq!(
        audit_of(&o, "node.list").await,
        vec![row("deny", "error", Some("tool_disabled"), "pm")]
    );
}

#[tokio::test]
async fn browsers_foreign_hosts_and_anonymous_listing_are_refused() {
    let o = Orchestrator::start(&[]).await;
    let mcp = o.mcp();
    let pm = o.agent_token(&Agent::pm());
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let with_origin = mcp
        .http
        .post(&mcp.url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .header("origin", "https://evil.example")
        .bearer_auth(&pm)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(with_origin.status(), 403);
    let foreign_host = mcp
        .http
        .post(&mcp.url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .header("host", "attacker.example")
        .bearer_auth(&pm)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_host.status(), 403);
    let anonymous = mcp.rpc(None, "tools/list", json!({})).await;
    assert!(
        anonymous["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no agent token"),
        "{anonymous}"
    );
    // Other paths are not served.
    let other = mcp
        .http
        .get(mcp.url.replace("/mcp", "/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn admins_read_the_audit_with_filters_and_others_cannot() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let pm = o.agent_token(&Agent::pm());
    let sandbox = o.agent_token(&Agent::sandbox(owner, task, job, None));
    mcp.call(Some(&pm), "db.task.get", json!({"task_id": task}))
        .await;
    mcp.call(Some(&sandbox), "db.task.get", json!({"task_id": task}))
        .await;
    mcp.call(Some(&pm), "node.list", json!({})).await;

    let (status, all) = o.get(&admin, "/v1/audit/mcp").await;
    assert_eq!(status, 200, "{all}");
    let entries = all["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["tool_name"], "node.list", "newest first");
    let (_, denied) = o.get(&admin, "/v1/audit/mcp?decision=deny").await;
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1);
    assert_eq!(denied["entries"][0]["subject_type"], "sandbox");
    assert_eq!(denied["entries"][0]["error_type"], "not_allowed");
    assert_eq!(denied["entries"][0]["job_id"], job.to_string());
    let (_, of_task) = o
        .get(&admin, &format!("/v1/audit/mcp?task_id={task}&limit=1"))
        .await;
    assert_eq!(of_task["entries"].as_array().unwrap().len(), 1);
    let cursor = of_task["next_cursor"].as_str().expect("a second page");
    let (_, second) = o
        .get(
            &admin,
            &format!("/v1/audit/mcp?task_id={task}&cursor={cursor}"),
        )
        .await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 1);
    assert_ne!(second["entries"][0]["id"], of_task["entries"][0]["id"]);
    assert!(second["next_cursor"].is_null());

    let bad = o
        .get_url(&format!("{}/v1/audit/mcp?limit=0", o.gw), &admin)
        .await;
    assert_problem(bad, 400, "limit").await;
    let unknown = o
        .get_url(&format!("{}/v1/audit/mcp?verbose=1", o.gw), &admin)
        .await;
    assert_eq!(unknown.status(), 400);
    o.create_user("bob", "correct-horse-b-3").await;
    let (bob, _) = o.login("bob", "correct-horse-b-3").await;
    let forbidden = o.get_url(&format!("{}/v1/audit/mcp", o.gw), &bob).await;
    assert_problem(forbidden, 403, "audit.read is not allowed").await;
}

#[tokio::test]
async fn preferences_through_mcp_fold_by_scope_and_refuse_stale_versions() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, _, owner) = task_and_job(&o, &admin).await;
    let pm = o.agent_token(&Agent::pm());
    let create = |scope: &str, id: Option<Uuid>, value: serde_json::Value| {
        let mut args = json!({"scope_type": scope, "key": "output.summary_style",
            "value": value, "value_type": "string"});
        if let Some(id) = id {
            args["scope_id"] = json!(id);
        }
        args
    };
    for args in [
        create("system", None, json!("long")),
        create("user", Some(owner), json!("concise")),
    ] {
        let made = mcp.call(Some(&pm), "db.preference.create", args).await;
        assert_eq!(made["status"], "success", "{made}");
        assert_eq!(made["result"]["version"], 1);
    }
    let effective = mcp
        .call(
            Some(&pm),
            "db.preference.effective",
            json!({"task_id": task, "include_sources": true}),
        )
        .await;
    assert_eq!(
        effective["result"]["effective"]["output.summary_style"], "concise",
        "{effective}"
    );
    assert_eq!(effective["result"]["sources"][0]["scope_type"], "user");

    // A stale expected_version is a conflict and changes nothing.
    let mut update = create("user", Some(owner), json!("terse"));
    update["expected_version"] = json!(1);
    let updated = mcp
        .call(Some(&pm), "db.preference.update", update.clone())
        .await;
    assert_eq!(updated["result"]["version"], 2, "{updated}");
    update["value"] = json!("verbose");
    let stale = mcp.call(Some(&pm), "db.preference.update", update).await;
    assert_eq!(stale["error"]["type"], "conflict", "{stale}");
    let now = mcp
        .call(
            Some(&pm),
            "db.preference.get",
            json!({"scope_type": "user", "scope_id": owner, "key": "output.summary_style"}),
        )
        .await;
    assert_eq!(now["result"]["value"], "terse");
    assert_eq!(now["result"]["version"], 2);
    // A wrongly typed value is refused by the store.
    let mistyped = mcp
        .call(
            Some(&pm),
            "db.preference.create",
            json!({"scope_type": "system", "key": "standards.markdown.line_length",
                "value": "eighty", "value_type": "number"}),
        )
        .await;
    assert_eq!(mistyped["error"]["type"], "invalid_arguments", "{mistyped}");

    // An analyst reads its own user's preferences, not another user's, and never writes.
    let analyst = o.agent_token(&Agent::analyst(owner, task));
    let own = mcp
        .call(
            Some(&analyst),
            "db.preference.get",
            json!({"scope_type": "user", "scope_id": owner, "key": "output.summary_style"}),
        )
        .await;
    assert_eq!(own["result"]["value"], "terse", "{own}");
    let other = mcp
        .call(
            Some(&analyst),
            "db.preference.get",
            json!({"scope_type": "user", "scope_id": Uuid::new_v4(), "key": "output.summary_style"}),
        )
        .await;
    assert_eq!(other["error"]["type"], "context_mismatch", "{other}");
    let write = mcp
        .call(
            Some(&analyst),
            "db.preference.delete",
            json!({"scope_type": "user", "scope_id": owner, "key": "output.summary_style"}),
        )
        .await;
    assert_eq!(write["error"]["type"], "not_allowed");
    let audit: Vec<(String,)> = sqlx::query_as(
        "SELECT decision FROM mcp_tool_call_audit_log WHERE tool_name = 'db.preference.delete'",
    )
    .fetch_all(&o.db)
    .await
    .unwrap();
    assert_eq!(audit, vec![("deny".to_owned(),)]);
}

#[tokio::test]
async fn artifacts_through_mcp_round_trip_and_bad_paths_write_nothing() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let sandbox = o.agent_token(&Agent::sandbox(owner, task, job, None));
    let content = b"line one\nline two\n\x00\xff binary too";
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let put = mcp
        .call(
            Some(&sandbox),
            "artifact.put",
            json!({"task_id": task, "path": "out/report.txt", "content_bytes_base64": encoded,
                "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(put["status"], "success", "{put}");
    assert_eq!(put["result"]["size_bytes"], content.len());
    let got = mcp
        .call(
            Some(&sandbox),
            "artifact.get",
            json!({"task_id": task, "path": "out/report.txt"}),
        )
        .await;
    assert_eq!(got["result"]["content_bytes_base64"], encoded);
    let listed = mcp
        .call(Some(&sandbox), "artifact.list", json!({"task_id": task}))
        .await;
    assert_eq!(listed["result"]["artifacts"][0]["path"], "out/report.txt");
    // The job that wrote it is recorded; the owner downloads the same bytes over REST.
    let writer: Option<Uuid> = sqlx::query_scalar(
        "SELECT job_id FROM task_artifacts WHERE task_id = $1 AND path = 'out/report.txt'",
    )
    .bind(task)
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!(writer, Some(job));
    let artifact_id = put["result"]["artifact_id"].as_str().unwrap();
    let download = o
        .get_url(
            &format!("{}/v1/tasks/{task}/artifacts/{artifact_id}", o.gw),
            &admin,
        )
        .await;
    assert_eq!(download.status(), 200);
    assert_eq!(&download.bytes().await.unwrap()[..], content);

    for (path, why) in [
        ("../escape.txt", "dot-dot"),
        ("/etc/passwd", "absolute"),
        ("a\u{0}b", "NUL"),
    ] {
        let bad = mcp
            .call(
                Some(&sandbox),
                "artifact.put",
                json!({"task_id": task, "path": path, "content_bytes_base64": "aGk="}),
            )
            .await;
        assert_eq!(bad["error"]["type"], "invalid_arguments", "{why}: {bad}");
    }
    let not_base64 = mcp
        .call(
            Some(&sandbox),
            "artifact.put",
            json!({"task_id": task, "path": "x.txt", "content_bytes_base64": "%%%"}),
        )
        .await;
    assert_eq!(not_base64["error"]["type"], "invalid_arguments");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM task_artifacts WHERE task_id = $1")
        .bind(task)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(rows, 1, "refused puts wrote nothing");
    // Another task's artifacts are out of a sandbox agent's reach.
    let (other_task, _, _) = task_and_job(&o, &admin).await;
    let foreign = mcp
        .call(
            Some(&sandbox),
            "artifact.list",
            json!({"task_id": other_task}),
        )
        .await;
    assert_eq!(foreign["error"]["type"], "context_mismatch");
}

#[tokio::test]
async fn a_sandbox_token_opens_nothing_once_its_job_has_ended() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let mcp = o.mcp();
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let sandbox = o.agent_token(&Agent::sandbox(owner, task, job, None));
    let args = json!({"task_id": task, "job_id": job});
    let open = mcp.call(Some(&sandbox), "memory.list", args.clone()).await;
    assert_eq!(open["status"], "success", "{open}");
    assert_eq!(o.cancel(&admin, &task.to_string()).await.status(), 200);
    let ended = mcp.call(Some(&sandbox), "memory.list", args).await;
    assert_eq!(ended["error"]["type"], "unauthenticated", "{ended}");
    assert!(
        ended["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has ended")
    );
}
