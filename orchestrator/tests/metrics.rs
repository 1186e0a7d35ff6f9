//! `GET /metrics`: Prometheus text a standard parser reads, whose counts move as jobs run, and
//! whose labels hold route templates, never a requested path.

mod common;

use common::*;
use prometheus_parse::{Scrape, Value};

/// The value of `name` with `labels` (a histogram's: its observation count), if present.
fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => panic!("{name} is a summary"),
        })
}

async fn scrape(o: &Orchestrator) -> (String, Scrape) {
    let resp = o.fetch(&format!("{}/metrics", o.cp)).await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    (text, parsed)
}

#[tokio::test]
async fn metrics_parse_and_move_as_jobs_run() {
    let o = Orchestrator::start(&[]).await;
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
        "cynode_http_requests_total",
        &[
            ("route", "/v1/tasks"),
            ("method", "POST"),
            ("status", "201"),
        ],
    );
    assert_eq!(created, Some(1.0), "{text}");
    let polled = sample(
        &after,
        "cynode_http_requests_total",
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
            "cynode_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains(&id), "a task id in a label: {text}");
}
