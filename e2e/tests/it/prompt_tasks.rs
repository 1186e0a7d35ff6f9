//! Prompt tasks end to end with the real processes and the real model: `cynode-orchestrator
//! all`, `cynode-node-manager` (and its worker API) on the real Podman socket, and the dev
//! llama.cpp server with SmolLM2-135M as the node's model. The orchestrator selects that model as
//! the Project Manager, warms it up, and answers a natural-language prompt with the model's text;
//! the same text as `commands` is literal shell and fails as a shell does; `cynork task create
//! --wait` prints the answer.
//!
//! What a 135M model says is not asserted, only that it said something.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::process::binary;
use node_support::{NodeManager, Orchestrator, User};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(180);
const PROMPT: &str = "Tell me what model you are";

/// Creates the task and waits for its result.
async fn run_task(user: &User, body: Value) -> Value {
    let id = user.create_task(body).await;
    user.finished_result(&id, LIMIT)
        .await
        .unwrap_or_else(|| panic!("task {id} unfinished after {LIMIT:?}"))
}

#[tokio::test]
async fn a_prompt_is_answered_by_the_real_model_and_the_same_text_as_commands_fails_as_shell() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let _node = NodeManager::start_serving(&env, &orchestrator).await;
    let user = User::login(&orchestrator).await;

    let result = run_task(&user, json!({"prompt": PROMPT})).await;
    assert_eq!(
        result["status"],
        "completed",
        "{result}\n{}",
        orchestrator.log()
    );
    let answer = result["answer"].as_str().unwrap_or_default();
    assert!(!answer.trim().is_empty(), "{result}");
    let id = result["task_id"].as_str().unwrap();
    let task = user.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(task["summary"].as_str(), Some(answer), "{task}");
    let steps = user.get(&format!("/v1/tasks/{id}/steps")).await;
    let steps = steps["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(steps.last().unwrap()["decision"]["action"], "answer");
    assert_eq!(steps[0]["model"], env.inference_model);

    let shell = run_task(&user, json!({"prompt": PROMPT, "input_mode": "commands"})).await;
    assert_eq!(shell["status"], "failed", "{shell}");
    assert_eq!(shell["jobs"][0]["result"]["exit_code"], 127, "{shell}");
    assert!(shell.get("answer").is_none(), "{shell}");

    // The CLI path a user takes: the answer is printed once the task is done.
    let config = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(binary("cynork"))
        .args(["--gateway", &orchestrator.gw, "-o", "json"])
        .args(["task", "create", PROMPT, "--wait"])
        .env("XDG_CONFIG_HOME", config.path())
        .env("CYNORK_TOKEN", user.token())
        .env_remove("CYNORK_API_KEY")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(printed["status"], "completed", "{printed}");
    assert!(
        !printed["answer"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .is_empty(),
        "{printed}"
    );
}
