//! `cynork node` and task requirements, with the real `cynork` binary against the real gateway
//! and a real worker API.

use crate::common;

use std::time::Duration;

use common::{Cynork, Stack};
use serde_json::Value;

const NOT_FOUND: i32 = 4;

/// `task get -o json` until `pred` holds, within 20 s.
async fn task_until(cli: &Cynork, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let task = cli.run(&["task", "get", id, "-o", "json"]).await.json();
        if pred(&task) {
            return task;
        }
        assert!(tokio::time::Instant::now() < deadline, "{task}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_admin_drains_and_undrains_a_node_and_waiting_tasks_say_why() {
    let mut stack = Stack::start_with(&[("TELEMETRY_PULL_INTERVAL", "1s")]).await;
    stack.add_node("n1").await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;

    // The control plane pulls the node's telemetry (every second here) and shows it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let node = loop {
        let node = cli.run(&["node", "get", "n1", "-o", "json"]).await.json();
        if node.get("telemetry").is_some() {
            break node;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no telemetry: {node}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(node["telemetry"]["info"]["node_slug"], "n1", "{node}");
    assert!(
        node["telemetry"]["stats"]["memory"]["total_mb"]
            .as_u64()
            .unwrap()
            > 0,
        "{node}"
    );

    let listed = cli.run(&["node", "list"]).await;
    let line = listed.ok().trim().to_owned();
    assert!(
        line.starts_with("node=n1 state=active ready=true jobs=0/-"),
        "{listed:?}"
    );

    let drained = cli.run(&["node", "drain", "n1", "--deadline", "600"]).await;
    assert!(drained.ok().contains("state=drained"), "{drained:?}");
    let json = cli.run(&["node", "get", "n1", "-o", "json"]).await.json();
    assert_eq!(json["state"], "drained");
    assert!(json["drain_deadline"].is_string(), "{json}");

    // A task made while the only node is drained waits and says so; undrain lets it run.
    let created = cli
        .run(&["task", "create", "--command", "echo placed", "-o", "json"])
        .await
        .json();
    let id = created["id"].as_str().unwrap().to_owned();
    task_until(&cli, &id, |t| t["wait_reason"] == "every node is drained").await;
    let shown = cli.run(&["task", "get", &id]).await;
    assert!(
        shown
            .ok()
            .contains(r#"wait_reason="every node is drained""#),
        "{shown:?}"
    );
    let undrained = cli.run(&["node", "undrain", "n1"]).await;
    assert!(undrained.ok().contains("state=active"), "{undrained:?}");
    let done = task_until(&cli, &id, |t| t["status"] == "completed").await;
    assert!(done.get("wait_reason").is_none(), "{done}");

    // Requirements from flags reach the gateway; one no node meets waits with its reason.
    let created = cli
        .run(&[
            "task",
            "create",
            "--command",
            "echo gpu",
            "--require-label",
            "gpu",
            "--min-memory-mb",
            "64",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["requirements"]["labels"][0], "gpu");
    assert_eq!(created["requirements"]["min_memory_mb"], 64);
    let id = created["id"].as_str().unwrap().to_owned();
    task_until(&cli, &id, |t| {
        t["wait_reason"] == "no node has the labels gpu"
    })
    .await;
    assert_eq!(cli.run(&["task", "cancel", &id, "-y"]).await.code, 0);

    let unknown = cli.run(&["node", "drain", "nope"]).await;
    assert_eq!(unknown.code, NOT_FOUND, "{unknown:?}");
    assert!(unknown.stderr.contains("nope"), "{unknown:?}");
}
