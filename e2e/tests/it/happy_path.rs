//! The Phase 1 happy path with real processes: `cynode-orchestrator all` on a fresh PostgreSQL
//! database, `cynode-node-manager` (which spawns `cynode-worker-api`) on the real Podman socket,
//! and the dev environment's llama-server as the node's existing inference. A user logs in over
//! the gateway, creates a `commands` task, and its result carries the sandbox's stdout.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{NodeManager, Orchestrator, User};
use sqlx::Connection;

#[tokio::test]
async fn a_commands_task_runs_in_a_sandbox_on_the_node_and_its_output_comes_back() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let mut node = NodeManager::start_serving(&env, &orchestrator).await;

    let user = User::login(&orchestrator).await;
    let id = user
        .create_commands_task("echo hello from the sandbox")
        .await;
    let result = user
        .finished_result(&id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|| {
            panic!(
                "task not finished\norchestrator:\n{}\nnode:\n{}",
                orchestrator.log(),
                node.log()
            )
        });
    assert_eq!(result["status"], "completed", "{result}");
    let job = &result["jobs"][0];
    assert_eq!(job["status"], "completed", "{result}");
    assert_eq!(job["result"]["exit_code"], 0, "{result}");
    assert_eq!(
        job["result"]["stdout"].as_str().map(str::trim_end),
        Some("hello from the sandbox"),
        "{result}"
    );

    // After a real run, neither the worker token nor any node JWT is at rest in plaintext:
    // not in PostgreSQL and not in the node's state directory.
    let token = orchestrator
        .node_row(&node.slug)
        .await
        .and_then(|r| r.worker_token)
        .expect("worker token");
    let dump = orchestrator.pg_dump();
    assert!(dump.contains(&node.slug), "the dump has the node");
    assert!(!dump.contains(&token), "worker token in pg_dump");
    assert!(!dump.contains("eyJ"), "a JWT in pg_dump");
    for entry in std::fs::read_dir(node.state_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&token), "worker token in {path:?}");
        assert!(!text.contains("eyJ"), "a JWT in {path:?}");
    }

    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}; node log:\n{}",
        node.log()
    );
}

#[tokio::test]
async fn an_orchestrator_killed_mid_dispatch_loses_nothing_and_the_node_runs_the_job_once() {
    // Default settings: the dead process's lease (30 s, renewed while it lived) runs out, the
    // restarted orchestrator delivers the job again, and the worker answers with the one run.
    let env = DevEnv::load();
    let mut orchestrator = Orchestrator::start(&env, &[]).await;
    let node = NodeManager::start_serving(&env, &orchestrator).await;

    let user = User::login(&orchestrator).await;
    // The job counts its own runs in its workspace and prints the count.
    let id = user
        .create_commands_task("sleep 2; echo run >> /workspace/runs; cat /workspace/runs")
        .await;
    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    let mut dispatched = false;
    for _ in 0..100 {
        let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE task_id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        if status == "running" {
            dispatched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dispatched, "the job never reached the node");

    let killed = std::time::Instant::now();
    orchestrator.restart_after_crash().await;

    let result = user
        .finished_result(&id, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| {
            panic!(
                "task lost after the crash\norchestrator:\n{}\nnode:\n{}",
                orchestrator.log(),
                node.log()
            )
        });
    // The figure for the notes; the bound is the wait above, not a timing assertion.
    eprintln!(
        "recovery after an orchestrator kill: {:.1} s to the job's result",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(result["status"], "completed", "{result}");
    let job = &result["jobs"][0];
    assert_eq!(
        job["result"]["stdout"], "run\n",
        "ran more than once: {result}"
    );
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM jobs WHERE task_id = $1::uuid")
        .bind(&id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(
        attempts >= 2,
        "the job was not delivered again ({attempts})"
    );
}

#[tokio::test]
async fn canceling_a_running_task_stops_its_sandbox_on_the_node() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let mut node = NodeManager::start_serving(&env, &orchestrator).await;

    let user = User::login(&orchestrator).await;
    let id = user.create_commands_task("echo started; sleep 600").await;
    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    let mut running = None;
    for _ in 0..200 {
        let (job_id, status): (uuid::Uuid, String) =
            sqlx::query_as("SELECT id, status FROM jobs WHERE task_id = $1::uuid")
                .bind(&id)
                .fetch_one(&mut db)
                .await
                .unwrap();
        let sandbox = env.job_containers(job_id).await;
        if status == "running"
            && sandbox
                .iter()
                .any(|c| c.state.as_deref() == Some("running"))
        {
            running = Some(job_id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job_id = running.unwrap_or_else(|| panic!("the job's sandbox never ran\n{}", node.log()));

    let canceled = user.cancel(&id).await;
    assert_eq!(canceled.status(), 200);
    // The cancel answers once the node has stopped the sandbox.
    assert!(
        env.job_containers(job_id).await.is_empty(),
        "the canceled job's sandbox still exists\norchestrator:\n{}\nnode:\n{}",
        orchestrator.log(),
        node.log()
    );
    let result = user
        .finished_result(&id, Duration::from_secs(10))
        .await
        .expect("a canceled task is finished");
    assert_eq!(result["status"], "canceled", "{result}");
    assert_eq!(result["jobs"][0]["status"], "canceled", "{result}");

    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}; node log:\n{}",
        node.log()
    );
}
