//! The MCP gateway over its real wire (streamable HTTP, JSON-RPC) on a real PostgreSQL:
//! tokens, the enforcement pipeline's refusals, the tools, and exactly one audit row per call.

mod common;

use std::time::Duration;

use common::{Orchestrator, assert_problem};
use cynode_orchestrator::mcp::Agent;
use serde_json::{Value, json};
use uuid::Uuid;

/// A JSON-RPC client of the gateway (protocol 2026-07-28: stateless, no handshake).
struct Mcp {
    url: String,
    http: reqwest::Client,
}

impl Mcp {
    fn of(o: &Orchestrator) -> Self {
        Self {
            url: o
                .running
                .as_ref()
                .unwrap()
                .state
                .mcp_url
                .clone()
                .expect("control plane serves MCP"),
            http: reqwest::Client::new(),
        }
    }

    /// A JSON-RPC request with the 2026-07-28 routing headers (`Mcp-Method`, `Mcp-Name`).
    async fn post(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", body["method"].as_str().unwrap())
            .json(body);
        if let Some(name) = body["params"]["name"].as_str() {
            req = req.header("mcp-name", name);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    async fn rpc(&self, token: Option<&str>, method: &str, mut params: Value) -> Value {
        // 2026-07-28 requests carry the client's protocol version, identity and capabilities.
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "cynode-tests", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let resp = self
            .post(
                token,
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{method}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `tools/call`: the tool's envelope (`structuredContent`).
    async fn call(&self, token: Option<&str>, tool: &str, arguments: Value) -> Value {
        let answer = self
            .rpc(
                token,
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
            )
            .await;
        let result = &answer["result"];
        assert!(result.is_object(), "tools/call {tool}: {answer}");
        let envelope = result["structuredContent"].clone();
        assert_eq!(
            result["isError"].as_bool().unwrap_or(false),
            envelope["status"] == "error",
            "{answer}"
        );
        envelope
    }

    async fn tool_names(&self, token: &str) -> Vec<String> {
        let answer = self.rpc(Some(token), "tools/list", json!({})).await;
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn issue(o: &Orchestrator, agent: &Agent) -> String {
    o.running
        .as_ref()
        .unwrap()
        .state
        .mcp_keys
        .issue(agent, Duration::from_secs(300))
}

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
    let mcp = Mcp::of(&o);
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let pm = issue(&o, &Agent::pm());
    let sandbox = issue(&o, &Agent::sandbox(owner, task, job, None));

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
    let mcp = Mcp::of(&o);
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let (other_task, other_job, _) = task_and_job(&o, &admin).await;
    let sandbox = issue(&o, &Agent::sandbox(owner, task, job, None));
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
    let mcp = Mcp::of(&o);
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let sandbox = issue(&o, &Agent::sandbox(owner, task, job, None));
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
    let other = issue(&o, &Agent::sandbox(owner, task2, job2, None));
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
    let mcp = Mcp::of(&o);
    let pm = issue(&o, &Agent::pm());
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
    let mcp = Mcp::of(&o);
    let pm = issue(&o, &Agent::pm());
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
    let mcp = Mcp::of(&o);
    let pm = issue(&o, &Agent::pm());
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
    let mcp = Mcp::of(&o);
    let (task, job, owner) = task_and_job(&o, &admin).await;
    let pm = issue(&o, &Agent::pm());
    let sandbox = issue(&o, &Agent::sandbox(owner, task, job, None));
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
    o.create_user("bob", "bob-password-123").await;
    let (bob, _) = o.login("bob", "bob-password-123").await;
    let forbidden = o.get_url(&format!("{}/v1/audit/mcp", o.gw), &bob).await;
    assert_problem(forbidden, 403, "admin").await;
}
