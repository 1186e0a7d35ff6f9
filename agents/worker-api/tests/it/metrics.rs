//! `/metrics` of the real worker API binary: on its own listener only, parsed by a standard
//! parser, and moving as a real sandbox runs.

use cynode_e2e::metrics::{sample, scrape};
use cynode_e2e::worker::Worker;
use cynode_e2e::{DevEnv, free_port};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn metrics_move_as_a_sandbox_runs() {
    let env = DevEnv::load();
    let port = free_port();
    let worker = Worker::start(
        &env,
        &["--metrics-listen".into(), format!("127.0.0.1:{port}")],
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let (_, before) = scrape(&url).await;
    assert_eq!(
        sample(&before, "cynode_worker_sandboxes_running", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &before,
            "cynode_worker_sandbox_run_seconds",
            &[("status", "completed")]
        ),
        None
    );
    // Not on the API listener, and nothing else on the metrics one.
    let api = worker
        .client
        .get(format!("{}/metrics", worker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    let other = reqwest::get(format!("http://127.0.0.1:{port}/v1/worker/jobs:run"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    let job_id = Uuid::new_v4();
    let (status, result) = worker
        .run_job(job_id, json!({"command": ["sh", "-c", "echo hi"]}))
        .await;
    assert_eq!(status, 200, "{result}");
    let (text, after) = scrape(&url).await;
    assert_eq!(
        sample(&after, "cynode_worker_sandboxes_running", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &after,
            "cynode_worker_sandbox_run_seconds",
            &[("status", "completed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&after, "cynode_worker_sandbox_start_seconds", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &after,
            "cynode_worker_http_requests",
            &[
                ("route", "/v1/worker/jobs:run"),
                ("method", "POST"),
                ("status", "200")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(&job_id.to_string()),
        "a job id in a label: {text}"
    );
}

#[tokio::test]
async fn a_sandbox_model_call_is_counted_by_model_with_its_tokens() {
    let env = DevEnv::load();
    let port = free_port();
    cynode_e2e::worker::inference_proxy_binary();
    let worker = Worker::start(
        &env,
        &[
            "--inference-url".into(),
            env.inference_url.clone(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
        ],
    )
    .await;
    let body = json!({
        "model": env.inference_model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 4
    })
    .to_string();
    let script = format!(
        r#"body='{body}'
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "${{#body}}" "$body" | nc 127.0.0.1 11434 | head -n 1"#
    );
    let (status, result) = worker
        .run_job(
            Uuid::new_v4(),
            json!({"command": ["sh", "-c", script], "use_inference": true, "timeout_seconds": 120}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let used = &result["run_diagnostics"]["inference"];
    assert_eq!(used["requests"], 1, "{result}");
    let (text, scrape) = scrape(&format!("http://127.0.0.1:{port}/metrics")).await;
    let model = env.inference_model.as_str();
    assert_eq!(
        sample(
            &scrape,
            "cynode_worker_sandbox_inference_requests",
            &[("model", model)]
        ),
        Some(1.0),
        "{text}"
    );
    for direction in ["prompt", "completion"] {
        assert_eq!(
            sample(
                &scrape,
                "cynode_worker_sandbox_inference_tokens",
                &[("model", model), ("direction", direction)]
            ),
            used[format!("{direction}_tokens")].as_f64(),
            "{direction}: {text}"
        );
    }
}
