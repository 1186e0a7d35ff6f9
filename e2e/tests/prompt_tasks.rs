//! Prompt tasks end to end with the real processes and the real model: `cynode-orchestrator
//! all`, `cynode-node-manager` (and its worker API) on the real Podman socket, and the dev
//! llama.cpp server with SmolLM2-135M as the node's model. The orchestrator selects that model as
//! the Project Manager, warms it up, and answers a natural-language prompt with the model's text;
//! the same text as `commands` is literal shell and fails as a shell does.
//!
//! What a 135M model says is not asserted, only that it said something.

mod node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{NodeManager, NodeOptions, Orchestrator};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(180);
const PROMPT: &str = "Tell me what model you are";

async fn login(http: &reqwest::Client, o: &Orchestrator) -> String {
    let login: Value = http
        .post(format!("{}/v1/auth/login", o.gw))
        .json(&json!({"handle": "admin", "password": o.admin_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_owned()
}

async fn run_task(http: &reqwest::Client, o: &Orchestrator, token: &str, body: Value) -> Value {
    let task: Value = http
        .post(format!("{}/v1/tasks", o.gw))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = task["id"].as_str().expect("task id").to_owned();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let task: Value = http
            .get(format!("{}/v1/tasks/{id}", o.gw))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(
            task["status"].as_str(),
            Some("completed" | "failed" | "canceled")
        ) {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "unfinished: {task}\n{}",
            o.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_prompt_is_answered_by_the_real_model_and_the_same_text_as_commands_fails_as_shell() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let options = NodeOptions::existing_inference(&env, &orchestrator);
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(LIMIT).await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (code, reason) = orchestrator.readyz().await;
        if code == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready: {reason}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let http = reqwest::Client::new();
    let token = login(&http, &orchestrator).await;
    let task = run_task(&http, &orchestrator, &token, json!({"prompt": PROMPT})).await;
    assert_eq!(
        task["status"],
        "completed",
        "{task}\n{}",
        orchestrator.log()
    );
    let summary = task["summary"].as_str().unwrap_or_default();
    assert!(!summary.trim().is_empty(), "{task}");
    let id = task["id"].as_str().unwrap();
    let result: Value = http
        .get(format!("{}/v1/tasks/{id}/result", orchestrator.gw))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(result["answer"].as_str(), Some(summary), "{result}");
    let steps: Value = http
        .get(format!("{}/v1/tasks/{id}/steps", orchestrator.gw))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let steps = steps["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(steps.last().unwrap()["decision"]["action"], "answer");
    assert_eq!(steps[0]["model"], env.inference_model);

    let shell = run_task(
        &http,
        &orchestrator,
        &token,
        json!({"prompt": PROMPT, "input_mode": "commands"}),
    )
    .await;
    assert_eq!(shell["status"], "failed", "{shell}");
    let sid = shell["id"].as_str().unwrap();
    let result: Value = http
        .get(format!("{}/v1/tasks/{sid}/result", orchestrator.gw))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(result["jobs"][0]["result"]["exit_code"], 127, "{result}");
    assert!(result.get("answer").is_none(), "{result}");
}
