//! The dispatcher against a real PostgreSQL and a worker API double on real HTTP.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use cynode_contracts::user::{InputMode, JobStatus, TaskStatus};
use cynode_contracts::worker::SandboxSpec;
use cynode_e2e::free_port;
use cynode_orchestrator::Role;
use cynode_orchestrator::auth::Principal;
use cynode_orchestrator::jobs::{self, Conclusion, JobRecord, NewTask, Plan};
use serde_json::{Value, json};
use uuid::Uuid;

/// An orchestrator with one dispatchable node whose worker double runs in `mode`, and an admin
/// token.
async fn one_node(extra: &[(&str, &str)], mode: Mode) -> (Orchestrator, WorkerDouble, String) {
    let o = Orchestrator::start(extra).await;
    let worker = WorkerDouble::start(mode).await;
    Node::ready(&o, "n", &worker).await;
    let admin = o.admin_token().await;
    (o, worker, admin)
}

#[tokio::test]
async fn script_task_runs_on_the_node_with_its_own_token() {
    let o = Orchestrator::start(&[("SANDBOX_IMAGE", "localhost/cynode-sandbox:latest")]).await;
    let worker = WorkerDouble::start(Mode::Instant).await;
    let (_node, token) = Node::ready(&o, "node-1", &worker).await;
    let admin = o.admin_token().await;
    let task = o
        .create_task(
            &admin,
            json!({"prompt": "echo hi", "input_mode": "script", "task_name": "hello"}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");

    let received = worker.received();
    assert_eq!(received.len(), 1);
    let req = &received[0];
    assert_eq!(req.version, 1);
    assert_eq!(req.task_id.to_string(), id);
    assert_eq!(req.sandbox.command, ["sh", "-c", "echo hi"]);
    assert_eq!(req.sandbox.image, "localhost/cynode-sandbox:latest");
    assert_eq!(
        req.sandbox.timeout_seconds,
        Some(9),
        "the run ends before the 10 s dispatch HTTP timeout of these tests"
    );
    assert_eq!(
        *worker.state.rejected_tokens.lock().unwrap(),
        0,
        "the node's own token {token} was used"
    );

    let (_, result) = o.get(&admin, "/v1/tasks/hello/result").await;
    assert_eq!(result["status"], "completed");
    let job = &result["jobs"][0];
    assert_eq!(job["status"], "completed");
    assert_eq!(job["result"]["stdout"], "ran: echo hi\n");
    assert_eq!(job["result"]["exit_code"], 0);
    assert_eq!(
        job["result"]["run_diagnostics"]["double"], true,
        "the full worker response is stored"
    );
    assert!(job["started_at"].is_string() && job["ended_at"].is_string());
    let (_, logs) = o.get(&admin, "/v1/tasks/hello/logs").await;
    assert_eq!(
        (logs["stdout"].as_str(), logs["stderr"].as_str()),
        (Some("ran: echo hi\n"), Some("note\n"))
    );
    let (_, out) = o.get(&admin, "/v1/tasks/hello/logs?stream=stdout").await;
    assert_eq!(out["stderr"], "");
    assert_problem(o.cancel(&admin, "hello").await, 409, "already completed").await;

    // The prompt task never reaches the worker.
    o.create_task(&admin, json!({"prompt": "echo never"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(worker.received().len(), 1);
}

#[tokio::test]
async fn unacked_failed_or_inactive_nodes_never_get_a_job() {
    let o = Orchestrator::start(&[]).await;
    let unacked = WorkerDouble::start(Mode::Instant).await;
    let failed = WorkerDouble::start(Mode::Instant).await;
    let inactive = WorkerDouble::start(Mode::Instant).await;
    let good = WorkerDouble::start(Mode::Instant).await;

    let mut a = Node::register(&o, "a-unacked", &unacked.url).await;
    let cfg_a = a.fetch_config(&o).await.clone();
    unacked.set_token(&cfg_a.worker_api.orchestrator_bearer_token);
    let mut b = Node::register(&o, "b-failed", &failed.url).await;
    let cfg_b = b.fetch_config(&o).await.clone();
    failed.set_token(&cfg_b.worker_api.orchestrator_bearer_token);
    assert_eq!(
        b.ack(&o, &cfg_b.config_version, "failed").await.status(),
        204
    );
    Node::ready(&o, "c-inactive", &inactive).await;
    sqlx::query("UPDATE nodes SET status = 'inactive' WHERE node_slug = 'c-inactive'")
        .execute(&o.db)
        .await
        .unwrap();

    let admin = o.admin_token().await;
    let ids = o.create_echo_tasks(&admin, 3).await;
    // Give the dispatcher every chance to misbehave, then check it did not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'queued' AND attempts = 0")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(queued, 3);
    assert_eq!(o.fetch(&format!("{}/readyz", o.gw)).await.status(), 503);

    // A proper node appears: everything goes there and nowhere else.
    Node::ready(&o, "d-good", &good).await;
    for id in &ids {
        assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");
    }
    assert_eq!(good.received().len(), 3);
    assert!(
        unacked.received().is_empty()
            && failed.received().is_empty()
            && inactive.received().is_empty()
    );
}

#[tokio::test]
async fn worker_500_leaves_the_job_retryable_and_it_runs_later() {
    let (o, worker, admin) = one_node(&[("DISPATCH_RETRY_BASE", "1h")], Mode::Fail).await;
    let id = o.create_script_task(&admin, "echo x").await;
    worker.wait_received(LIMIT, |r| r.len() == 1).await;
    let row = wait_job(&o, &id, |(s, a, _, _)| s == "queued" && *a == 1).await;
    assert!(row.2.as_deref().unwrap().contains("500"), "{row:?}");
    assert!(row.3.is_none());
    assert_eq!(
        o.get(&admin, &format!("/v1/tasks/{id}")).await.1["status"],
        "queued"
    );

    // The worker recovers and the backoff ends: the same job runs, once.
    worker.set_mode(Mode::Instant);
    o.retry_now().await;
    assert_eq!(o.wait_finished(&admin, &id).await["status"], "completed");
    let row = job_row(&o.db, &id).await;
    assert_eq!((row.0.as_str(), row.1), ("completed", 2));
    let job_ids: HashSet<_> = worker.received().iter().map(|r| r.job_id).collect();
    assert_eq!(job_ids.len(), 1);
    assert_eq!(worker.completed().values().sum::<u32>(), 1);
}

#[tokio::test]
async fn an_interrupted_run_is_requeued_without_using_up_an_attempt() {
    // One attempt only: had the interruption counted, the task would fail at once.
    let settings = [
        ("DISPATCH_MAX_ATTEMPTS", "1"),
        ("DISPATCH_RETRY_BASE", "1h"),
    ];
    let (o, worker, admin) = one_node(&settings, Mode::Interrupted).await;
    let id = o.create_script_task(&admin, "echo x").await;
    worker.wait_received(LIMIT, |r| r.len() == 1).await;
    let row = wait_job(&o, &id, |(s, _, e, _)| s == "queued" && e.is_some()).await;
    assert_eq!(row.1, 0, "the interruption used up an attempt: {row:?}");
    assert!(row.2.as_deref().unwrap().contains("shut down"), "{row:?}");
    assert!(row.3.is_none(), "{row:?}");
    let task = o.get(&admin, &format!("/v1/tasks/{id}")).await.1;
    assert_eq!(task["status"], "queued", "{task}");

    // The node comes back (its pause ends): the job runs, on its one attempt.
    worker.set_mode(Mode::Instant);
    o.retry_now().await;
    assert_eq!(o.wait_finished(&admin, &id).await["status"], "completed");
    assert_eq!(job_row(&o.db, &id).await.1, 1);
    assert_eq!(worker.completed().values().sum::<u32>(), 1);
    // The owner sees the interruption in the result, in words for them.
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    let job = &result["jobs"][0];
    assert_eq!(job["attempts"], 1, "{result}");
    let setbacks = job["setbacks"].as_array().expect("setbacks");
    assert_eq!(setbacks.len(), 1, "{result}");
    assert_eq!(setbacks[0]["node"], "n");
    assert_eq!(
        setbacks[0]["why"],
        "node n stopped while the job ran; it will run again"
    );
    assert!(setbacks[0]["at"].is_string());
}

#[tokio::test]
async fn hanging_worker_times_out_and_the_job_stays_retryable() {
    let settings = [
        ("DISPATCH_HTTP_TIMEOUT", "1s"),
        ("DISPATCH_RETRY_BASE", "1h"),
    ];
    let (o, worker, admin) = one_node(&settings, Mode::Hang).await;
    let id = o.create_script_task(&admin, "sleep 1000").await;
    let row = wait_job(&o, &id, |(s, a, _, _)| s == "queued" && *a == 1).await;
    assert!(
        row.2.as_deref().unwrap().contains("did not answer"),
        "{row:?}"
    );

    worker.set_mode(Mode::Instant);
    o.retry_now().await;
    assert_eq!(o.wait_finished(&admin, &id).await["status"], "completed");
}

#[tokio::test]
async fn attempts_run_out_and_the_task_fails_with_the_reason() {
    let settings = [
        ("DISPATCH_MAX_ATTEMPTS", "2"),
        ("DISPATCH_RETRY_BASE", "50ms"),
    ];
    let (o, worker, admin) = one_node(&settings, Mode::Fail).await;
    let id = o.create_script_task(&admin, "echo x").await;
    let task = o.wait_finished(&admin, &id).await;
    assert_eq!(task["status"], "failed");
    assert!(
        task["summary"]
            .as_str()
            .unwrap()
            .contains("dispatch gave up")
    );
    let row = job_row(&o.db, &id).await;
    assert_eq!((row.0.as_str(), row.1), ("failed", 2));
    assert_eq!(row.3.unwrap()["status"], "failed");
    assert_eq!(worker.received().len(), 2);
}

#[tokio::test]
async fn several_jobs_dispatch_concurrently_and_cancel_drops_a_late_result() {
    let (o, worker, admin) = one_node(&[("DISPATCH_CONCURRENCY", "4")], Mode::Block).await;
    let ids = o.create_echo_tasks(&admin, 4).await;
    worker.wait_received(LIMIT, |r| r.len() == 4).await;
    assert_eq!(
        worker.in_flight(),
        4,
        "all four are with the worker at once"
    );
    for id in &ids {
        assert_eq!(
            o.get(&admin, &format!("/v1/tasks/{id}")).await.1["status"],
            "running"
        );
    }
    let cancel: Value = o.cancel(&admin, &ids[0]).await.json().await.unwrap();
    assert_eq!(cancel["canceled"], true);
    worker.release();
    for id in &ids[1..] {
        assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");
    }
    // The canceled task's result arrived after the cancel and was not recorded.
    let row = job_row(&o.db, &ids[0]).await;
    assert_eq!(row.0, "canceled");
    assert!(row.3.is_none());
    assert_eq!(
        o.get(&admin, &format!("/v1/tasks/{}", ids[0])).await.1["status"],
        "canceled"
    );
}

/// `logs?follow=true` of a task whose node takes the log request and never answers: once the
/// job has ended, the stream gives up on the node and sends the stored output, then the end.
#[tokio::test]
async fn a_node_that_never_answers_the_log_stream_does_not_hold_up_the_follow() {
    let (o, worker, admin) = one_node(&[], Mode::Block).await;
    let id = o.create_script_task(&admin, "echo live").await;
    worker.wait_received(LIMIT, |r| r.len() == 1).await;
    let mut resp = o
        .http
        .get(format!("{}/v1/tasks/{id}/logs?follow=true", o.gw))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The orchestrator asked the node, with the node's token.
    let asked = tokio::time::Instant::now() + LIMIT;
    while *worker.state.log_requests.lock().unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < asked,
            "the node was never asked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.release();
    let released = tokio::time::Instant::now();
    let mut body = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), resp.chunk())
        .await
        .expect("the stream goes on or ends within 30 s")
        .unwrap()
    {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        released.elapsed() < Duration::from_secs(20),
        "the stream waited for the silent node"
    );
    let job_id: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1::uuid")
        .bind(&id)
        .fetch_one(&o.db)
        .await
        .unwrap();
    let expected = [
        format!(r#"{{"job_id":"{job_id}","stream":"stdout","line":"ran: echo live"}}"#),
        format!(r#"{{"job_id":"{job_id}","stream":"stderr","line":"note"}}"#),
        format!(r#"{{"task_id":"{id}","status":"completed"}}"#),
    ];
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty() && !e.starts_with(':'))
        .collect();
    assert_eq!(
        events,
        [
            format!("event: line\ndata: {}", expected[0]),
            format!("event: line\ndata: {}", expected[1]),
            format!("event: end\ndata: {}", expected[2]),
        ],
        "{body}"
    );
}

/// A follow stream does not hold up the orchestrator's shutdown: it closes (without `end`, the
/// task is still running) and the process stops.
#[tokio::test]
async fn a_follow_stream_closes_when_the_orchestrator_stops() {
    let (mut o, worker, admin) = one_node(&[], Mode::Block).await;
    let id = o.create_script_task(&admin, "echo live").await;
    worker.wait_received(LIMIT, |r| r.len() == 1).await;
    let mut resp = o
        .http
        .get(format!("{}/v1/tasks/{id}/logs?follow=true", o.gw))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::timeout(Duration::from_secs(15), o.stop())
        .await
        .expect("the orchestrator stops while a log stream is open");
    let mut body = String::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(15), resp.chunk())
        .await
        .expect("the stream closes")
    {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!body.contains("event: end"), "{body}");
    worker.release();
}

#[tokio::test]
async fn a_job_longer_than_its_lease_stays_leased_while_the_worker_runs_it() {
    // The lease is 3 s; the worker holds the job for four leases. Without renewals the reaper
    // would take the job back and deliver it again.
    let settings = [("DISPATCH_LEASE", "3s"), ("DISPATCH_HTTP_TIMEOUT", "60s")];
    let (o, worker, admin) = one_node(&settings, Mode::Block).await;
    let id = o.create_script_task(&admin, "echo long").await;
    worker.wait_received(LIMIT, |r| r.len() == 1).await;
    let mut lease_moved = false;
    let first: chrono::DateTime<chrono::Utc> = lease_expiry(&o.db, &id).await;
    for _ in 0..24 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        lease_moved |= lease_expiry(&o.db, &id).await > first;
    }
    assert!(lease_moved, "the lease was never renewed");
    worker.release();
    let task = o.wait_finished(&admin, &id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(worker.received().len(), 1, "delivered again while running");
    assert_eq!(job_row(&o.db, &id).await.1, 1, "attempts");
}

async fn lease_expiry(db: &sqlx::PgPool, task_id: &str) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT lease_expires_at FROM jobs WHERE task_id = $1::uuid")
        .bind(task_id)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_orchestrators_on_one_database_dispatch_each_job_once() {
    let mut first = Orchestrator::start(&[("DISPATCH_CONCURRENCY", "3")]).await;
    let second = Orchestrator::start_on(
        &first.database_url,
        Role::ControlPlane,
        &[("DISPATCH_CONCURRENCY", "3")],
    )
    .await;
    let worker = WorkerDouble::start(Mode::Instant).await;
    Node::ready(&first, "n", &worker).await;
    let admin = first.admin_token().await;
    let ids = first.create_echo_tasks(&admin, 30).await;
    second.running.as_ref().unwrap().state.wake.notify_one();
    for id in &ids {
        assert_eq!(first.wait_finished(&admin, id).await["status"], "completed");
    }
    let received = worker.received();
    let unique: HashSet<_> = received.iter().map(|r| r.job_id).collect();
    assert_eq!(received.len(), 30, "each job delivered exactly once");
    assert_eq!(unique.len(), 30);
    let max_attempts: i32 = sqlx::query_scalar("SELECT max(attempts) FROM jobs")
        .fetch_one(&first.db)
        .await
        .unwrap();
    assert_eq!(max_attempts, 1);
    first.stop().await;
}

#[tokio::test]
async fn a_dead_node_is_paused_and_every_task_completes_on_the_healthy_one() {
    // Two attempts only: were the dead node to win each claim, every task would fail there.
    let o = Orchestrator::start(&[("DISPATCH_MAX_ATTEMPTS", "2")]).await;
    // Sorts first and has no jobs running, so it wins every tie; nothing listens on its port.
    let mut dead = Node::register(&o, "a-dead", &format!("http://127.0.0.1:{}", free_port())).await;
    let config = dead.fetch_config(&o).await.clone();
    assert_eq!(
        dead.ack(&o, &config.config_version, "applied")
            .await
            .status(),
        204
    );
    let alive = WorkerDouble::start(Mode::Instant).await;
    Node::ready(&o, "b-alive", &alive).await;
    let admin = o.admin_token().await;

    let ids = o.create_echo_tasks(&admin, 6).await;
    for id in &ids {
        assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");
    }
    let on_alive: HashSet<_> = alive.completed().keys().copied().collect();
    assert_eq!(on_alive.len(), 6, "every job ran on the healthy node");
    let slugs: Vec<String> = sqlx::query_scalar(
        "SELECT n.node_slug FROM jobs j JOIN nodes n ON n.id = j.node_id ORDER BY n.node_slug",
    )
    .fetch_all(&o.db)
    .await
    .unwrap();
    assert_eq!(slugs, vec!["b-alive"; 6]);
    let (failures, paused): (i32, bool) = sqlx::query_as(
        "SELECT dispatch_failures, dispatch_paused_until IS NOT NULL FROM nodes
         WHERE node_slug = 'a-dead'",
    )
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert!(
        failures >= 1 && paused,
        "the dead node was tried and paused"
    );
    let healthy: (i32, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT dispatch_failures, dispatch_paused_until FROM nodes WHERE node_slug = 'b-alive'",
    )
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!(healthy, (0, None));
}

#[tokio::test]
async fn deliveries_lost_to_one_restart_count_once_and_the_ack_ends_the_pause() {
    let settings = [("DISPATCH_CONCURRENCY", "4"), ("DISPATCH_RETRY_BASE", "1s")];
    let (o, worker, admin) = one_node(&settings, Mode::Block).await;
    let ids = o.create_echo_tasks(&admin, 4).await;
    worker.wait_received(LIMIT, |r| r.len() == 4).await;
    // The node goes away with four deliveries in flight: they all fail together.
    worker.set_mode(Mode::Fail);
    worker.release();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while failed_deliveries(&o.db).await < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "four failed deliveries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (failures, left) = node_pause(&o.db, "n").await;
    assert_eq!(failures, 1, "one outage, one failure");
    assert!(
        left.is_some_and(|s| s > 0.0 && s <= 1.0),
        "paused for the base delay once, not doubled per delivery: {left:?} s"
    );

    // The node comes back: it registers and acks its configuration again.
    worker.set_mode(Mode::Instant);
    let mut back = Node::register(&o, "n", &worker.url).await;
    let config = back.fetch_config(&o).await.clone();
    worker.set_token(&config.worker_api.orchestrator_bearer_token);
    assert_eq!(
        back.ack(&o, &config.config_version, "applied")
            .await
            .status(),
        204
    );
    assert_eq!(node_pause(&o.db, "n").await, (0, None));
    for id in &ids {
        assert_eq!(o.wait_finished(&admin, id).await["status"], "completed");
    }
}

/// Jobs put back after a failed delivery.
async fn failed_deliveries(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE status = 'queued' AND last_error IS NOT NULL",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// The node's consecutive failures and the seconds left of its pause.
async fn node_pause(db: &sqlx::PgPool, slug: &str) -> (i32, Option<f64>) {
    sqlx::query_as(
        "SELECT dispatch_failures, extract(epoch FROM dispatch_paused_until - now())::float8
         FROM nodes WHERE node_slug = $1",
    )
    .bind(slug)
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_node_not_heard_from_within_node_stale_after_gets_no_job() {
    let (o, worker, admin) = one_node(&[("NODE_STALE_AFTER", "60s")], Mode::Instant).await;
    sqlx::query("UPDATE nodes SET last_seen_at = now() - interval '2 minutes'")
        .execute(&o.db)
        .await
        .unwrap();
    assert_eq!(o.fetch(&format!("{}/readyz", o.gw)).await.status(), 503);
    let id = o.create_script_task(&admin, "echo late").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let row = job_row(&o.db, &id).await;
    assert_eq!((row.0.as_str(), row.1), ("queued", 0));
    assert!(worker.received().is_empty());

    // The node reports in again: it is fresh and takes the job.
    let node = Node::register(&o, "n", &worker.url).await;
    assert_eq!(
        node.report(&o, &capability("n", &worker.url))
            .await
            .status(),
        204
    );
    assert_eq!(o.wait_finished(&admin, &id).await["status"], "completed");
}

#[tokio::test]
async fn a_failed_dispatch_shows_its_owner_no_worker_internals() {
    let settings = [
        ("DISPATCH_MAX_ATTEMPTS", "2"),
        ("DISPATCH_RETRY_BASE", "1h"),
    ];
    let o = Orchestrator::start(&settings).await;
    let dead_url = format!("http://127.0.0.1:{}", free_port());
    let mut dead = Node::register(&o, "dead", &dead_url).await;
    let config = dead.fetch_config(&o).await.clone();
    assert_eq!(
        dead.ack(&o, &config.config_version, "applied")
            .await
            .status(),
        204
    );
    let admin = o.admin_token().await;
    let id = o.create_script_task(&admin, "echo x").await;
    let row = wait_job(&o, &id, |(s, a, _, _)| s == "queued" && *a == 1).await;
    assert!(
        row.2.as_deref().unwrap().contains(&dead_url),
        "the operator keeps the detail: {row:?}"
    );
    let (_, task) = o.get(&admin, &format!("/v1/tasks/{id}")).await;
    assert_eq!(
        task["summary"], "node dead did not take the job; will retry",
        "{task}"
    );

    o.retry_now().await;
    let task = o.wait_finished(&admin, &id).await;
    assert_eq!(task["status"], "failed");
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    let gave_up = "dispatch gave up after 2 attempts: the worker node did not take the job";
    assert_eq!(task["summary"], gave_up);
    assert_eq!(result["jobs"][0]["result"]["error"], gave_up);
    for text in [task.to_string(), result.to_string()] {
        assert!(
            !text.contains("127.0.0.1") && !text.contains("error sending request"),
            "{text}"
        );
    }
    let row = job_row(&o.db, &id).await;
    assert!(row.2.as_deref().unwrap().contains(&dead_url), "{row:?}");
}

#[tokio::test]
async fn cancel_locks_in_the_dispatchers_order_and_cannot_deadlock_with_it() {
    let o = Orchestrator::start(&[]).await;
    let admin = o.admin_token().await;
    let id = o.create_script_task(&admin, "echo x").await;
    // Hold the job the way a dispatcher recording an outcome does: job first, task next.
    let mut dispatcher = o.db.begin().await.unwrap();
    sqlx::query("UPDATE jobs SET updated_at = now() WHERE task_id = $1::uuid")
        .bind(&id)
        .execute(&mut *dispatcher)
        .await
        .unwrap();
    let cancel = tokio::spawn({
        let (http, url, token) = (
            o.http.clone(),
            format!("{}/v1/tasks/{id}/cancel", o.gw),
            admin.clone(),
        );
        async move { http.post(url).bearer_auth(token).send().await.unwrap() }
    });
    // Wait until the cancel waits on a lock.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&o.db)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancel never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Had the cancel locked the task first, this would deadlock and one side would fail.
    sqlx::query("UPDATE tasks SET updated_at = now() WHERE id = $1::uuid")
        .bind(&id)
        .execute(&mut *dispatcher)
        .await
        .expect("the task is not locked by the waiting cancel");
    dispatcher.commit().await.unwrap();
    let resp = cancel.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(job_row(&o.db, &id).await.0, "canceled");
}

#[tokio::test]
async fn a_command_that_exits_non_zero_fails_its_task_and_keeps_its_output() {
    let (o, _worker, admin) = one_node(&[], Mode::Exit(127)).await;
    let id = o.create_script_task(&admin, "Tell me a joke").await;
    let task = o.wait_finished(&admin, &id).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["summary"], "job failed with exit code 127");
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    assert_eq!(result["status"], "failed");
    let job = &result["jobs"][0];
    assert_eq!(job["status"], "failed");
    assert_eq!(job["result"]["exit_code"], 127, "{job}");
    assert_eq!(job["result"]["stderr"], "sh: Tell: not found\n");
    assert_eq!(job["result"]["stdout"], "ran: Tell me a joke\n");
    let (_, logs) = o
        .get(&admin, &format!("/v1/tasks/{id}/logs?stream=stderr"))
        .await;
    assert_eq!(logs["stderr"], "sh: Tell: not found\n");
    assert_problem(o.cancel(&admin, &id).await, 409, "already failed").await;
}

#[tokio::test]
async fn a_run_that_timed_out_fails_its_task() {
    let (o, _worker, admin) = one_node(&[], Mode::TimedOut).await;
    let id = o.create_script_task(&admin, "sleep 1000").await;
    let task = o.wait_finished(&admin, &id).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["summary"], "job timed out in the sandbox");
    let (_, result) = o.get(&admin, &format!("/v1/tasks/{id}/result")).await;
    assert_eq!(result["jobs"][0]["status"], "failed");
    assert_eq!(result["jobs"][0]["result"]["status"], "timeout");
}

fn shell(text: &str) -> SandboxSpec {
    SandboxSpec {
        image: String::new(),
        command: vec!["sh".into(), "-c".into(), text.into()],
        env: Default::default(),
        timeout_seconds: None,
        network_policy: None,
        use_inference: false,
        use_mcp: false,
        job_spec_json: None,
        resources: None,
    }
}

/// Opens a task the way the gateway does, with `plan` instead of the shell planner's.
async fn open_task(o: &Orchestrator, admin: &str, name: &str, plan: Plan) -> Uuid {
    let (_, me) = o.get(admin, "/v1/users/me").await;
    let owner: Uuid = me["id"].as_str().unwrap().parse().unwrap();
    let id = Uuid::new_v4();
    let mut tx = o.db.begin().await.unwrap();
    let task = NewTask {
        id,
        created_by: Principal {
            user_id: owner,
            api_key_id: None,
        },
        project_id: None,
        name,
        prompt: "plan it",
        // Not `prompt`: the orchestrator's Project Manager resumes open prompt tasks on its own,
        // and this test is the queue's open plan driven by the test itself.
        input_mode: InputMode::Script,
        use_inference: false,
        use_mcp: false,
        requirements: None,
    };
    jobs::open_task(&mut tx, &task, plan).await.unwrap();
    tx.commit().await.unwrap();
    o.running.as_ref().unwrap().state.wake.notify_one();
    id
}

async fn wait_jobs(
    o: &Orchestrator,
    task: Uuid,
    pred: impl Fn(&[JobRecord]) -> bool,
) -> Vec<JobRecord> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let jobs = jobs::jobs_of(&o.db, task).await.unwrap();
        if pred(&jobs) {
            return jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs never got there: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_open_plan_runs_several_jobs_and_completes_only_when_its_planner_concludes() {
    let (o, worker, admin) = one_node(&[], Mode::Instant).await;
    let id = open_task(&o, &admin, "planned", Plan::Open(vec![shell("echo 1")])).await;
    let all_completed = |jobs: &[JobRecord]| jobs.iter().all(|j| j.status == JobStatus::Completed);
    let done = wait_jobs(&o, id, all_completed).await;
    assert_eq!(done.len(), 1);
    let path = format!("/v1/tasks/{id}");
    assert_eq!(
        o.get(&admin, &path).await.1["status"],
        "running",
        "the planner is not done"
    );

    // A follow-up step for the same task; the planner reads its result.
    let second = jobs::enqueue(&o.db, id, &shell("echo 2")).await.unwrap();
    let done = wait_jobs(&o, id, |j| j.len() == 2 && all_completed(j)).await;
    assert_eq!(done[1].id, second);
    let step = jobs::job(&o.db, second).await.unwrap().unwrap();
    assert_eq!(step.result.unwrap()["stdout"], "ran: echo 2\n");
    assert_eq!(o.get(&admin, &path).await.1["status"], "running");

    let status = jobs::conclude(&o.db, id, Conclusion::Answer("two steps ran".into()))
        .await
        .unwrap();
    assert_eq!(status, TaskStatus::Completed);
    let (_, task) = o.get(&admin, &path).await;
    assert_eq!(
        (task["status"].as_str(), task["summary"].as_str()),
        (Some("completed"), Some("two steps ran"))
    );
    assert!(
        jobs::enqueue(&o.db, id, &shell("echo 3")).await.is_err(),
        "a finished task takes no more jobs"
    );
    let (_, result) = o.get(&admin, &format!("{path}/result")).await;
    assert_eq!(result["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(worker.received().len(), 2);
}

#[tokio::test]
async fn a_failed_step_fails_the_task_and_cancels_the_steps_left() {
    let (o, worker, admin) = one_node(&[("DISPATCH_CONCURRENCY", "1")], Mode::Exit(2)).await;
    // Two steps, one at a time: the first fails, so the second never runs.
    let id = open_task(
        &o,
        &admin,
        "two",
        Plan::Run(vec![shell("false"), shell("echo never")]),
    )
    .await;
    let task = o.wait_finished(&admin, &id.to_string()).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["summary"], "job failed with exit code 2");
    let steps = jobs::jobs_of(&o.db, id).await.unwrap();
    let statuses: Vec<JobStatus> = steps.iter().map(|j| j.status).collect();
    assert_eq!(
        statuses,
        [JobStatus::Failed, JobStatus::Canceled],
        "steps run in order"
    );
    assert!(steps[1].result.is_none() && steps[1].started_at.is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(worker.received().len(), 1);

    // A planner that gives up: the reason is a failed step like a refused plan's.
    let id = open_task(&o, &admin, "give-up", Plan::Open(vec![])).await;
    let path = format!("/v1/tasks/{id}");
    assert_eq!(o.get(&admin, &path).await.1["status"], "queued");
    let status = jobs::conclude(&o.db, id, Conclusion::Fail("nothing to do".into()))
        .await
        .unwrap();
    assert_eq!(status, TaskStatus::Failed);
    let (_, result) = o.get(&admin, &format!("{path}/result")).await;
    assert_eq!(result["status"], "failed");
    assert_eq!(
        result["jobs"][0]["result"],
        json!({"version": 1, "status": "failed", "error": "nothing to do"})
    );
}

async fn wait_job(
    o: &Orchestrator,
    task_id: &str,
    pred: impl Fn(&(String, i32, Option<String>, Option<Value>)) -> bool,
) -> (String, i32, Option<String>, Option<Value>) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let row = job_row(&o.db, task_id).await;
        if pred(&row) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job never got there: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
