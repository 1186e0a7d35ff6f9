//! Configuration changes in place, with the real orchestrator binary, PostgreSQL, Podman, node
//! managers and worker APIs: a new sandbox limit cap reaches both nodes' workers without a
//! restart of either node manager and is acked `applied`, while a job running on one of them
//! across the switch completes once; a configuration the new worker cannot run is acked
//! `failed` and the old worker keeps serving; SIGHUP brings new labels and
//! `sandbox.max_concurrency` to the orchestrator within seconds.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::process::binary;
use node_support::{NodeManager, NodeOptions, Orchestrator, User};
use serde_json::json;

const START_LIMIT: Duration = Duration::from_secs(120);

fn options(env: &DevEnv, orchestrator: &Orchestrator) -> NodeOptions {
    let mut options = NodeOptions::existing_inference(env, orchestrator);
    options
        .extra_env
        .push(("CAPABILITY_REPORT_INTERVAL".into(), "1s".into()));
    options
}

/// The worker API child of `node` and its command line.
fn worker_cmdline(node: &NodeManager) -> (u32, Vec<String>) {
    let children = node.children();
    assert_eq!(children.len(), 1, "exactly the worker API: {children:?}");
    let pid = children[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pid, args)
}

/// Runs `fut` while reading the nodes' notify sockets: a datagram queue nobody reads holds only
/// a few messages (`net.unix.max_dgram_qlen`), and later `STATUS=` lines would be dropped.
async fn draining<T>(
    fut: impl std::future::Future<Output = T>,
    nodes: &mut [&mut NodeManager],
) -> T {
    tokio::pin!(fut);
    loop {
        for node in nodes.iter_mut() {
            tokio::select! {
                out = &mut fut => return out,
                () = node.notify.drain(Duration::from_millis(50)) => {}
            }
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

/// Waits until the node's row says `status` for a version other than `not`; returns the row.
async fn ack_of_new_version(
    orchestrator: &Orchestrator,
    node: &NodeManager,
    not: &str,
    status: &str,
    limit: Duration,
) -> node_support::NodeRow {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let row = orchestrator.node_row(&node.slug).await.unwrap();
        if row.config_version != not
            && row.ack_version.as_deref() == Some(row.config_version.as_str())
            && row.ack_status.as_deref() == Some(status)
        {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{status}` ack of a new version: {row:?}\nstatuses: {:?}\nnode log:\n{}",
            node.statuses(),
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rewrites the node's display name line of node.yaml into `name` plus `extra` keys of `node:`.
fn edit_node_section(node: &NodeManager, extra: &str) {
    let path = node.dir.path().join("node.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut skip = false;
    for line in yaml.lines() {
        if skip && line.starts_with("  ") {
            continue;
        }
        skip = false;
        if line == "  name: e2e node" {
            out.push_str(line);
            out.push('\n');
            out.push_str(extra);
            skip = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
}

fn hangup(node: &NodeManager) {
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(node.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Gives `node` the labels `labels` by editing node.yaml and sending SIGHUP; waits until the
/// orchestrator's latest capability snapshot has them and returns how long that took.
async fn relabel(orchestrator: &Orchestrator, node: &NodeManager, labels: &[&str]) -> Duration {
    edit_node_section(node, &format!("  labels: {labels:?}\n"));
    let sent = tokio::time::Instant::now();
    hangup(node);
    loop {
        let snapshot = orchestrator.latest_snapshot(&node.slug).await;
        if snapshot["node"]["labels"] == json!(labels) {
            return sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "labels not reported: {}\n{}",
            snapshot["node"],
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_sandbox_limit_cap_is_applied_in_place_on_both_nodes_and_a_running_job_completes_once() {
    let env = DevEnv::load();
    let mut orchestrator = Orchestrator::start(&env, &[("NODE_SANDBOX_MEMORY_MIB", "512")]).await;
    let mut a = NodeManager::start(&env, &orchestrator, &options(&env, &orchestrator));
    let mut b = NodeManager::start(&env, &orchestrator, &options(&env, &orchestrator));
    a.expect_ready(START_LIMIT).await;
    b.expect_ready(START_LIMIT).await;
    let (code, reason) = orchestrator.ready_within(START_LIMIT).await;
    assert_eq!(code, 200, "{reason}");
    // Only node a carries the label the job asks for, so that the job cannot go elsewhere.
    relabel(&orchestrator, &a, &["switch"]).await;

    let mut before = Vec::new();
    for node in [&a, &b] {
        let row = orchestrator.node_row(&node.slug).await.unwrap();
        assert_eq!(row.ack_status.as_deref(), Some("applied"), "{row:?}");
        let (worker, args) = worker_cmdline(node);
        assert_eq!(flag(&args, "--sandbox-memory-mib").as_deref(), Some("512"));
        before.push((node.pid(), worker, row.config_version));
    }

    // A job that outlives the orchestrator's restart and the node's switch.
    let user = User::login(&orchestrator).await;
    let id = user
        .create_task(json!({
            "prompt": "echo run >> /workspace/runs; sleep 25; echo across-the-switch",
            "input_mode": "commands",
            "requirements": {"labels": ["switch"]},
        }))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job_id = draining(
        async {
            loop {
                let task = user.get(&format!("/v1/tasks/{id}")).await;
                if task["status"] == "running" {
                    let result = user.get(&format!("/v1/tasks/{id}/result")).await;
                    break result["jobs"][0]["id"].as_str().unwrap().to_owned();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the job never ran: {task}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
        &mut [&mut a, &mut b],
    )
    .await;
    let runs = a
        .state_dir()
        .join("sandbox_mounts")
        .join(&job_id)
        .join("workspace/runs");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !runs.exists() {
        assert!(tokio::time::Instant::now() < deadline, "not started on a");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    draining(
        orchestrator.restart_with(&[("NODE_SANDBOX_MEMORY_MIB", "256")]),
        &mut [&mut a, &mut b],
    )
    .await;
    let slugs = [a.slug.clone(), b.slug.clone()];
    let rows = draining(
        async {
            let mut rows = Vec::new();
            for (slug, (_, _, old_version)) in slugs.iter().zip(&before) {
                let deadline = tokio::time::Instant::now() + START_LIMIT;
                rows.push(loop {
                    let row = orchestrator.node_row(slug).await.unwrap();
                    if &row.config_version != old_version
                        && row.ack_version.as_deref() == Some(row.config_version.as_str())
                        && row.ack_status.as_deref() == Some("applied")
                    {
                        break row;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{slug}: no applied ack of a new version: {row:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                });
            }
            rows
        },
        &mut [&mut a, &mut b],
    )
    .await;
    for ((node, (pid, old_worker, _)), row) in [&mut a, &mut b].into_iter().zip(&before).zip(rows) {
        node.notify.drain(Duration::from_millis(300)).await;
        assert_eq!(node.pid(), *pid, "the node manager was restarted");
        let (worker, args) = worker_cmdline(node);
        assert_ne!(worker, *old_worker, "the worker API was not replaced");
        assert_eq!(
            flag(&args, "--sandbox-memory-mib").as_deref(),
            Some("256"),
            "{args:?}"
        );
        let statuses = node.statuses();
        for wanted in [
            format!("applying config {}", row.config_version),
            format!("config {} applied", row.config_version),
        ] {
            assert!(statuses.contains(&wanted), "no {wanted:?} in {statuses:?}");
        }
        assert!(
            !statuses
                .iter()
                .any(|s| s.contains("restarting to apply it")),
            "{statuses:?}"
        );
    }

    // The job ran once, on a, and completed (its delivery was lost with the old orchestrator;
    // the redelivery found the result the drained worker had kept).
    let result = user
        .finished_result(&id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|| {
            panic!(
                "task not finished\norchestrator:\n{}\nnode a:\n{}",
                orchestrator.log(),
                a.log()
            )
        });
    assert_eq!(result["status"], "completed", "{result}");
    let job = &result["jobs"][0];
    assert_eq!(job["result"]["stdout"], "across-the-switch\n", "{result}");
    assert_eq!(
        job["result"]["limits"]["memory_bytes"],
        512u64 << 20,
        "it ran under the old limit: {result}"
    );
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "run\n",
        "ran twice"
    );
    assert!(
        !b.state_dir().join("sandbox_mounts").join(&job_id).exists(),
        "the job ran on b too"
    );

    // New jobs run under the new cap.
    let id = user
        .create_task(json!({
            "prompt": "echo after",
            "input_mode": "commands",
            "requirements": {"labels": ["switch"]},
        }))
        .await;
    let result = user
        .finished_result(&id, Duration::from_secs(120))
        .await
        .expect("the job after the switch finished");
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(
        result["jobs"][0]["result"]["limits"]["memory_bytes"],
        256u64 << 20,
        "{result}"
    );

    for node in [&mut a, &mut b] {
        let status = node.process.terminate(Duration::from_secs(30)).await;
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }
}

#[tokio::test]
async fn a_config_the_new_worker_cannot_run_is_acked_failed_and_the_old_worker_keeps_serving() {
    let env = DevEnv::load();
    let mut orchestrator = Orchestrator::start(&env, &[("NODE_SANDBOX_MEMORY_MIB", "512")]).await;
    // A worker binary that refuses one particular memory limit (as a worker that cannot run
    // a configuration would), and otherwise is the real one.
    let bin = tempfile::tempdir().unwrap();
    let real = bin.path().join("cynode-worker-api.real");
    std::fs::hard_link(binary("cynode-worker-api"), &real)
        .or_else(|_| std::fs::copy(binary("cynode-worker-api"), &real).map(drop))
        .unwrap();
    let wrapper = bin.path().join("cynode-worker-api");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *' --sandbox-memory-mib 77 '*)\n  \
             echo 'refusing --sandbox-memory-mib 77' >&2; exit 3;;\nesac\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut options = options(&env, &orchestrator);
    options.extra_env.push((
        "NODE_MANAGER_WORKER_API_BIN".into(),
        wrapper.display().to_string(),
    ));
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;
    let pid = node.pid();

    // SIGHUP: labels and max_concurrency reach the orchestrator within seconds, unasked.
    edit_node_section(&node, "  labels: [fast, ssd]\n");
    let path = node.dir.path().join("node.yaml");
    let yaml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("sandbox:\n", "sandbox:\n  max_concurrency: 3\n");
    std::fs::write(&path, yaml).unwrap();
    let sent = tokio::time::Instant::now();
    hangup(&node);
    loop {
        let snapshot = orchestrator.latest_snapshot(&node.slug).await;
        if snapshot["node"]["labels"] == json!(["fast", "ssd"])
            && snapshot["sandbox"]["max_concurrency"] == 3
        {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "not reported within 3s: {snapshot}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("SIGHUP to the labels in PostgreSQL: {:?}", sent.elapsed());
    // A key that needs a restart is named, not applied.
    let yaml = std::fs::read_to_string(&path)
        .unwrap()
        .replace("grace_seconds: 10", "grace_seconds: 11");
    std::fs::write(&path, yaml).unwrap();
    hangup(&node);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !node.log().contains("apply only at the next start") {
        assert!(tokio::time::Instant::now() < deadline, "{}", node.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.log().contains("shutdown.grace_seconds"),
        "{}",
        node.log()
    );

    let first = orchestrator.node_row(&node.slug).await.unwrap();
    let (old_worker, _) = worker_cmdline(&node);

    orchestrator
        .restart_with(&[("NODE_SANDBOX_MEMORY_MIB", "77")])
        .await;
    let failed = ack_of_new_version(
        &orchestrator,
        &node,
        &first.config_version,
        "failed",
        START_LIMIT,
    )
    .await;
    let error = failed.ack_error.clone().unwrap_or_default();
    assert!(error.contains("worker_api_start_failed"), "{failed:?}");
    assert_eq!(node.pid(), pid, "the node manager was restarted");
    // The previous configuration runs again: a worker with the old limit answers.
    let (worker, args) = worker_cmdline(&node);
    assert_ne!(worker, old_worker);
    assert_eq!(flag(&args, "--sandbox-memory-mib").as_deref(), Some("512"));
    node.notify.drain(Duration::from_millis(300)).await;
    let healthz = format!("http://127.0.0.1:{}/healthz", node.worker_port);
    assert!(
        reqwest::get(&healthz)
            .await
            .is_ok_and(|r| r.status() == 200)
    );
    let statuses = node.statuses();
    assert!(
        statuses.iter().any(
            |s| s.starts_with(&format!("config {} failed", failed.config_version))
                && s.contains(&format!("running config {}", first.config_version))
        ),
        "{statuses:?}"
    );
    // It is not tried again at every check: a few more reports, the same worker.
    let reports = orchestrator.capability_reports(&node.slug).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while orchestrator.capability_reports(&node.slug).await < reports + 3 {
        assert!(tokio::time::Instant::now() < deadline, "{}", node.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        worker_cmdline(&node).0,
        worker,
        "the failed config was tried again"
    );
    let row = orchestrator.node_row(&node.slug).await.unwrap();
    assert_eq!(row.ack_status.as_deref(), Some("failed"));

    // A good configuration after the failed one is applied in place.
    orchestrator
        .restart_with(&[("NODE_SANDBOX_MEMORY_MIB", "96")])
        .await;
    ack_of_new_version(
        &orchestrator,
        &node,
        &failed.config_version,
        "applied",
        START_LIMIT,
    )
    .await;
    assert_eq!(node.pid(), pid);
    let (_, args) = worker_cmdline(&node);
    assert_eq!(flag(&args, "--sandbox-memory-mib").as_deref(), Some("96"));
    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
