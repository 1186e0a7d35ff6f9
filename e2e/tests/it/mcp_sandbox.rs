//! A sandbox agent calls the orchestrator's MCP gateway (issue 11) with every real process:
//! the orchestrator mints the job's token at dispatch, the node manager hands the worker the
//! gateway's URL, and the job's shell reaches `$CYNODE_MCP_URL` through its pod's sidecar and
//! its own socket on the worker, which attaches the token. The sandbox never sees a token; the
//! gateway audits each call under the job, and a file it stores is the task owner's to download.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{NodeManager, Orchestrator, User};
use serde_json::json;
use sqlx::Connection;

/// `mcp TOOL ARGUMENTS_JSON` in the sandbox's shell (the demo uses the same client).
const MCP_SHELL_CLIENT: &str = include_str!("../../../scripts/mcp-shell-client.sh");

#[tokio::test]
async fn a_use_mcp_job_calls_tools_through_its_node_without_holding_a_token() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let node = NodeManager::start_serving(&env, &orchestrator).await;
    let user = User::login(&orchestrator).await;

    let script = format!(
        r#"{MCP_SHELL_CLIENT}
ids="\"task_id\":\"$CYNODE_TASK_ID\",\"job_id\":\"$CYNODE_JOB_ID\""
mcp memory.add "{{$ids,\"key\":\"note\",\"content\":\"from-the-sandbox\"}}"
mcp memory.retrieve "{{$ids,\"key\":\"note\"}}"
mcp db.task.get "{{\"task_id\":\"$CYNODE_TASK_ID\"}}"
mcp artifact.put "{{\"task_id\":\"$CYNODE_TASK_ID\",\"path\":\"out/made.txt\",\"content_type\":\"text/plain\",\"content_bytes_base64\":\"$(printf 'made in a sandbox' | base64)\"}}"
env | grep -cE 'eyJ[A-Za-z0-9_-]+\.eyJ' || true"#
    );
    let id = user
        .create_task(json!({"prompt": script, "input_mode": "script", "use_mcp": true}))
        .await;
    let result = user
        .finished_result(&id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|| panic!("unfinished; node log:\n{}", node.log()));
    assert_eq!(result["status"], "completed", "{result}");
    let job = &result["jobs"][0]["result"];
    let lines: Vec<&str> = job["stdout"].as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 5, "{job}");
    let answer = |i: usize| -> serde_json::Value {
        let rpc: serde_json::Value = serde_json::from_str(lines[i]).expect(lines[i]);
        rpc["result"]["structuredContent"].clone()
    };
    assert_eq!(answer(0)["status"], "success", "{job}");
    assert_eq!(answer(1)["result"]["content"], "from-the-sandbox", "{job}");
    // A sandbox agent is not the Project Manager: the database tools are not its.
    assert_eq!(answer(2)["error"]["type"], "not_allowed", "{job}");
    assert_eq!(answer(3)["status"], "success", "{job}");
    // No JWT (header.payload.signature, base64url of `{"`) anywhere in the sandbox's
    // environment.
    assert_eq!(lines[4], "0", "{job}");
    assert_eq!(job["run_diagnostics"]["mcp"]["requests"], 4, "{job}");

    // The task's owner downloads what the sandbox stored.
    let listed = user.get(&format!("/v1/tasks/{id}/artifacts")).await;
    let artifact = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "out/made.txt")
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    let bytes = user
        .download(&format!(
            "/v1/tasks/{id}/artifacts/{}",
            artifact["artifact_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(bytes, b"made in a sandbox");

    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    let audit: Vec<(String, String, String, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT tool_name, decision, subject_type, job_id FROM mcp_tool_call_audit_log \
         ORDER BY created_at, id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let job_id: uuid::Uuid = result["jobs"][0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        audit,
        vec![
            (
                "memory.add".into(),
                "allow".into(),
                "sandbox".into(),
                Some(job_id)
            ),
            (
                "memory.retrieve".into(),
                "allow".into(),
                "sandbox".into(),
                Some(job_id)
            ),
            (
                "db.task.get".into(),
                "deny".into(),
                "sandbox".into(),
                Some(job_id)
            ),
            (
                "artifact.put".into(),
                "allow".into(),
                "sandbox".into(),
                Some(job_id)
            ),
        ]
    );
    // The token was minted for the delivery and is nowhere in the database.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE payload::text ~ 'eyJ[A-Za-z0-9_-]+[.]eyJ' \
         OR result::text ~ 'eyJ[A-Za-z0-9_-]+[.]eyJ'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(stored, 0);
}
