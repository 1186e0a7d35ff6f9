//! A stock MCP client, the official Python SDK (`mcp`, installed by the bootstrap), against the
//! real orchestrator binary's MCP gateway (issue 11): tokens from `cynode-orchestrator
//! mcp-token`, both protocol versions (2026-07-28 discovered, 2025-11-25 by handshake), the tools
//! a token may list, calls that succeed (a task, its job, the effective preferences, an
//! artifact stored and read back) and one that its role may not make, and exactly one audit row
//! per call.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{Orchestrator, User};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

/// Runs `e2e/python/mcp_client.py` with `token` against `url`; its JSON report.
async fn python_client(env: &DevEnv, url: &str, token: &str, mode: &str, calls: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/mcp_client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&env.python)
            .arg(script)
            .arg(url)
            .arg(mode)
            .arg(calls.to_string())
            .env("MCP_TOKEN", token)
            .output(),
    )
    .await
    .expect("the MCP client finished")
    .unwrap();
    assert!(
        output.status.success(),
        "mcp_client.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn the_official_python_client_lists_and_calls_tools_and_every_call_is_audited_once() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let user = User::login(&orchestrator).await;
    let task: Uuid = user
        .create_task(json!({"prompt": "echo hi", "input_mode": "script"}))
        .await
        .parse()
        .unwrap();
    let pref = user
        .put(
            "/v1/prefs/user/output.summary_style",
            json!({"value": "concise", "value_type": "string"}),
        )
        .await;
    assert_eq!(pref["version"], 1, "{pref}");
    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    let job: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1")
        .bind(task)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let pm = orchestrator.cli(&["mcp-token", "--agent", "pm"]).await;
    let sandbox = orchestrator
        .cli(&[
            "mcp-token",
            "--agent",
            "sandbox",
            "--task-id",
            &task.to_string(),
            "--job-id",
            &job.to_string(),
        ])
        .await;

    // The Project Manager, on the current protocol (discovered).
    let report = python_client(
        &env,
        &orchestrator.mcp,
        pm.trim(),
        "auto",
        json!([
            ["db.task.get", {"task_id": task}],
            ["db.job.get", {"job_id": job}],
            ["db.preference.effective", {"task_id": task, "include_sources": true}],
            ["artifact.put", {"task_id": task, "path": "notes/from-python.txt",
                "content_bytes_base64": "aGVsbG8gZnJvbSB0aGUgU0RL", "content_type": "text/plain"}],
            ["artifact.get", {"task_id": task, "path": "notes/from-python.txt"}],
        ]),
    )
    .await;
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tools.contains(&"db.task.get"), "{report}");
    assert!(!tools.iter().any(|t| t.starts_with("memory.")), "{report}");
    let calls = report["calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], false, "{report}");
    assert_eq!(
        calls[0]["structured"]["result"]["task_id"],
        task.to_string()
    );
    assert_eq!(calls[0]["structured"]["result"]["prompt"], "echo hi");
    assert_eq!(
        calls[1]["structured"]["result"]["status"], "queued",
        "{report}"
    );
    // The user's preference, set over REST, is what the task runs with.
    assert_eq!(
        calls[2]["structured"]["result"]["effective"]["output.summary_style"], "concise",
        "{report}"
    );
    assert_eq!(
        calls[2]["structured"]["result"]["sources"][0]["scope_type"],
        "user"
    );
    assert_eq!(calls[3]["is_error"], false, "{report}");
    assert_eq!(calls[3]["structured"]["result"]["size_bytes"], 18);
    assert_eq!(
        calls[4]["structured"]["result"]["content_bytes_base64"],
        "aGVsbG8gZnJvbSB0aGUgU0RL"
    );

    // The same client on the previous protocol (the initialize handshake).
    let legacy = python_client(
        &env,
        &orchestrator.mcp,
        pm.trim(),
        "legacy",
        json!([["db.task.get", {"task_id": task}]]),
    )
    .await;
    assert_eq!(legacy["calls"][0]["is_error"], false, "{legacy}");
    assert_eq!(legacy["tools"], report["tools"]);

    // A sandbox agent may not read the task database.
    let denied = python_client(
        &env,
        &orchestrator.mcp,
        sandbox.trim(),
        "auto",
        json!([["db.task.get", {"task_id": task}]]),
    )
    .await;
    assert_eq!(denied["calls"][0]["is_error"], true, "{denied}");
    assert_eq!(
        denied["calls"][0]["structured"]["error"]["type"],
        "not_allowed"
    );
    assert!(
        !denied["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("db.")),
        "{denied}"
    );

    // Exactly one audit row per call, with its decision and status.
    let audit: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT tool_name, subject_type, decision, status FROM mcp_tool_call_audit_log \
         ORDER BY created_at, id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let row = |t: &str, s: &str, d: &str, st: &str| (t.into(), s.into(), d.into(), st.into());
    assert_eq!(
        audit,
        vec![
            row("db.task.get", "pm", "allow", "success"),
            row("db.job.get", "pm", "allow", "success"),
            row("db.preference.effective", "pm", "allow", "success"),
            row("artifact.put", "pm", "allow", "success"),
            row("artifact.get", "pm", "allow", "success"),
            row("db.task.get", "pm", "allow", "success"),
            row("db.task.get", "sandbox", "deny", "error"),
        ]
    );
}
