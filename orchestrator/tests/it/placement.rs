//! Placement, capacity and drain against a real PostgreSQL, with worker doubles for nodes.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A node's capability report with labels, models and a concurrency limit.
fn report(
    slug: &str,
    worker: &WorkerDouble,
    labels: &[&str],
    models: &[&str],
    max: Option<u32>,
) -> Value {
    let mut cap = capability(slug, &worker.url);
    cap["node"]["labels"] = json!(labels);
    cap["inference"]["available_models"] = json!(models);
    cap["inference"]["running"] = json!(!models.is_empty());
    cap["sandbox"] = json!({"supported": true, "features": []});
    if let Some(max) = max {
        cap["sandbox"]["max_concurrency"] = json!(max);
    }
    cap
}

async fn task(o: &Orchestrator, token: &str, script: &str, extra: Value) -> String {
    let mut body = json!({"prompt": script, "input_mode": "script"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    o.create_task(token, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ran_on(worker: &WorkerDouble, task_id: &str) -> bool {
    worker
        .received()
        .iter()
        .any(|r| r.task_id.to_string() == task_id)
}

async fn waiting_with(o: &Orchestrator, token: &str, id: &str, reason: &str) -> Value {
    o.wait_task(token, id, Duration::from_secs(20), |t| {
        t["wait_reason"] == reason
    })
    .await
}

#[tokio::test]
async fn jobs_land_only_where_they_fit_and_others_wait_with_a_reason() {
    let o = Orchestrator::start(&[]).await;
    let gpu = WorkerDouble::start(Mode::Instant).await;
    let model = WorkerDouble::start(Mode::Instant).await;
    let plain = WorkerDouble::start(Mode::Instant).await;
    Node::ready_with(&o, &gpu, &report("n-gpu", &gpu, &["gpu", "eu"], &[], None)).await;
    Node::ready_with(&o, &model, &report("n-model", &model, &[], &["smol"], None)).await;
    Node::ready_with(&o, &plain, &report("n-plain", &plain, &[], &[], None)).await;
    let admin = o.admin_token().await;

    let labelled = task(
        &o,
        &admin,
        "echo l",
        json!({"requirements": {"labels": ["gpu"]}}),
    )
    .await;
    let inference = task(&o, &admin, "echo i", json!({"use_inference": true})).await;
    let named = task(
        &o,
        &admin,
        "echo m",
        json!({"requirements": {"model": "smol"}}),
    )
    .await;
    for id in [&labelled, &inference, &named] {
        assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");
    }
    assert!(ran_on(&gpu, &labelled) && !ran_on(&model, &labelled) && !ran_on(&plain, &labelled));
    assert!(
        ran_on(&model, &inference),
        "an inference job goes where a model is served"
    );
    assert!(ran_on(&model, &named));
    let task_view = o.get(&admin, &format!("/v1/tasks/{labelled}")).await.1;
    assert_eq!(task_view["requirements"], json!({"labels": ["gpu"]}));
    assert!(task_view.get("wait_reason").is_none(), "{task_view}");

    // What no node offers waits, says why, and can be canceled.
    let missing = task(
        &o,
        &admin,
        "echo x",
        json!({"requirements": {"model": "llama-70b"}}),
    )
    .await;
    waiting_with(&o, &admin, &missing, "no node serves model llama-70b").await;
    let huge = task(
        &o,
        &admin,
        "echo y",
        json!({"requirements": {"min_memory_mb": 1_000_000}}),
    )
    .await;
    waiting_with(&o, &admin, &huge, "no node has 1000000 MB of memory").await;
    let both = task(
        &o,
        &admin,
        "echo z",
        json!({"requirements": {"labels": ["gpu", "us"]}}),
    )
    .await;
    waiting_with(&o, &admin, &both, "no node has the labels gpu, us").await;
    // Jobs behind them are not held up.
    let after = task(&o, &admin, "echo after", json!({})).await;
    assert_eq!(o.wait_finished(&admin, &after).await["status"], "completed");
    let canceled = o.cancel(&admin, &missing).await;
    assert_eq!(canceled.status(), 200);
    assert_eq!(
        o.get(&admin, &format!("/v1/tasks/{missing}")).await.1["status"],
        "canceled"
    );

    // A node that comes to serve the model gets the waiting job at once (no recheck delay).
    let late = WorkerDouble::start(Mode::Instant).await;
    Node::ready_with(
        &o,
        &late,
        &report("n-late", &late, &["gpu", "us"], &[], None),
    )
    .await;
    let done = o
        .wait_task(&admin, &both, Duration::from_secs(3), finished)
        .await;
    assert_eq!(done["status"], "completed");
    assert!(ran_on(&late, &both));
    for worker in [&gpu, &model, &plain, &late] {
        assert!(!ran_on(worker, &missing) && !ran_on(worker, &huge));
    }
}

#[tokio::test]
async fn equal_nodes_share_the_work_and_capacity_is_respected() {
    let o = Orchestrator::start(&[]).await;
    let workers = [
        WorkerDouble::start(Mode::Block).await,
        WorkerDouble::start(Mode::Block).await,
        WorkerDouble::start(Mode::Block).await,
    ];
    for (i, w) in workers.iter().enumerate() {
        let max = if i == 2 { Some(0) } else { Some(2) };
        Node::ready_with(&o, w, &report(&format!("eq-{i}"), w, &[], &[], max)).await;
    }
    let admin = o.admin_token().await;
    let ids = o.create_echo_tasks(&admin, 5).await;
    for w in &workers[..2] {
        w.wait_received(Duration::from_secs(10), |r| r.len() == 2)
            .await;
    }
    // Four run (two on each node that takes work); the fifth waits for a slot.
    let fifth = waiting_with(&o, &admin, &ids[4], "all nodes at capacity").await;
    assert_eq!(fifth["status"], "queued");
    assert!(
        workers[2].received().is_empty(),
        "a node with capacity 0 gets nothing"
    );

    let (status, nodes) = o.get(&admin, "/v1/nodes").await;
    assert_eq!(status, 200, "{nodes}");
    let eq0 = &nodes["nodes"][0];
    assert_eq!(eq0["node_slug"], "eq-0");
    assert_eq!(eq0["running_jobs"], 2);
    assert_eq!(eq0["max_concurrency"], 2);
    assert_eq!(eq0["ready"], false, "full");
    assert_eq!(eq0["state"], "active");

    // The first node to free its slots gets the waiting job.
    workers[0].release();
    assert_eq!(
        o.wait_finished(&admin, &ids[4]).await["status"],
        "completed"
    );
    assert!(ran_on(&workers[0], &ids[4]));
    workers[1].release();
    for id in &ids {
        assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");
    }
    assert_eq!(workers[0].received().len(), 3);
    assert_eq!(workers[1].received().len(), 2);
}

#[tokio::test]
async fn a_drained_node_gets_no_new_work_and_past_its_deadline_its_job_runs_elsewhere() {
    let o = Orchestrator::start(&[]).await;
    let busy = WorkerDouble::start(Mode::Block).await;
    let spare = WorkerDouble::start(Mode::Instant).await;
    // Only `a-busy` at first, so the first job surely goes there.
    Node::ready(&o, "a-busy", &busy).await;
    let admin = o.admin_token().await;
    let first = o.create_script_task(&admin, "echo first").await;
    busy.wait_received(Duration::from_secs(10), |r| r.len() == 1)
        .await;
    Node::ready(&o, "b-spare", &spare).await;

    let resp = o.post_auth(&admin, "/v1/nodes/a-busy/drain").await;
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["state"], "drained");
    assert_eq!(info["running_jobs"], 1);
    assert!(info.get("drain_deadline").is_none(), "{info}");

    // New work goes elsewhere; the running job is left alone.
    let second = o.create_script_task(&admin, "echo second").await;
    assert_eq!(
        o.wait_finished(&admin, &second).await["status"],
        "completed"
    );
    assert!(ran_on(&spare, &second) && !ran_on(&busy, &second));
    assert_eq!(
        o.get(&admin, &format!("/v1/tasks/{first}")).await.1["status"],
        "running"
    );

    // A restart does not put a drained node back in service.
    Node::ready(&o, "a-busy", &busy).await;
    assert_eq!(
        o.get(&admin, "/v1/nodes/a-busy").await.1["state"],
        "drained"
    );

    // Past the deadline its job runs again on another node, and once only there.
    let resp = o
        .http
        .post(format!("{}/v1/nodes/a-busy/drain", o.gw))
        .bearer_auth(&admin)
        .json(&json!({"deadline_seconds": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done = o.wait_finished(&admin, &first).await;
    assert_eq!(done["status"], "completed");
    let deliveries = |w: &WorkerDouble| {
        w.received()
            .iter()
            .filter(|r| r.task_id.to_string() == first)
            .count()
    };
    assert_eq!(deliveries(&spare), 1, "ran on the spare node once");
    assert_eq!(deliveries(&busy), 1, "never sent to the drained node again");
    let (_, _, _, result) = job_row(&o.db, &first).await;
    assert!(result.is_some());
    let setbacks: Value = sqlx::query_scalar("SELECT setbacks FROM jobs WHERE task_id = $1::uuid")
        .bind(&first)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert!(
        setbacks.to_string().contains("was drained"),
        "the owner can read why it moved: {setbacks}"
    );

    let resp = o.post_auth(&admin, "/v1/nodes/a-busy/undrain").await;
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["state"], "active");
    assert!(info.get("drain_deadline").is_none());
    busy.release();
}

#[tokio::test]
async fn node_routes_are_for_the_admin_and_bad_input_changes_nothing() {
    // The double has no Telemetry API: pulls fail every 200 ms, and nothing else notices.
    let o = Orchestrator::start(&[("TELEMETRY_PULL_INTERVAL", "200ms")]).await;
    let worker = WorkerDouble::start(Mode::Instant).await;
    Node::ready(&o, "only", &worker).await;
    let admin = o.admin_token().await;
    o.create_user("alice", "correct-horse-a-2").await;
    let (alice, _) = o.login("alice", "correct-horse-a-2").await;

    for (method, path) in [
        ("GET", "/v1/nodes"),
        ("GET", "/v1/nodes/only"),
        ("POST", "/v1/nodes/only/drain"),
        ("POST", "/v1/nodes/only/undrain"),
    ] {
        let req = match method {
            "GET" => o.http.get(format!("{}{path}", o.gw)),
            _ => o.http.post(format!("{}{path}", o.gw)),
        };
        let resp = req.bearer_auth(&alice).send().await.unwrap();
        assert_problem(resp, 403, "is not allowed").await;
        let resp = match method {
            "GET" => o.http.get(format!("{}{path}", o.gw)),
            _ => o.http.post(format!("{}{path}", o.gw)),
        }
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} without a token");
    }
    assert_problem(
        o.post_auth(&admin, "/v1/nodes/nope/drain").await,
        404,
        "nope",
    )
    .await;
    assert_problem(
        o.post_auth(&admin, "/v1/nodes/nope/undrain").await,
        404,
        "nope",
    )
    .await;
    let (status, _) = o.get(&admin, "/v1/nodes/nope").await;
    assert_eq!(status, 404);
    for body in [
        json!({"deadline_seconds": 0}),
        json!({"deadline_seconds": 604_801}),
        json!({"deadline": 5}),
    ] {
        let resp = o
            .http
            .post(format!("{}/v1/nodes/only/drain", o.gw))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    assert_eq!(o.get(&admin, "/v1/nodes/only").await.1["state"], "active");

    let tasks_before = o.count("tasks").await;
    for requirements in [
        json!({"labels": ["has space"]}),
        json!({"labels": [""]}),
        json!({"min_memory_mb": 0}),
        json!({"min_cpu_cores": 0}),
        json!({"model": ""}),
        json!({"gpus": 1}),
        json!({"labels": (0..17).map(|i| format!("l{i}")).collect::<Vec<_>>()}),
    ] {
        let resp = o
            .http
            .post(format!("{}/v1/tasks", o.gw))
            .bearer_auth(&admin)
            .json(&json!({"prompt": "echo", "input_mode": "script", "requirements": requirements}))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "requirements").await;
    }
    assert_eq!(o.count("tasks").await, tasks_before);

    let id = o.create_script_task(&admin, "echo still").await;
    assert_eq!(o.wait_finished(&admin, &id).await["status"], "completed");
    let node = o.get(&admin, "/v1/nodes/only").await.1;
    assert!(node.get("telemetry").is_none(), "{node}");
    assert_eq!(node["state"], "active");
}
