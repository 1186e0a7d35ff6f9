//! A minute without PostgreSQL, on a database server of the test's own (the shared one stays up
//! for everyone else): readiness says why, the gateway answers 503 instead of failing, runs that
//! finished during the outage are not lost, and everything resumes when the database is back.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use cynode_e2e::postgres::PrivatePostgres;
use cynode_orchestrator::Role;
use serde_json::json;

const OUTAGE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_minute_without_the_database_loses_nothing_and_everything_resumes() {
    let pg = PrivatePostgres::start();
    let o = Orchestrator::start_on(&pg.url(), Role::All, &[]).await;
    let worker = WorkerDouble::start(Mode::Block).await;
    Node::ready(&o, "n", &worker).await;
    let admin = o.admin_token().await;
    let ids = o.create_echo_tasks(&admin, 3).await;
    worker.wait_received(LIMIT, |r| r.len() == 3).await;

    pg.stop();
    let down = Instant::now();
    // The runs finish while the database is away: their results cannot be recorded yet.
    worker.set_mode(Mode::Instant);
    worker.release();
    let (code, reason) = o.readyz().await;
    assert_eq!((code, reason.as_str()), (503, "database unavailable"));
    let resp = o
        .http
        .post(format!("{}/v1/tasks", o.gw))
        .bearer_auth(&admin)
        .json(&json!({"prompt": "echo later", "input_mode": "commands"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(problem["status"], 503, "{problem}");

    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    pg.resume();

    let deadline = tokio::time::Instant::now() + LIMIT;
    while o.readyz().await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            o.readyz().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Delivered again once their leases ran out; every task completes.
    for id in &ids {
        let task = o
            .wait_task(&admin, id, Duration::from_secs(90), finished)
            .await;
        assert_eq!(task["status"], "completed", "{task}");
    }
    let after = o.create_echo_tasks(&admin, 1).await;
    assert_eq!(
        o.wait_finished(&admin, &after[0]).await["status"],
        "completed"
    );
}
