//! `GET /metrics`: Prometheus text a standard parser reads, whose counts move as jobs run, and
//! whose labels hold route templates, never a requested path.

use crate::common;

use common::*;
use cynode_e2e::metrics::{Scrape, sample};

fn metrics_url(o: &Orchestrator) -> String {
    let addr = o
        .running
        .as_ref()
        .unwrap()
        .metrics_addr
        .expect("metrics listener");
    format!("http://{addr}/metrics")
}

async fn scrape(o: &Orchestrator) -> (String, Scrape) {
    cynode_e2e::metrics::scrape(&metrics_url(o)).await
}

#[tokio::test]
async fn metrics_parse_and_move_as_jobs_run() {
    let o = Orchestrator::start(&[("METRICS_LISTEN_ADDR", "127.0.0.1:0")]).await;
    // Only on their own listener: job and node counts are not for every API client.
    for base in [&o.gw, &o.cp] {
        assert_eq!(o.fetch(&format!("{base}/metrics")).await.status(), 404);
    }
    let other = metrics_url(&o).replace("/metrics", "/v1/tasks");
    assert_eq!(o.fetch(&other).await.status(), 404);
    let worker = WorkerDouble::start(Mode::Instant).await;
    Node::ready(&o, "n", &worker).await;
    let admin = o.admin_token().await;

    let (_, before) = scrape(&o).await;
    assert_eq!(
        sample(&before, "cynode_jobs", &[("status", "completed")]),
        None
    );
    assert_eq!(
        sample(&before, "cynode_nodes", &[("status", "active")]),
        Some(1.0)
    );

    let id = o.create_script_task(&admin, "echo x").await;
    assert_eq!(o.wait_finished(&admin, &id).await["status"], "completed");
    let secret_path = format!("/v1/no-such-route/{id}");
    assert_eq!(
        o.fetch(&format!("{}{secret_path}", o.gw)).await.status(),
        404
    );

    let (text, after) = scrape(&o).await;
    assert_eq!(
        sample(&after, "cynode_jobs", &[("status", "completed")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &after,
            "cynode_dispatch_duration_seconds",
            &[("outcome", "ran")]
        ),
        Some(1.0),
        "{text}"
    );
    let created = sample(
        &after,
        "cynode_http_requests",
        &[
            ("route", "/v1/tasks"),
            ("method", "POST"),
            ("status", "201"),
        ],
    );
    assert_eq!(created, Some(1.0), "{text}");
    let polled = sample(
        &after,
        "cynode_http_requests",
        &[
            ("route", "/v1/tasks/{id}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    );
    assert!(polled.unwrap_or(0.0) >= 1.0, "{text}");
    assert!(
        sample(
            &after,
            "cynode_http_requests",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains(&id), "a task id in a label: {text}");
    assert_eq!(
        sample(&after, "cynode_job_queue_wait_seconds", &[]),
        Some(1.0),
        "one job claimed: {text}"
    );
}

#[tokio::test]
async fn without_an_address_there_is_no_metrics_listener() {
    let o = Orchestrator::start(&[]).await;
    assert!(o.running.as_ref().unwrap().metrics_addr.is_none());
}
