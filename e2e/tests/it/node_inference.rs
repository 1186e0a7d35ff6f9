//! Inference on the node with the real processes (issue 8): capability reports list the served
//! models; a selected model the server lacks is pulled (Ollama) or fails the node naming it
//! (llama.cpp cannot pull); and a user's task with `use_inference` gets a real completion from
//! inside its sandbox, through the orchestrator, the node manager, the worker API, the pod's
//! sidecar and the dev llama.cpp server, with the counts in the job's result.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::ollama::OllamaDouble;
use node_support::{NodeManager, NodeOptions, Orchestrator, User};
use serde_json::json;

const START_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn capability_reports_list_the_served_and_loaded_models() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let options = NodeOptions::existing_inference(&env, &orchestrator);
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;
    let inference = orchestrator.latest_inference_report(&node.slug).await;
    assert_eq!(inference["running"], true, "{inference}");
    assert_eq!(
        inference["available_models"],
        json!([env.inference_model]),
        "{inference}"
    );
    assert_eq!(
        inference["loaded_models"],
        json!([env.inference_model]),
        "{inference}"
    );
}

#[tokio::test]
async fn a_selected_model_the_server_lacks_and_cannot_pull_fails_the_node_naming_it() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[("INFERENCE_MODEL", "no-such-model:7b")]).await;
    let options = NodeOptions::existing_inference(&env, &orchestrator);
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    // Fails fast: a llama.cpp server will never grow the model, so there is no waiting for the
    // start-up timeout (120 s here).
    let status = node.process.wait_exit(Duration::from_secs(60)).await;
    node.notify.drain(Duration::from_millis(300)).await;
    let status = status.unwrap_or_else(|| panic!("still running; log:\n{}", node.log()));
    assert!(!status.success(), "{status:?}");
    assert!(!node.notify.received().iter().any(|l| l == "READY=1"));
    let last = node.statuses().last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("failed:") && last.contains("`no-such-model:7b`"),
        "{last:?}"
    );
    assert!(
        last.contains(&env.inference_model),
        "names what it serves: {last:?}"
    );
    let row = orchestrator.node_row(&node.slug).await.expect("node row");
    assert_eq!(row.ack_status.as_deref(), Some("failed"), "{row:?}");
    assert!(
        row.ack_error
            .as_deref()
            .is_some_and(|e| e.contains("no-such-model:7b")),
        "{row:?}"
    );
}

#[tokio::test]
async fn ollama_pulls_the_selected_model_with_progress_before_the_ack() {
    let env = DevEnv::load();
    let ollama = OllamaDouble::start(&["other:1b"], &["tinyllama:1.1b"]).await;
    let orchestrator = Orchestrator::start(&env, &[("INFERENCE_MODEL", "tinyllama:1.1b")]).await;
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options.inference_url = ollama.url.clone();
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;
    assert_eq!(ollama.pulls(), ["tinyllama:1.1b"]);
    let statuses = node.statuses();
    let pulling = statuses
        .iter()
        .position(|s| s.contains("pulling model `tinyllama:1.1b`"))
        .unwrap_or_else(|| panic!("no pull progress in STATUS=: {statuses:?}"));
    let acking = statuses
        .iter()
        .position(|s| s.starts_with("acknowledging configuration"))
        .expect("ack status");
    assert!(
        pulling < acking,
        "the pull comes before the ack: {statuses:?}"
    );
    assert!(node.log().contains("model pulled"), "{}", node.log());
    // The first look after READY is reported at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut inference = orchestrator.latest_inference_report(&node.slug).await;
    while inference["available_models"]
        .as_array()
        .is_some_and(|m| m.len() < 2)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reported: {inference}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        inference = orchestrator.latest_inference_report(&node.slug).await;
    }
    assert_eq!(
        inference["available_models"],
        json!(["other:1b", "tinyllama:1.1b"]),
        "{inference}"
    );
    assert_eq!(
        inference["loaded_models"],
        json!([]),
        "Ollama loads on first use: {inference}"
    );
}

#[tokio::test]
async fn a_failed_ollama_pull_fails_the_node_with_ollamas_reason() {
    let env = DevEnv::load();
    let ollama = OllamaDouble::start(&[], &[]).await;
    let orchestrator = Orchestrator::start(&env, &[("INFERENCE_MODEL", "missing:3b")]).await;
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options.inference_url = ollama.url.clone();
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    let status = node.process.wait_exit(Duration::from_secs(60)).await;
    node.notify.drain(Duration::from_millis(300)).await;
    assert!(status.is_some_and(|s| !s.success()), "log:\n{}", node.log());
    assert!(!node.notify.received().iter().any(|l| l == "READY=1"));
    let last = node.statuses().last().cloned().unwrap_or_default();
    assert!(
        last.contains("`missing:3b`") && last.contains("file does not exist"),
        "{last:?}"
    );
    assert_eq!(ollama.pulls(), ["missing:3b"]);
}

#[tokio::test]
async fn a_task_with_use_inference_gets_a_completion_from_inside_its_sandbox() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let options = NodeOptions::existing_inference(&env, &orchestrator);
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;

    let user = User::login(&orchestrator).await;
    let body = json!({"model": env.inference_model, "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hello."}]})
    .to_string();
    let script = format!(
        "body='{body}'; printf 'POST /v1/chat/completions HTTP/1.1\\r\\nHost: localhost\\r\\n\
         Content-Type: application/json\\r\\nContent-Length: %s\\r\\n\\r\\n%s' \"${{#body}}\" \"$body\" \
         | nc 127.0.0.1 11434 | grep -q '\"choices\"' && echo GOT-COMPLETION"
    );
    let id = user
        .create_task(json!({"prompt": script, "input_mode": "script", "use_inference": true}))
        .await;
    let result = user
        .finished_result(&id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|| panic!("unfinished; node log:\n{}", node.log()));
    let job = &result["jobs"][0]["result"];
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(job["stdout"], "GOT-COMPLETION\n", "{result}");
    assert_eq!(
        job["run_diagnostics"]["inference"]["requests"], 1,
        "{result}"
    );
    assert!(
        job["run_diagnostics"]["inference"]["completion_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{result}"
    );
}

/// A host service that comes up after the node (systemd starts them side by side): with
/// `inference.existing_wait_seconds` the node waits for it, saying so, and uses it.
#[tokio::test]
async fn a_configured_existing_server_that_starts_late_is_waited_for() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let port = cynode_e2e::free_port();
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options.inference_url = format!("http://127.0.0.1:{port}");
    options.existing_wait_seconds = 90;
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    let waiting = format!("for the inference server at http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !node.statuses().iter().any(|s| s.contains(&waiting)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            node.statuses()
        );
        node.notify.drain(Duration::from_millis(200)).await;
    }
    let _server = env.spawn_llama_server(port);
    node.expect_ready(START_LIMIT).await;
    let inference = orchestrator.latest_inference_report(&node.slug).await;
    assert_eq!(inference["existing_service"], true, "{inference}");
}

#[tokio::test]
async fn an_existing_server_that_never_answers_fails_the_node_after_the_wait() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let port = cynode_e2e::free_port();
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options.inference_url = format!("http://127.0.0.1:{port}");
    options.existing_wait_seconds = 3;
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    let status = node.process.wait_exit(START_LIMIT).await;
    node.notify.drain(Duration::from_millis(300)).await;
    assert!(status.is_some_and(|s| !s.success()), "log:\n{}", node.log());
    let statuses = node.statuses();
    assert!(
        statuses.iter().any(|s| s.contains(&format!(
            "for the inference server at http://127.0.0.1:{port}"
        ))),
        "{statuses:?}"
    );
    assert!(
        statuses.last().is_some_and(|s| s.starts_with("failed:")),
        "{statuses:?}"
    );
    assert!(!node.notify.received().iter().any(|l| l == "READY=1"));
}
