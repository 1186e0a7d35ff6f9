//! `cynork audit mcp` with the real binary against the real gateway: MCP calls made over the
//! wire show up, filtered and paged as asked; bad flags are usage errors that send nothing.

use crate::common;

use common::{Cynork, Stack};
use cynode_e2e::mcp::McpClient;
use serde_json::json;

const USAGE: i32 = 2;

#[tokio::test]
async fn an_admin_reads_the_mcp_audit_filtered_and_paged() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let mcp = McpClient::new(&stack.mcp);
    let pm = stack.pm_token().await;
    let listed = mcp.call(Some(&pm), "node.list", json!({})).await;
    assert_eq!(listed["status"], "success", "{listed}");
    let unknown = mcp
        .call(Some(&pm), "node.get", json!({"node_slug": "nope"}))
        .await;
    assert_eq!(unknown["error"]["type"], "not_found");
    let anonymous = mcp.call(None, "node.list", json!({})).await;
    assert_eq!(anonymous["error"]["type"], "unauthenticated");

    let all = cli.run(&["audit", "mcp"]).await;
    let lines: Vec<&str> = all.ok().lines().collect();
    assert_eq!(lines.len(), 3, "{all:?}");
    // Newest first.
    assert!(
        lines[0].contains(
            " tool=node.list agent=anonymous decision=deny status=error error=unauthenticated "
        ),
        "{all:?}"
    );
    assert!(
        lines[1].contains(" tool=node.get agent=pm decision=allow status=error error=not_found "),
        "{all:?}"
    );
    assert!(
        lines[2].contains(" tool=node.list agent=pm decision=allow status=success ms="),
        "{all:?}"
    );

    let denied = cli
        .run(&["audit", "mcp", "--decision", "deny", "-o", "json"])
        .await
        .json();
    assert_eq!(denied["entries"].as_array().unwrap().len(), 1, "{denied}");
    assert_eq!(denied["entries"][0]["subject_type"], "anonymous");

    let first = cli
        .run(&["audit", "mcp", "--tool", "node.list", "-l", "1"])
        .await;
    let text = first.ok();
    let cursor = text
        .lines()
        .find_map(|l| l.strip_prefix("next_cursor="))
        .expect("a next page")
        .trim_matches('"')
        .to_owned();
    let second = cli
        .run(&["audit", "mcp", "--tool", "node.list", "--cursor", &cursor])
        .await;
    let rest: Vec<&str> = second.ok().lines().collect();
    assert_eq!(rest.len(), 1, "{second:?}");
    assert!(rest[0].contains("agent=pm"), "{second:?}");

    let bad = cli.run(&["audit", "mcp", "--decision", "maybe"]).await;
    assert_eq!(bad.code, USAGE, "{bad:?}");
    let bad_limit = cli.run(&["audit", "mcp", "-l", "0"]).await;
    assert_eq!(bad_limit.code, USAGE, "{bad_limit:?}");
}
