//! The workflow engine and API against real components: a real PostgreSQL, the real worker API
//! (real Podman sandboxes) and a scripted PM model (see pm.rs for the stack). The graph's
//! decisions are unit-tested in `workflow/mod.rs`; here: what a run leaves behind (jobs with
//! deterministic ids, checkpoints, steps), resumption after a kill, one driver per task across
//! orchestrators, cancel; and the workflow API (`/v1/workflow/*`, the spec's BDD scenarios).

use crate::common;

use std::time::Duration;

use common::pm::{PM_ON, checkpoint, pm_stack, prompt_task, steps, wait_requests};
use common::{LIMIT, Orchestrator, assert_problem, finished};
use cynode_e2e::scripted_model::Reply;
use cynode_orchestrator::Role;
use cynode_orchestrator::workflow::store::{self, Acquired};
use serde_json::{Value, json};
use uuid::Uuid;

const SHORT_LEASE: (&str, &str) = ("WORKFLOW_LEASE_TTL", "3s");
/// Resume loops that look for open tasks many times within one lease lifetime.
const FAST_RESUME: (&str, &str) = ("WORKFLOW_RESUME_INTERVAL", "200ms");

/// The id the engine gives attempt `attempt` of step `index` (0-based) of `task`.
fn step_job(task: &str, index: usize, attempt: u32) -> String {
    let task = Uuid::parse_str(task).unwrap();
    Uuid::new_v5(&task, format!("step-{index}-attempt-{attempt}").as_bytes()).to_string()
}

/// Another orchestrator of the PM stack, on its database, with the short workflow lease and a
/// fast resume loop.
async fn short_lease_orchestrator_on(database_url: &str) -> Orchestrator {
    Orchestrator::start_on(
        database_url,
        Role::All,
        &[PM_ON, &[SHORT_LEASE, FAST_RESUME]].concat(),
    )
    .await
}

/// The task's job ids, oldest first.
async fn job_ids(o: &Orchestrator, task: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id::text FROM jobs WHERE task_id = $1::uuid ORDER BY created_at, id")
        .bind(task)
        .fetch_all(&o.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_two_step_plan_runs_both_steps_verifies_and_finalizes() {
    let (o, model, node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::plan(&[&["echo first-step"], &["echo second-step"]]),
        Reply::pass(),
        Reply::pass(),
        Reply::answer("Both steps ran."),
    ]);
    let pref = o
        .http
        .put(format!("{}/v1/prefs/user/output.summary_style", o.gw))
        .bearer_auth(&admin)
        .json(&json!({"value": "concise", "value_type": "string"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pref.status(), 201);
    let task = prompt_task(&o, &admin, "run two steps").await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "Both steps ran.");
    let id = task["id"].as_str().unwrap();
    let expected = vec![step_job(id, 0, 1), step_job(id, 1, 1)];
    assert_eq!(
        job_ids(&o, id).await,
        expected,
        "one job per step, ids derived"
    );
    let mut ran = expected.clone();
    ran.sort();
    assert_eq!(node.jobs_run(), ran, "the worker ran each once");
    let requests = model.requests();
    assert_eq!(requests.len(), 4);
    let second = requests[2]["messages"][1]["content"].as_str().unwrap();
    assert!(second.contains("second-step"), "{second}");

    let (last, state) = checkpoint(&o, id).await.expect("a checkpoint");
    assert_eq!(last, "finalize_summary");
    assert_eq!(state["current_step_index"], 2);
    assert_eq!(state["attempts_by_step"], json!({"0": 1, "1": 1}));
    assert_eq!(state["plan"]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(state["verification"]["status"], "pass");
    // load_task_context read the preferences through the gateway, as the PM, audited; the
    // plan call saw them and the state keeps where they came from.
    assert_eq!(
        state["preferences_effective"]["effective"]["output.summary_style"],
        "concise"
    );
    assert_eq!(
        state["preferences_effective"]["sources"][0]["scope_type"],
        "user"
    );
    assert!(
        requests[0].to_string().contains("output.summary_style"),
        "{}",
        requests[0]
    );
    let audited: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tool_name, subject_type, status FROM mcp_tool_call_audit_log \
         WHERE task_id = $1::uuid ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(&o.db)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [
            ("db.preference.effective", "pm", "success"),
            ("artifact.list", "pm", "success")
        ]
        .map(|(t, s, st)| (t.to_owned(), s.to_owned(), st.to_owned()))
    );
    assert_eq!(state["summary"], "Both steps ran.");
    // The lease was released.
    let holder: Option<String> =
        sqlx::query_scalar("SELECT holder_id FROM task_workflow_leases WHERE task_id = $1::uuid")
            .bind(id)
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(holder, None);
    let actions: Vec<_> = steps(&o, &admin, id)
        .await
        .iter()
        .map(|s| s["decision"]["action"].clone())
        .collect();
    assert_eq!(
        actions,
        ["plan", "run", "verify", "run", "verify", "answer"].map(|a| json!(a))
    );
}

#[tokio::test]
async fn a_failed_verification_retries_the_step_with_the_remedy_and_then_passes() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::plan(&[&["echo wrong"]]),
        Reply::fail("the output lacks the marker", &["echo fixed-marker"]),
        Reply::pass(),
        Reply::answer("Fixed on the second try."),
    ]);
    let task = prompt_task(&o, &admin, "print the marker").await;
    assert_eq!(task["status"], "completed", "{task}");
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        job_ids(&o, id).await,
        [step_job(id, 0, 1), step_job(id, 0, 2)]
    );
    let retried = model.requests()[2]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(retried.contains("fixed-marker"), "{retried}");
    let steps = steps(&o, &admin, id).await;
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert_eq!(steps[3]["decision"]["attempt"], 2);
    assert_eq!(
        steps[3]["decision"]["commands"],
        json!(["echo fixed-marker"])
    );
    let why = steps[3]["decision"]["why"].as_str().unwrap();
    assert!(
        why.contains("print what was asked"),
        "the remedy is shown: {why}"
    );
    let (last, state) = checkpoint(&o, id).await.unwrap();
    assert_eq!(last, "finalize_summary");
    assert_eq!(state["attempts_by_step"], json!({"0": 2}));
}

#[tokio::test]
async fn a_step_that_keeps_failing_verification_fails_the_task_with_the_findings() {
    let (o, model, _node, admin) = pm_stack(&[("PM_STEP_RETRIES", "1")]).await;
    model.script([
        Reply::plan(&[&["echo nope"]]),
        Reply::fail("first miss", &[]),
        Reply::fail("still no marker", &[]),
    ]);
    let task = prompt_task(&o, &admin, "print the marker").await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(
        task["summary"],
        "step 1 failed verification after 2 attempts: still no marker"
    );
    let id = task["id"].as_str().unwrap();
    assert_eq!(model.requests().len(), 3, "no summary call");
    let (last, state) = checkpoint(&o, id).await.unwrap();
    assert_eq!(last, "mark_failed");
    assert_eq!(state["attempts_by_step"], json!({"0": 2}));
    assert_eq!(
        state["verification"]["findings"],
        json!(["still no marker"])
    );
    // Both attempts ran the same commands (no remedy proposed), each as its own job.
    let jobs = job_ids(&o, id).await;
    assert_eq!(&jobs[..2], [step_job(id, 0, 1), step_job(id, 0, 2)]);
}

#[tokio::test]
async fn a_direct_answer_finalizes_at_once_and_bad_output_marks_the_task_failed() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::answer("Just the answer."),
        Reply::Content(json!({"action": "plan", "steps": []}).to_string()),
    ]);
    let task = prompt_task(&o, &admin, "answer me").await;
    assert_eq!(task["status"], "completed", "{task}");
    let id = task["id"].as_str().unwrap();
    assert!(job_ids(&o, id).await.is_empty());
    let (last, state) = checkpoint(&o, id).await.unwrap();
    assert_eq!(last, "finalize_summary");
    assert_eq!(state["plan"]["answer"], "Just the answer.");

    let task = prompt_task(&o, &admin, "plan nothing").await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["summary"], "the model's plan has no steps");
    let id = task["id"].as_str().unwrap();
    let (last, state) = checkpoint(&o, id).await.unwrap();
    assert_eq!(last, "mark_failed");
    assert_eq!(state["failure"], "the model's plan has no steps");
}

#[tokio::test]
async fn a_killed_orchestrator_mid_step_resumes_without_running_the_step_again() {
    let (mut o, model, node, admin) = pm_stack(&[SHORT_LEASE]).await;
    model.script([
        Reply::plan(&[&["sleep 2; echo slow-first"], &["echo second"]]),
        Reply::pass(),
        Reply::pass(),
        Reply::answer("Resumed and done."),
    ]);
    let task = o.create_task(&admin, json!({"prompt": "two steps"})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    // Step 1's job is dispatched (its id checkpointed) and running: stop the orchestrator.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let last = checkpoint(&o, &id).await.map(|(last, _)| last);
        if last.as_deref() == Some("dispatch_step") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dispatched: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, state) = checkpoint(&o, &id).await.unwrap();
    assert_eq!(state["current_job_id"], json!(step_job(&id, 0, 1)));
    o.stop().await;
    assert_eq!(model.requests().len(), 1, "stopped before the verification");
    let task_id = Uuid::parse_str(&id).unwrap();
    let holder: Option<String> =
        sqlx::query_scalar("SELECT holder_id FROM task_workflow_leases WHERE task_id = $1")
            .bind(task_id)
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(holder, None, "a graceful stop releases its drivers' leases");
    // A SIGKILL releases nothing: hold the lease as the killed process would have, so that the
    // next start resumes the task only once the lease expired.
    let killed = store::acquire(
        &o.db,
        task_id,
        "a-killed-orchestrator",
        Uuid::new_v4(),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(killed, Acquired::Started);

    let o = short_lease_orchestrator_on(&o.database_url).await;
    let task = o.wait_task(&admin, &id, LIMIT, finished).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["summary"], "Resumed and done.");
    let expected = vec![step_job(&id, 0, 1), step_job(&id, 1, 1)];
    assert_eq!(
        job_ids(&o, &id).await,
        expected,
        "step 1 was not enqueued again"
    );
    let mut ran = expected;
    ran.sort();
    assert_eq!(node.jobs_run(), ran, "the worker ran each job once");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1::uuid")
        .bind(step_job(&id, 0, 1))
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(attempts, 1, "delivered once");
    let verified = model.requests()[1]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(verified.contains("slow-first"), "{verified}");
}

#[tokio::test]
async fn two_orchestrators_on_one_database_never_drive_one_task_at_once() {
    let (o, model, _node, admin) = pm_stack(&[SHORT_LEASE, FAST_RESUME]).await;
    let other = short_lease_orchestrator_on(&o.database_url).await;
    model.script([
        Reply::HoldThen(json!({"action": "answer", "answer": "held"}).to_string()),
        Reply::answer("a second driver"),
    ]);
    let task = o.create_task(&admin, json!({"prompt": "hold on"})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    wait_requests(&model, "the plan was never asked", |r| !r.is_empty()).await;
    // Both resume loops look every 200 ms, and the lease (3 s) is renewed by its holder: past
    // a lease lifetime, through some forty resume rounds, no other driver starts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        model.requests().len(),
        1,
        "a second driver planned the task"
    );
    let task_id = Uuid::parse_str(&id).unwrap();
    let taken = store::acquire(
        &other.db,
        task_id,
        "intruder",
        Uuid::new_v4(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(taken, Acquired::Held);
    model.release();
    let task = o.wait_task(&admin, &id, LIMIT, finished).await;
    assert_eq!(task["summary"], "held");
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn cancel_stops_the_workflow() {
    let (o, model, _node, admin) = pm_stack(&[]).await;
    model.script([
        Reply::plan(&[&["sleep 20"], &["echo never"]]),
        Reply::pass(),
    ]);
    let task = o.create_task(&admin, json!({"prompt": "long"})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while checkpoint(&o, &id).await.map(|(l, _)| l).as_deref() != Some("dispatch_step") {
        assert!(tokio::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(o.cancel(&admin, &id).await.status(), 200);
    let task = o.wait_task(&admin, &id, LIMIT, finished).await;
    assert_eq!(task["status"], "canceled");
    // The driver noticed and released its lease; nothing more was asked or run.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let holder: Option<String> = sqlx::query_scalar(
            "SELECT holder_id FROM task_workflow_leases WHERE task_id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&o.db)
        .await
        .unwrap();
        if holder.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        model.requests().len(),
        1,
        "no verification of a canceled step"
    );
    assert_eq!(job_ids(&o, &id).await, [step_job(&id, 0, 1)]);
    // At most the canceled job was collected; nothing was verified.
    let last = checkpoint(&o, &id).await.unwrap().0;
    assert!(
        ["dispatch_step", "collect_result"].contains(&last.as_str()),
        "{last}"
    );
}

// The workflow API (`workflow_start_resume_lease` scenarios and its edges).

const RUNNER_TOKEN: &str = "workflow-runner-token-0123456789";

async fn api_stack() -> (Orchestrator, String) {
    let o = Orchestrator::start(&[("WORKFLOW_RUNNER_BEARER_TOKEN", RUNNER_TOKEN)]).await;
    let admin = o.admin_token().await;
    // A script task: no node takes it, and no engine driver claims it (it is not a prompt task).
    let task = o.create_script_task(&admin, "echo hi").await;
    (o, task)
}

async fn call(o: &Orchestrator, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    o.post_raw(&format!("{}{path}", o.cp), token, body.to_string())
        .await
}

async fn ok(o: &Orchestrator, path: &str, body: Value) -> Value {
    let resp = call(o, path, Some(RUNNER_TOKEN), body).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn start(o: &Orchestrator, task: &str, holder: &str, key: Option<Uuid>) -> reqwest::Response {
    let mut body = json!({"task_id": task, "holder_id": holder});
    if let Some(key) = key {
        body["idempotency_key"] = json!(key);
    }
    call(o, "/v1/workflow/start", Some(RUNNER_TOKEN), body).await
}

#[tokio::test]
async fn workflow_start_returns_a_run_id_and_a_second_holder_gets_409() {
    let (o, task) = api_stack().await;
    let resp = start(&o, &task, "runner-1", None).await;
    assert_eq!(resp.status(), 200);
    let started: Value = resp.json().await.unwrap();
    assert_eq!(started["status"], "started");
    assert!(Uuid::parse_str(started["run_id"].as_str().unwrap()).is_ok());
    assert_eq!(started["run_id"], started["lease_id"]);
    let (holder, ttl): (String, f64) = sqlx::query_as(
        "SELECT holder_id, extract(epoch FROM expires_at - now())::float8
         FROM task_workflow_leases WHERE task_id = $1::uuid",
    )
    .bind(&task)
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!(holder, "runner-1");
    assert!((3500.0..=3600.0).contains(&ttl), "default TTL 1 h: {ttl}");

    assert_problem(
        start(&o, &task, "runner-2", None).await,
        409,
        "active workflow",
    )
    .await;
    // Same holder under another lease is not the same run either.
    assert_problem(
        start(&o, &task, "runner-1", None).await,
        409,
        "active workflow",
    )
    .await;
}

#[tokio::test]
async fn workflow_start_twice_by_the_same_holder_and_lease_is_already_running() {
    let (o, task) = api_stack().await;
    let key = Uuid::new_v4();
    let first: Value = start(&o, &task, "runner-1", Some(key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["status"], "started");
    assert_eq!(first["lease_id"], json!(key));
    let resp = start(&o, &task, "runner-1", Some(key)).await;
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["status"], "already_running");
    assert_eq!(again["run_id"], json!(key));
}

#[tokio::test]
async fn workflow_checkpoint_then_resume_returns_the_last_node() {
    let (o, task) = api_stack().await;
    assert_eq!(start(&o, &task, "runner-1", None).await.status(), 200);
    let saved = json!({"task_id": task, "current_step_index": 0, "plan": {"steps": []}});
    let resp = call(
        &o,
        "/v1/workflow/checkpoint",
        Some(RUNNER_TOKEN),
        json!({"task_id": task, "state": saved.to_string(), "last_node_id": "plan_steps"}),
    )
    .await;
    assert_eq!(resp.status(), 204);
    let resumed = ok(&o, "/v1/workflow/resume", json!({"task_id": task})).await;
    assert_eq!(resumed["task_id"], json!(task));
    assert_eq!(resumed["last_node_id"], "plan_steps");
    let state: Value = serde_json::from_str(resumed["state"].as_str().unwrap()).unwrap();
    assert_eq!(
        state, saved,
        "the state is JSON text on the wire, unchanged"
    );
    assert!(resumed["updated_at"].is_string());
    // An upsert: a second checkpoint replaces the first.
    let resp = call(
        &o,
        "/v1/workflow/checkpoint",
        Some(RUNNER_TOKEN),
        json!({"task_id": task, "state": "{}", "last_node_id": "dispatch_step"}),
    )
    .await;
    assert_eq!(resp.status(), 204);
    let resumed = ok(&o, "/v1/workflow/resume", json!({"task_id": task})).await;
    assert_eq!(resumed["last_node_id"], "dispatch_step");
    assert_eq!(o.count("workflow_checkpoints").await, 1);
}

#[tokio::test]
async fn workflow_release_frees_the_lease_for_another_holder() {
    let (o, task) = api_stack().await;
    let started: Value = start(&o, &task, "runner-1", None)
        .await
        .json()
        .await
        .unwrap();
    let release = json!({"task_id": task, "lease_id": started["lease_id"]});
    for _ in 0..2 {
        let resp = call(
            &o,
            "/v1/workflow/release",
            Some(RUNNER_TOKEN),
            release.clone(),
        )
        .await;
        assert_eq!(resp.status(), 204, "idempotent");
    }
    let resp = start(&o, &task, "runner-2", None).await;
    assert_eq!(resp.status(), 200);
    let second: Value = resp.json().await.unwrap();
    assert_eq!(second["status"], "started");
    // Releasing with the old lease id does not free runner-2's lease.
    let resp = call(&o, "/v1/workflow/release", Some(RUNNER_TOKEN), release).await;
    assert_eq!(resp.status(), 204);
    assert_problem(
        start(&o, &task, "runner-3", None).await,
        409,
        "active workflow",
    )
    .await;
}

#[tokio::test]
async fn an_expired_lease_is_free() {
    let (o, task) = api_stack().await;
    let resp = call(
        &o,
        "/v1/workflow/start",
        Some(RUNNER_TOKEN),
        json!({"task_id": task, "holder_id": "runner-1", "expires_in_sec": 1}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(start(&o, &task, "runner-2", None).await.status(), 200);
}

#[tokio::test]
async fn the_workflow_api_needs_its_bearer_token_and_is_closed_without_one() {
    let (o, task) = api_stack().await;
    let body = json!({"task_id": task, "holder_id": "runner-1"});
    for path in [
        "/v1/workflow/start",
        "/v1/workflow/resume",
        "/v1/workflow/checkpoint",
        "/v1/workflow/release",
    ] {
        assert_problem(call(&o, path, None, body.clone()).await, 401, "Bearer").await;
        assert_problem(
            call(&o, path, Some("wrong-token"), body.clone()).await,
            401,
            "invalid",
        )
        .await;
    }
    assert_eq!(o.count("task_workflow_leases").await, 0, "nothing changed");

    let closed = Orchestrator::start(&[]).await;
    let resp = call(&closed, "/v1/workflow/start", Some(RUNNER_TOKEN), body).await;
    assert_problem(resp, 401, "WORKFLOW_RUNNER_BEARER_TOKEN is not set").await;
}

#[tokio::test]
async fn bad_workflow_requests_are_400_or_404_and_change_nothing() {
    let (o, task) = api_stack().await;
    let unknown = Uuid::new_v4();
    let bad = |body: Value| (body, 400);
    let cases = [
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task})),
            "holder_id",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task, "holder_id": " "})),
            "holder_id",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": "nope", "holder_id": "r"})),
            "task_id",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task, "holder_id": "h".repeat(257)})),
            "holder_id",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task, "holder_id": "r\u{0}"})),
            "NUL",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task, "holder_id": "r", "expires_in_sec": 0})),
            "expires_in_sec",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task, "holder_id": "r", "expires_in_sec": 86401})),
            "expires_in_sec",
        ),
        (
            "/v1/workflow/start",
            bad(json!({"task_id": task, "holder_id": "r", "extra": 1})),
            "extra",
        ),
        (
            "/v1/workflow/start",
            (json!({"task_id": unknown, "holder_id": "r"}), 404),
            "not found",
        ),
        (
            "/v1/workflow/resume",
            (json!({"task_id": task}), 404),
            "no checkpoint",
        ),
        (
            "/v1/workflow/checkpoint",
            bad(json!({"task_id": task, "state": "not json", "last_node_id": "plan_steps"})),
            "state",
        ),
        (
            "/v1/workflow/checkpoint",
            bad(json!({"task_id": task, "state": "[1]", "last_node_id": "plan_steps"})),
            "state",
        ),
        (
            "/v1/workflow/checkpoint",
            bad(json!({"task_id": task, "state": {"a": 1}, "last_node_id": "plan_steps"})),
            "state",
        ),
        (
            "/v1/workflow/checkpoint",
            bad(json!({"task_id": task, "state": "{}", "last_node_id": "dance"})),
            "last_node_id",
        ),
        (
            "/v1/workflow/checkpoint",
            (
                json!({"task_id": unknown, "state": "{}", "last_node_id": "plan_steps"}),
                404,
            ),
            "not found",
        ),
        (
            "/v1/workflow/release",
            bad(json!({"task_id": task})),
            "lease_id",
        ),
    ];
    for (path, (body, status), needle) in cases {
        let resp = call(&o, path, Some(RUNNER_TOKEN), body.clone()).await;
        assert_eq!(resp.status(), status, "{path} {body}");
        assert_problem(resp, status, needle).await;
    }
    assert_eq!(o.count("task_workflow_leases").await, 0);
    assert_eq!(o.count("workflow_checkpoints").await, 0);

    // The document states the bounds the server enforces.
    let doc = o.openapi(&o.cp).await;
    for path in ["start", "resume", "checkpoint", "release"] {
        let op = &doc["paths"][format!("/v1/workflow/{path}")]["post"];
        assert!(op.is_object(), "{path}");
        assert_eq!(op["security"][0]["workflow_bearer"], json!([]), "{path}");
    }
    let start = &doc["components"]["schemas"]["StartRequest"]["properties"];
    assert_eq!(start["holder_id"]["minLength"], 1);
    assert_eq!(start["holder_id"]["maxLength"], 256);
    assert!(
        start["holder_id"]["pattern"].is_string(),
        "not blank, no NUL"
    );
    assert_eq!(start["expires_in_sec"]["minimum"], 1);
    assert_eq!(start["expires_in_sec"]["maximum"], 86400);
}
