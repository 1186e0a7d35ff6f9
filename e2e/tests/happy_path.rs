//! The Phase 1 happy path with real processes: `cynode-orchestrator all` on a fresh PostgreSQL
//! database, `cynode-node-manager` (which spawns `cynode-worker-api`) on the real Podman socket,
//! and the dev environment's llama-server as the node's existing inference. A user logs in over
//! the gateway, creates a `commands` task, and its result carries the sandbox's stdout.

mod node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{NodeManager, NodeOptions, Orchestrator};
use serde_json::{Value, json};

#[tokio::test]
async fn a_commands_task_runs_in_a_sandbox_on_the_node_and_its_output_comes_back() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let options = NodeOptions::existing_inference(&env, &orchestrator);
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(Duration::from_secs(120)).await;
    let (code, reason) = orchestrator.readyz().await;
    assert_eq!(code, 200, "{reason}");

    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/v1/auth/login", orchestrator.gw))
        .json(&json!({"handle": "admin", "password": orchestrator.admin_password}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();

    let created = http
        .post(format!("{}/v1/tasks", orchestrator.gw))
        .bearer_auth(&token)
        .json(&json!({"prompt": "echo hello from the sandbox", "input_mode": "commands"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let task: Value = created.json().await.unwrap();
    let id = task["id"].as_str().expect("task id").to_owned();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let result = loop {
        let result: Value = http
            .get(format!("{}/v1/tasks/{id}/result", orchestrator.gw))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match result["status"].as_str() {
            Some("completed" | "failed" | "canceled") => break result,
            _ if tokio::time::Instant::now() > deadline => panic!(
                "task not finished: {result}\norchestrator:\n{}\nnode:\n{}",
                orchestrator.log(),
                node.log()
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    assert_eq!(result["status"], "completed", "{result}");
    let job = &result["jobs"][0];
    assert_eq!(job["status"], "completed", "{result}");
    assert_eq!(job["result"]["exit_code"], 0, "{result}");
    assert_eq!(
        job["result"]["stdout"].as_str().map(str::trim_end),
        Some("hello from the sandbox"),
        "{result}"
    );

    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
