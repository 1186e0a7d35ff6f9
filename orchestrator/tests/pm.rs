//! The Project Manager against real components: a real PostgreSQL, the real worker API (real
//! Podman sandboxes) and, behind the worker's `--inference-url`, a scripted model speaking the
//! OpenAI wire protocol, so that the loop's control logic is deterministic. (The real model is
//! exercised end to end in e2e/tests/prompt_tasks.rs.)

mod common;

use std::process::Stdio;

use common::{LIMIT, Mode, Node, Orchestrator, WorkerDouble, finished};
use cynode_e2e::DevEnv;
use cynode_e2e::process::{ChildGuard, binary, wait_http};
use cynode_e2e::scripted_model::{Reply, ScriptedModel};
use cynode_orchestrator::Role;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const MODEL: &str = "smollm2:135m";

/// A node whose worker API is the real binary, serving `model` from `inference_url`.
struct PmNode {
    _worker: ChildGuard,
    _mounts: tempfile::TempDir,
}

fn capability(slug: &str, worker_url: &str) -> Value {
    let mut cap = common::capability(slug, worker_url);
    cap["inference"] = json!({"supported": true, "mode": "allow", "existing_service": true,
        "running": true, "available_models": [MODEL], "loaded_models": [MODEL]});
    cap
}

impl PmNode {
    async fn start(o: &Orchestrator, slug: &str, inference_url: &str) -> Self {
        let env = DevEnv::load();
        let port = cynode_e2e::free_port();
        let worker_url = format!("http://127.0.0.1:{port}");
        let resp = o.register_node(&capability(slug, &worker_url)).await;
        assert!(resp.status().is_success(), "{}", resp.status());
        let mut node = Node {
            slug: slug.into(),
            bootstrap: resp.json().await.unwrap(),
            config: None,
        };
        let config = node.fetch_config(o).await.clone();
        let token = config.worker_api.orchestrator_bearer_token.clone();
        let mounts = tempfile::tempdir().unwrap();
        cynode_e2e::worker::inference_proxy_binary();
        let mut child = Command::new(binary("cynode-worker-api"))
            .arg("--bearer-token-stdin")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--podman-socket")
            .arg(&env.podman_socket)
            .arg("--mount-root")
            .arg(mounts.path())
            .arg("--default-image")
            .arg(&env.sandbox_image)
            .arg("--inference-url")
            .arg(inference_url)
            .env_remove("WORKER_API_BEARER_TOKEN")
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn cynode-worker-api");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{token}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        assert!(wait_http(&format!("{worker_url}/healthz"), 200, LIMIT).await);
        let acked = node.ack(o, &config.config_version, "applied").await;
        assert_eq!(acked.status(), 204);
        Self {
            _worker: ChildGuard(child),
            _mounts: mounts,
        }
    }
}

/// Waits until `/readyz` answers 503 with `reason`; fails with the last answer otherwise.
async fn readyz_becomes(o: &Orchestrator, reason: String) {
    let expected = (503, reason);
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut seen = o.readyz().await;
    while seen != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = o.readyz().await;
    }
    assert_eq!(seen, expected);
}

async fn wait_ready(o: &Orchestrator) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (code, reason) = o.readyz().await;
        if code == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {reason}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

const PM_ON: &[(&str, &str)] = &[("PM_REQUIRED", "true")];

/// An orchestrator whose PM runs on a scripted model, ready; and an admin token.
async fn pm_stack(extra: &[(&str, &str)]) -> (Orchestrator, ScriptedModel, PmNode, String) {
    let mut vars = PM_ON.to_vec();
    vars.extend_from_slice(extra);
    let o = Orchestrator::start(&vars).await;
    let model = ScriptedModel::start(MODEL).await;
    let node = PmNode::start(&o, "pm-node", &model.url).await;
    wait_ready(&o).await;
    let admin = o.admin_token().await;
    (o, model, node, admin)
}

async fn prompt_task(o: &Orchestrator, token: &str, prompt: &str) -> Value {
    let task = o.create_task(token, json!({"prompt": prompt})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    o.wait_finished(token, &id).await
}

async fn steps(o: &Orchestrator, token: &str, id: &str) -> Vec<Value> {
    let (code, body) = o.get(token, &format!("/v1/tasks/{id}/steps")).await;
    assert_eq!(code, 200, "{body}");
    body["steps"].as_array().unwrap().clone()
}

#[tokio::test]
async fn readyz_names_the_missing_step_until_the_pm_model_answered_its_warm_up() {
    let o = Orchestrator::start(PM_ON).await;
    assert_eq!(o.readyz().await, (503, "no dispatchable node".into()));

    // A dispatchable node that serves no model. The selection sees each new node on its next
    // pass (at once when it is not busy, later under load); until then the reason before holds.
    let bare = WorkerDouble::start(Mode::Instant).await;
    let _bare = Node::ready(&o, "bare", &bare).await;
    readyz_becomes(
        &o,
        format!("project manager model {MODEL} not available on any node"),
    )
    .await;

    // A node serving it, whose model holds the warm-up.
    let model = ScriptedModel::start(MODEL).await;
    model.hold_warmups(true);
    let _node = PmNode::start(&o, "pm-node", &model.url).await;
    readyz_becomes(&o, format!("warming up {MODEL} on pm-node")).await;
    assert_eq!(model.warmups(), 0);
    model.hold_warmups(false);
    wait_ready(&o).await;
    assert!(model.warmups() >= 1);
    assert_eq!(o.readyz().await, (200, "ready".into()));
}

#[tokio::test]
async fn an_answer_decision_is_the_task_result_and_summary_with_usage_recorded() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([Reply::answer("I am scripted.")]);
    // Created with an API key: the Project Manager's model calls are charged to it.
    let key = o.new_key(&admin, "pm usage").await;
    let task = prompt_task(
        &o,
        key["key"].as_str().unwrap(),
        "Tell me what model you are",
    )
    .await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "I am scripted.");
    let id = task["id"].as_str().unwrap();
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    assert_eq!(result["answer"], "I am scripted.");
    assert_eq!(
        result["jobs"],
        json!([]),
        "no sandbox job for a direct answer"
    );

    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["model"], MODEL);
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert_eq!(request["response_format"]["json_schema"]["strict"], true);
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(
        request["messages"][1],
        json!({"role": "user", "content": "Tell me what model you are"})
    );

    let steps = steps(&o, &admin, id).await;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["decision"]["action"], "answer");
    assert_eq!(steps[0]["prompt_tokens"], 11);
    assert_eq!(steps[0]["completion_tokens"], 7);
    let usage: (i64, i64, Option<String>) = sqlx::query_as(
        "SELECT prompt_tokens, completion_tokens, api_key_id::text FROM token_usage
         WHERE task_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!(usage, (11, 7, key["id"].as_str().map(str::to_owned)));

    // Another user sees neither the steps nor the task.
    o.create_user("eve", "eve-password-1").await;
    let (eve, _) = o.login("eve", "eve-password-1").await;
    let (code, _) = o.get(&eve, &format!("/v1/tasks/{id}/steps")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_run_decision_runs_in_the_sandbox_and_its_output_goes_back_to_the_model() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::run(&["echo marker-$((40+2))", "echo oops >&2; exit 3"]),
        Reply::answer("The marker is 42."),
    ]);
    let task = prompt_task(&o, &admin, "What does the marker say?").await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "The marker is 42.");
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let fed_back = requests[1]["messages"].as_array().unwrap();
    assert_eq!(fed_back.len(), 4, "system, prompt, decision, output");
    assert_eq!(fed_back[2]["role"], "assistant");
    let output = fed_back[3]["content"].as_str().unwrap();
    assert!(output.contains("marker-42"), "{output}");
    assert!(output.contains("oops"), "{output}");
    assert!(output.contains("\"exit_code\":3"), "{output}");

    let id = task["id"].as_str().unwrap();
    let steps = steps(&o, &admin, id).await;
    assert_eq!(steps.len(), 2);
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    let jobs = result["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(steps[0]["job_id"], jobs[0]["id"]);
    assert_eq!(steps[0]["output"]["exit_code"], 3);
    // The prompt itself never reached a shell.
    let command = jobs[0]["result"]["stdout"].as_str().unwrap();
    assert!(!command.contains("What does"), "{command}");
}

#[tokio::test]
async fn a_model_that_keeps_running_hits_the_step_bound() {
    let (o, model, _node, admin) = pm_stack(&[("PM_MAX_STEPS", "2")]).await;
    model.script([Reply::run(&["true"]), Reply::run(&["true"])]);
    let task = prompt_task(&o, &admin, "loop forever").await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["summary"], "step bound reached");
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    // The last allowed step's schema offers only an answer.
    let last = &requests[1]["response_format"]["json_schema"]["schema"];
    assert_eq!(last["properties"]["action"]["enum"], json!(["answer"]));
    let id = task["id"].as_str().unwrap();
    assert_eq!(steps(&o, &admin, id).await.len(), 2);
}

#[tokio::test]
async fn bad_model_output_is_recorded_and_fails_the_task() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::Content("I think you should run ls".into()),
        Reply::Content(json!({"action": "dance"}).to_string()),
    ]);
    for (prompt, reason) in [
        ("one", "not valid JSON"),
        ("two", "unknown action \"dance\""),
    ] {
        let task = prompt_task(&o, &admin, prompt).await;
        assert_eq!(task["status"], "failed", "{task}");
        let summary = task["summary"].as_str().unwrap();
        assert!(summary.contains(reason), "{summary}");
        let steps = steps(&o, &admin, task["id"].as_str().unwrap()).await;
        assert_eq!(steps.len(), 1);
        assert!(steps[0]["error"].as_str().unwrap().contains(reason));
        assert!(steps[0]["response"].is_string());
    }
}

#[tokio::test]
async fn a_backend_failure_mid_task_fails_it_and_drops_readiness() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.hold_warmups(true);
    model.script([Reply::run(&["echo step-one"]), Reply::Status(500)]);
    let task = prompt_task(&o, &admin, "two steps").await;
    assert_eq!(task["status"], "failed", "{task}");
    let summary = task["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("the project manager model failed"),
        "{summary}"
    );
    let id = task["id"].as_str().unwrap();
    let steps = steps(&o, &admin, id).await;
    assert_eq!(steps.len(), 2);
    assert!(steps[1]["error"].is_string());
    // Readiness dropped and waits for a new warm-up (held here).
    assert_eq!(
        o.readyz().await,
        (503, format!("warming up {MODEL} on pm-node"))
    );
    model.hold_warmups(false);
    wait_ready(&o).await;
}

#[tokio::test]
async fn a_killed_orchestrator_resumes_the_task_without_running_a_step_twice() {
    let (mut o, model, _node, admin) = pm_stack(&[]).await;
    // Step 0 runs a job; step 1's model call hangs until the first orchestrator is gone.
    model.script([
        Reply::run(&["echo ran-once"]),
        Reply::HoldThen(json!({"action":"answer","answer":"too late"}).to_string()),
        Reply::answer("resumed answer"),
    ]);
    let task = o.create_task(&admin, json!({"prompt": "resume me"})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while model.requests().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "second step never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    o.stop().await;
    // The held reply now goes to a driver that no longer exists.
    model.release();
    let o = Orchestrator::start_on(&o.database_url, Role::All, PM_ON).await;
    let task = o.wait_task(&admin, &id, LIMIT, finished).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "resumed answer");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE task_id = $1::uuid")
        .bind(&id)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(jobs, 1, "the sandbox step ran once");
    let steps = steps(&o, &admin, &id).await;
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[1]["decision"]["answer"], "resumed answer");
    assert_eq!(model.requests().len(), 3);
    let last = &model.requests()[2];
    let fed = last["messages"][3]["content"].as_str().unwrap();
    assert!(fed.contains("ran-once"), "{fed}");
}
