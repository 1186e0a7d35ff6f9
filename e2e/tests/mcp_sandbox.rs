//! A sandbox agent calls the orchestrator's MCP gateway (issue 11) with every real process:
//! the orchestrator mints the job's token at dispatch, the node manager hands the worker the
//! gateway's URL, and the job's shell reaches `$CYNODE_MCP_URL` through its pod's sidecar and
//! its own socket on the worker, which attaches the token. The sandbox never sees a token; the
//! gateway audits the call under the job.

mod node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{NodeManager, Orchestrator, User};
use serde_json::json;
use sqlx::Connection;

/// A POSIX shell `mcp TOOL ARGUMENTS_JSON` for busybox: one stateless MCP 2026-07-28
/// `tools/call` with `wget`, printing the JSON-RPC answer.
const MCP_SHELL_CLIENT: &str = r#"mcp() {
  meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"sh","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}'
  body="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,$meta}}"
  wget -q -O - --header 'Content-Type: application/json' \
    --header 'Accept: application/json, text/event-stream' \
    --header 'MCP-Protocol-Version: 2026-07-28' --header 'Mcp-Method: tools/call' \
    --header "Mcp-Name: $1" --post-data "$body" "$CYNODE_MCP_URL"
  echo
}
"#;

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
    assert_eq!(lines.len(), 4, "{job}");
    let answer = |i: usize| -> serde_json::Value {
        let rpc: serde_json::Value = serde_json::from_str(lines[i]).expect(lines[i]);
        rpc["result"]["structuredContent"].clone()
    };
    assert_eq!(answer(0)["status"], "success", "{job}");
    assert_eq!(answer(1)["result"]["content"], "from-the-sandbox", "{job}");
    // A sandbox agent is not the Project Manager: the database tools are not its.
    assert_eq!(answer(2)["error"]["type"], "not_allowed", "{job}");
    // No JWT (header.payload.signature, base64url of `{"`) anywhere in the sandbox's
    // environment.
    assert_eq!(lines[3], "0", "{job}");
    assert_eq!(job["run_diagnostics"]["mcp"]["requests"], 3, "{job}");

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
