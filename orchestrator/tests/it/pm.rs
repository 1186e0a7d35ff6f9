//! The Project Manager against real components: a real PostgreSQL, the real worker API (real
//! Podman sandboxes) and, behind the worker's `--inference-url`, a scripted model speaking the
//! OpenAI wire protocol, so that the workflow's control logic is deterministic. (The real model
//! is exercised end to end in e2e/tests/prompt_tasks.rs; the workflow's graph, checkpoints and
//! leases in workflow.rs.)

use crate::common;

use common::pm::{MODEL, PM_ON, PmNode, pm_stack, prompt_task, steps, wait_ready};
use common::{LIMIT, Mode, Node, Orchestrator, WorkerDouble, finished};
use cynode_e2e::scripted_model::{Reply, ScriptedModel};
use cynode_orchestrator::Role;
use serde_json::json;

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
async fn a_direct_answer_is_the_task_result_and_summary_with_usage_recorded() {
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
    assert_eq!(
        requests.len(),
        1,
        "the answer is the summary: no second call"
    );
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
    o.create_user("eve", "correct-horse-e-1").await;
    let (eve, _) = o.login("eve", "correct-horse-e-1").await;
    let (code, _) = o.get(&eve, &format!("/v1/tasks/{id}/steps")).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_planned_step_runs_in_the_sandbox_and_its_output_goes_to_the_verifier_and_summary() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::plan(&[&["echo marker-$((40+2))", "echo oops >&2; exit 3"]]),
        Reply::pass(),
        Reply::answer("The marker is 42."),
    ]);
    let task = prompt_task(&o, &admin, "What does the marker say?").await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "The marker is 42.");
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "plan, verify, summary");
    for (request, name) in
        requests
            .iter()
            .zip(["workflow_plan", "workflow_verification", "workflow_summary"])
    {
        assert_eq!(request["response_format"]["json_schema"]["name"], name);
    }
    let verified = requests[1]["messages"][1]["content"].as_str().unwrap();
    assert!(verified.contains("marker-42"), "{verified}");
    assert!(verified.contains("oops"), "{verified}");
    assert!(verified.contains("\"exit_code\":3"), "{verified}");
    let summarized = requests[2]["messages"][1]["content"].as_str().unwrap();
    assert!(summarized.contains("marker-42"), "{summarized}");

    let id = task["id"].as_str().unwrap();
    let steps = steps(&o, &admin, id).await;
    let actions: Vec<_> = steps
        .iter()
        .map(|s| s["decision"]["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [
            json!("plan"),
            json!("run"),
            json!("verify"),
            json!("answer")
        ]
    );
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    let jobs = result["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(steps[1]["job_id"], jobs[0]["id"]);
    assert_eq!(steps[1]["output"]["exit_code"], 3);
    // The prompt itself never reached a shell.
    let command = jobs[0]["result"]["stdout"].as_str().unwrap();
    assert!(!command.contains("What does"), "{command}");
}

#[tokio::test]
async fn a_plan_longer_than_allowed_fails_the_task() {
    let (o, model, _node, admin) = pm_stack(&[("PM_MAX_STEPS", "1")]).await;
    model.script([Reply::plan(&[&["true"], &["true"]])]);
    let task = prompt_task(&o, &admin, "two steps please").await;
    assert_eq!(task["status"], "failed", "{task}");
    let summary = task["summary"].as_str().unwrap();
    assert!(summary.contains("more than the 1 allowed"), "{summary}");
    // The schema the model was given allowed one step only.
    let schema = &model.requests()[0]["response_format"]["json_schema"]["schema"];
    assert_eq!(schema["anyOf"][1]["properties"]["steps"]["maxItems"], 1);
    let (_, result) = o
        .get(
            &admin,
            &format!("/v1/tasks/{}/result", task["id"].as_str().unwrap()),
        )
        .await;
    // Only the failure the planner recorded: nothing ran.
    assert_eq!(result["jobs"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["jobs"][0]["attempts"], 0, "{result}");
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
    model.script([Reply::plan(&[&["echo step-one"]]), Reply::Status(500)]);
    let task = prompt_task(&o, &admin, "one step").await;
    assert_eq!(task["status"], "failed", "{task}");
    let summary = task["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("the project manager model failed"),
        "{summary}"
    );
    let id = task["id"].as_str().unwrap();
    let steps = steps(&o, &admin, id).await;
    assert_eq!(steps.len(), 3, "plan, job, failed verification: {steps:?}");
    assert!(steps[2]["error"].is_string());
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
    // Short leases, so that the new orchestrator takes over the dead one's task soon.
    let lease = [("WORKFLOW_LEASE_TTL", "3s")];
    let (mut o, model, node, admin) = pm_stack(&lease).await;
    // The step's verification hangs until the first orchestrator is gone.
    model.script([
        Reply::plan(&[&["echo ran-once"]]),
        Reply::HoldThen(json!({"status": "fail", "findings": ["too late"]}).to_string()),
        Reply::pass(),
        Reply::answer("resumed answer"),
    ]);
    let task = o.create_task(&admin, json!({"prompt": "resume me"})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    common::pm::wait_requests(&model, "the verification never asked", |r| r.len() >= 2).await;
    o.stop().await;
    // The held reply now goes to a driver that no longer exists.
    model.release();
    let mut vars = PM_ON.to_vec();
    vars.extend_from_slice(&lease);
    let o = Orchestrator::start_on(&o.database_url, Role::All, &vars).await;
    let task = o.wait_task(&admin, &id, LIMIT, finished).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "resumed answer");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE task_id = $1::uuid")
        .bind(&id)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(jobs, 1, "the sandbox step ran once");
    assert_eq!(node.jobs_run().len(), 1);
    let requests = model.requests();
    assert_eq!(
        requests.len(),
        4,
        "plan, held verification, verification, summary"
    );
    let verified = requests[2]["messages"][1]["content"].as_str().unwrap();
    assert!(verified.contains("ran-once"), "{verified}");
    let steps = steps(&o, &admin, &id).await;
    let actions: Vec<_> = steps
        .iter()
        .map(|s| s["decision"]["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [
            json!("plan"),
            json!("run"),
            json!("verify"),
            json!("answer")
        ]
    );
}
