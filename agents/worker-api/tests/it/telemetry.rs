//! The Worker Telemetry API with the real binary on the real Podman socket: a job's sandbox
//! shows up in the inventory with its task and job, its create/start/stop/remove events and
//! its output lines; the worker's own start and stop are service log events; everything needs
//! the bearer token, and a bad query is a 400 problem.

use std::time::Duration;

use cynode_contracts::routes::worker as paths;
use cynode_contracts::telemetry::{
    ContainerAction, ContainerDetail, ContainerKind, ContainerList, ContainerStatus, LimitedBy,
    LogPage, LogStream, MAX_LOG_BYTES, NodeInfo, NodeStats, SourceKind, WORKER_API_SOURCE,
};
use cynode_e2e::DevEnv;
use cynode_e2e::worker::Worker;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

const PROBLEM_JSON: &str = "application/problem+json";
const SLUG: &str = "telemetry-test-node";

/// A worker with its own state directory (so its database is this test's alone).
async fn start(env: &DevEnv) -> (Worker, tempfile::TempDir) {
    let state_dir = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        env,
        &[
            "--state-dir".into(),
            state_dir.path().display().to_string(),
            "--node-slug".into(),
            SLUG.into(),
        ],
    )
    .await;
    (worker, state_dir)
}

/// `GET path?query` with `token` (none: no header); the status, content type and body.
async fn get_as(
    worker: &Worker,
    path: &str,
    query: &[(&str, &str)],
    token: Option<&str>,
) -> (u16, String, Value) {
    let mut request = worker
        .client
        .get(format!("{}{path}", worker.base))
        .query(query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.expect("worker API reachable");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, ctype, body)
}

/// An authorised `GET` that must answer 200 with a `T`.
async fn get<T: DeserializeOwned>(worker: &Worker, path: &str, query: &[(&str, &str)]) -> T {
    let (status, _, body) = get_as(worker, path, query, Some(&worker.token)).await;
    assert_eq!(status, 200, "{path} {query:?}: {body}");
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

async fn service_messages(worker: &Worker) -> Vec<String> {
    let page: LogPage = get(
        worker,
        paths::TELEMETRY_LOGS,
        &[
            ("source_kind", "service"),
            ("source_name", WORKER_API_SOURCE),
        ],
    )
    .await;
    assert!(
        page.events
            .iter()
            .all(|e| e.source_kind == SourceKind::Service
                && e.source_name == WORKER_API_SOURCE
                && e.container_id.is_none())
    );
    page.events.into_iter().map(|e| e.message).collect()
}

#[tokio::test]
async fn a_jobs_sandbox_its_lifecycle_and_output_are_in_the_telemetry_api() {
    let env = DevEnv::load();
    let (worker, state_dir) = start(&env).await;
    assert!(
        state_dir.path().join("telemetry/telemetry.db").exists(),
        "the database is under the state directory"
    );

    let job_id = Uuid::new_v4();
    let marker = format!("hello-telemetry-{}", job_id.simple());
    let (status, result) = worker
        .run_job(
            job_id,
            json!({"command": ["sh", "-c", format!("echo {marker}; echo second; echo oops >&2; exit 3")]}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["exit_code"], 3, "{result}");
    let task_id: Uuid = serde_json::from_value(result["task_id"].clone()).unwrap();

    // The inventory: one sandbox for the job, with its task, image and final state.
    let job = job_id.to_string();
    let list: ContainerList = get(
        &worker,
        paths::TELEMETRY_CONTAINERS,
        &[("job_id", &job), ("kind", "sandbox")],
    )
    .await;
    assert_eq!(list.containers.len(), 1, "{list:?}");
    assert!(list.next_page_token.is_none());
    let container = &list.containers[0];
    assert_eq!(container.job_id, Some(job_id));
    assert_eq!(container.task_id, Some(task_id));
    assert_eq!(container.kind, ContainerKind::Sandbox);
    assert_eq!(container.status, ContainerStatus::Exited);
    assert_eq!(container.exit_code, Some(3));
    assert_eq!(container.image_ref, env.sandbox_image);
    assert_eq!(container.container_name, format!("cynodeai-job-{job_id}"));
    assert_eq!(container.labels["cynodeai.job_id"], job);
    // Filters that exclude it do.
    let running: ContainerList = get(
        &worker,
        paths::TELEMETRY_CONTAINERS,
        &[("job_id", &job), ("status", "running")],
    )
    .await;
    assert!(running.containers.is_empty(), "{running:?}");
    let by_task: ContainerList = get(
        &worker,
        paths::TELEMETRY_CONTAINERS,
        &[("task_id", &task_id.to_string())],
    )
    .await;
    assert_eq!(by_task.containers, list.containers);

    // Its lifecycle, in order, each with the job's ids.
    let id = container.container_id.clone();
    let detail: ContainerDetail = get(&worker, &paths::telemetry_container(&id), &[]).await;
    assert_eq!(&detail.container, container);
    let actions: Vec<_> = detail.events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            ContainerAction::Create,
            ContainerAction::Start,
            ContainerAction::Stop,
            ContainerAction::Remove
        ],
        "{detail:?}"
    );
    assert!(
        detail.events.iter().all(|e| e.job_id == Some(job_id)
            && e.task_id == Some(task_id)
            && e.container_id == id)
    );
    assert_eq!(detail.events[2].exit_code, Some(3));
    assert_eq!(detail.events[2].details["ending"], "completed");

    // Its output, line by line, with the stream.
    let logs: LogPage = get(
        &worker,
        paths::TELEMETRY_LOGS,
        &[("source_kind", "container"), ("container_id", &id)],
    )
    .await;
    let lines: Vec<_> = logs
        .events
        .iter()
        .map(|e| (e.stream, e.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (Some(LogStream::Stdout), marker.as_str()),
            (Some(LogStream::Stdout), "second"),
            (Some(LogStream::Stderr), "oops"),
        ]
    );
    assert_eq!(logs.events[0].fields["job_id"], job);
    assert_eq!(logs.events[0].container_id.as_deref(), Some(id.as_str()));
    assert_eq!(logs.truncated.limited_by, LimitedBy::None);
    assert_eq!(logs.truncated.max_bytes, MAX_LOG_BYTES as u64);
    // Paged one at a time, then only stderr, then a window that ends before the run.
    let first: LogPage = get(
        &worker,
        paths::TELEMETRY_LOGS,
        &[
            ("source_kind", "container"),
            ("container_id", &id),
            ("limit", "1"),
        ],
    )
    .await;
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.truncated.limited_by, LimitedBy::Count);
    let token = first.next_page_token.expect("more pages");
    let rest: LogPage = get(
        &worker,
        paths::TELEMETRY_LOGS,
        &[
            ("source_kind", "container"),
            ("container_id", &id),
            ("page_token", &token),
        ],
    )
    .await;
    assert_eq!(rest.events, logs.events[1..]);
    let stderr: LogPage = get(
        &worker,
        paths::TELEMETRY_LOGS,
        &[
            ("source_kind", "container"),
            ("container_id", &id),
            ("stream", "stderr"),
        ],
    )
    .await;
    assert_eq!(stderr.events.len(), 1);
    let before = detail.events[0].occurred_at.to_rfc3339();
    let earlier: LogPage = get(
        &worker,
        paths::TELEMETRY_LOGS,
        &[
            ("source_kind", "container"),
            ("container_id", &id),
            ("until", &before),
        ],
    )
    .await;
    assert!(earlier.events.is_empty(), "{earlier:?}");
}

#[tokio::test]
async fn node_info_stats_and_the_workers_start_and_stop() {
    let env = DevEnv::load();
    let (mut worker, _state_dir) = start(&env).await;

    let info: NodeInfo = get(&worker, paths::TELEMETRY_NODE_INFO, &[]).await;
    assert_eq!(info.version, 1);
    assert_eq!(info.node_slug.as_deref(), Some(SLUG));
    assert_eq!(info.build.build_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.platform.os, "linux");
    assert_eq!(info.platform.arch, std::env::consts::ARCH);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info.platform.kernel_version, kernel.trim());
    assert!(info.last_capability_report.is_none());

    let stats: NodeStats = get(&worker, paths::TELEMETRY_NODE_STATS, &[]).await;
    assert!(stats.cpu.cores >= 1, "{stats:?}");
    assert!(stats.cpu.load1 >= 0.0);
    assert!(stats.memory.total_mb > 0 && stats.memory.free_mb <= stats.memory.total_mb);
    assert_eq!(
        stats.memory.used_mb + stats.memory.free_mb,
        stats.memory.total_mb
    );
    assert!(stats.disk.state_dir_total_mb > 0);
    assert!(stats.disk.state_dir_free_mb <= stats.disk.state_dir_total_mb);
    assert_eq!(stats.container_runtime.runtime, "podman");
    let podman = env.podman().version().await.unwrap().version;
    assert!(podman.is_some());
    assert_eq!(stats.container_runtime.version, podman);
    assert!((chrono::Utc::now() - stats.captured_at).num_seconds().abs() < 60);

    assert_eq!(service_messages(&worker).await, ["worker API started"]);
    let exit = worker.child.terminate(Duration::from_secs(30)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    worker.restart().await;
    assert_eq!(
        service_messages(&worker).await,
        [
            "worker API started",
            "worker API stopped",
            "worker API started"
        ]
    );
}

#[tokio::test]
async fn telemetry_needs_the_token_and_bad_queries_are_400_problems() {
    let env = DevEnv::load();
    let (worker, _state_dir) = start(&env).await;
    let container = paths::telemetry_container("abc");
    for path in [
        paths::TELEMETRY_NODE_INFO,
        paths::TELEMETRY_NODE_STATS,
        paths::TELEMETRY_CONTAINERS,
        container.as_str(),
        paths::TELEMETRY_LOGS,
    ] {
        for token in [None, Some("not-the-token")] {
            let (status, ctype, body) = get_as(&worker, path, &[], token).await;
            assert_eq!(status, 401, "{path} {token:?}: {body}");
            assert_eq!(ctype, PROBLEM_JSON);
        }
    }

    let service = [("source_kind", "service"), ("source_name", "worker_api")];
    let with = |extra: &[(&'static str, &'static str)]| -> Query {
        let mut query = service.to_vec();
        query.extend_from_slice(extra);
        query
    };
    // (path, query, the word the problem's detail must name)
    type Query = Vec<(&'static str, &'static str)>;
    let bad: Vec<(&str, Query, &str)> = vec![
        (paths::TELEMETRY_LOGS, vec![], "source_kind"),
        (
            paths::TELEMETRY_LOGS,
            vec![("source_kind", "service")],
            "source_name",
        ),
        (
            paths::TELEMETRY_LOGS,
            vec![("source_kind", "container")],
            "container_id",
        ),
        (
            paths::TELEMETRY_LOGS,
            vec![("source_kind", "pipes")],
            "source_kind",
        ),
        (paths::TELEMETRY_LOGS, with(&[("limit", "abc")]), "limit"),
        (paths::TELEMETRY_LOGS, with(&[("limit", "0")]), "limit"),
        (
            paths::TELEMETRY_LOGS,
            with(&[
                ("since", "2026-01-02T00:00:00Z"),
                ("until", "2026-01-01T00:00:00Z"),
            ]),
            "since",
        ),
        (
            paths::TELEMETRY_LOGS,
            with(&[("since", "yesterday")]),
            "since",
        ),
        (
            paths::TELEMETRY_LOGS,
            with(&[("page_token", "zzz")]),
            "page_token",
        ),
        (paths::TELEMETRY_CONTAINERS, vec![("limit", "abc")], "limit"),
        (
            paths::TELEMETRY_CONTAINERS,
            vec![("status", "gone")],
            "status",
        ),
        (
            paths::TELEMETRY_CONTAINERS,
            vec![("job_id", "nope")],
            "job_id",
        ),
        (
            paths::TELEMETRY_CONTAINERS,
            vec![("colour", "red")],
            "colour",
        ),
    ];
    for (path, query, named) in bad {
        let (status, ctype, body) = get_as(&worker, path, &query, Some(&worker.token)).await;
        assert_eq!(status, 400, "{path} {query:?}: {body}");
        assert_eq!(ctype, PROBLEM_JSON, "{path} {query:?}");
        assert_eq!(body["status"], 400);
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(named), "{path} {query:?}: {detail}");
    }

    // A limit above the maximum is clamped, not refused.
    let (status, _, body) = get_as(
        &worker,
        paths::TELEMETRY_CONTAINERS,
        &[("limit", "1000000")],
        Some(&worker.token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, ctype, body) = get_as(&worker, &container, &[], Some(&worker.token)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(ctype, PROBLEM_JSON);
}

/// Waits until `done` holds for the job's containers on the Podman socket.
async fn wait_containers(
    env: &DevEnv,
    job_id: Uuid,
    what: &str,
    done: impl Fn(&[podman_api::models::ListContainer]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&env.job_containers(job_id).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id}: {what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_taken_over_after_a_crash_is_recorded_to_its_end() {
    let env = DevEnv::load();
    let (mut worker, _state_dir) = start(&env).await;
    let job_id = Uuid::new_v4();
    let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
                      "sandbox": {"command": ["sh", "-c", "sleep 1; echo adopted-done"]}});
    let url = format!("{}{}", worker.base, paths::JOBS_RUN);
    let delivery = {
        let (client, token) = (worker.client.clone(), worker.token.clone());
        tokio::spawn(async move { client.post(url).bearer_auth(token).json(&body).send().await })
    };
    let state = |wanted: &'static str| {
        move |found: &[podman_api::models::ListContainer]| {
            found.len() == 1 && found[0].state.as_deref() == Some(wanted)
        }
    };
    wait_containers(&env, job_id, "running", state("running")).await;
    // Podman says running a moment before the worker hears it and records the start.
    let job = job_id.to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let running: ContainerList = get(
            &worker,
            paths::TELEMETRY_CONTAINERS,
            &[("job_id", &job), ("status", "running")],
        )
        .await;
        if !running.containers.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the start was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill().await;
    assert!(delivery.await.unwrap().is_err(), "a killed worker answered");
    wait_containers(&env, job_id, "exit", state("exited")).await;
    worker.restart().await;
    wait_containers(&env, job_id, "removal", |found| found.is_empty()).await;

    let list: ContainerList = get(&worker, paths::TELEMETRY_CONTAINERS, &[("job_id", &job)]).await;
    assert_eq!(list.containers.len(), 1, "{list:?}");
    let container = &list.containers[0];
    assert_eq!(
        (container.status, container.exit_code),
        (ContainerStatus::Exited, Some(0))
    );
    assert_eq!(
        container.image_ref, env.sandbox_image,
        "kept from the create"
    );
    // The worker records the removal once Podman has confirmed it.
    let path = paths::telemetry_container(&container.container_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let detail: ContainerDetail = get(&worker, &path, &[]).await;
        if detail.events.len() >= 4 || tokio::time::Instant::now() > deadline {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let actions: Vec<_> = detail.events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            ContainerAction::Create,
            ContainerAction::Start,
            ContainerAction::Stop,
            ContainerAction::Remove
        ],
        "{detail:?}"
    );
    let logs: LogPage = get(
        &worker,
        paths::TELEMETRY_LOGS,
        &[
            ("source_kind", "container"),
            ("container_id", &container.container_id),
        ],
    )
    .await;
    let lines: Vec<_> = logs.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(lines, ["adopted-done"]);
    // The killed worker never logged its stop; the new one logged its start.
    assert_eq!(
        service_messages(&worker).await,
        ["worker API started", "worker API started"]
    );
}
