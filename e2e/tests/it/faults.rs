//! Faults at the worst moments, with the real processes on the real Podman socket: the node
//! manager stopped and started again under load, the worker API killed with runs in flight
//! (its node manager exits, as a dead worker makes it do, and is started again as systemd would),
//! and the database away while runs finish, for longer than a dispatch lease (a PostgreSQL
//! server of the test's own; `orchestrator/tests/it/outage.rs` keeps the database away for a
//! whole minute at the default lease).
//!
//! Evidence that cannot lie: every job appends a marker to its own `/workspace` only after its
//! work is done and prints the markers, so a job that ran to completion twice would print two;
//! containers are counted by the job label on the Podman socket.

use crate::node_support;

use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::postgres::PrivatePostgres;
use node_support::{NodeManager, Orchestrator, User};
use sqlx::Connection;

const JOBS: usize = 8;
/// The work comes first, the marker last: a run stopped half-way leaves none.
const JOB: &str = "sleep 3; echo done >> /workspace/runs; cat /workspace/runs";
const LIMIT: Duration = Duration::from_secs(180);
/// The outage test's dispatch lease, and its outage: twice that, so every lease held when the
/// database went away has run out by the time it is back (as a minute does at the default 30 s).
const LEASE: &str = "6s";
const OUTAGE: Duration = Duration::from_secs(12);

enum Fault {
    /// PostgreSQL stopped for two dispatch leases while runs finish, then started again.
    DatabaseOutage,
    /// SIGTERM to the node manager: a graceful stop of the node and its worker API.
    StopNode,
    /// SIGKILL to the worker API; its node manager then exits with an error.
    KillWorker,
}

async fn survive(fault: Fault) {
    let env = DevEnv::load();
    // The shared dev server must stay up for every other test: the outage gets its own.
    let pg = matches!(fault, Fault::DatabaseOutage).then(PrivatePostgres::start);
    let orchestrator = match &pg {
        Some(pg) => Orchestrator::start_on(pg.url(), &[("DISPATCH_LEASE", LEASE)]).await,
        None => Orchestrator::start(&env, &[]).await,
    };
    let mut node = NodeManager::start_serving(&env, &orchestrator).await;
    let user = User::login(&orchestrator).await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(user.create_commands_task(JOB).await);
    }
    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'running'")
            .fetch_one(&mut db)
            .await
            .unwrap();
        if running >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job reached the node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let some runs get close to their end, so that the fault also meets runs finishing.
    tokio::time::sleep(Duration::from_millis(2800)).await;
    match fault {
        Fault::DatabaseOutage => {
            let pg = pg.as_ref().expect("a server of its own");
            pg.stop();
            let (code, reason) = orchestrator.readyz().await;
            assert_eq!((code, reason.as_str()), (503, "database unavailable"));
            tokio::time::sleep(OUTAGE).await;
            pg.resume();
            db = sqlx::PgConnection::connect(&orchestrator.database_url)
                .await
                .unwrap();
        }
        Fault::StopNode => {
            let status = node.process.terminate(Duration::from_secs(60)).await;
            assert!(status.is_some(), "the node manager did not stop");
        }
        Fault::KillWorker => {
            for pid in node.children() {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
            }
            let status = node.process.wait_exit(Duration::from_secs(60)).await;
            assert!(status.is_some(), "the node manager outlived its worker API");
        }
    }
    if !matches!(fault, Fault::DatabaseOutage) {
        node.restart();
        node.expect_ready(LIMIT).await;
    }
    let ready_at: f64 = sqlx::query_scalar("SELECT extract(epoch FROM now())::float8")
        .fetch_one(&mut db)
        .await
        .unwrap();

    let mut setbacks = 0;
    for id in &ids {
        let result = user.finished_result(id, LIMIT).await.unwrap_or_else(|| {
            panic!(
                "task {id} lost\norchestrator:\n{}\nnode:\n{}",
                orchestrator.log(),
                node.log()
            )
        });
        assert_eq!(result["status"], "completed", "{result}");
        let job = &result["jobs"][0];
        setbacks += job["setbacks"].as_array().map_or(0, Vec::len);
        assert_eq!(
            job["result"]["stdout"], "done\n",
            "ran twice to completion: {result}"
        );
        let job_id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
        assert!(
            env.job_containers(job_id).await.is_empty(),
            "a container of job {job_id} was left behind"
        );
    }
    // Runs were in flight: at least one delivery did not end where it was sent, and its owner
    // can read why.
    assert!(setbacks >= 1, "no setback recorded for the fault");
    let first_after: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM min(ended_at))::float8 FROM jobs
         WHERE ended_at > to_timestamp($1)",
    )
    .bind(ready_at)
    .fetch_one(&mut db)
    .await
    .unwrap();
    if let Some(first) = first_after {
        // The figure for the notes; the bound is the waits above, not a timing assertion.
        eprintln!(
            "recovery: first job finished {:.1} s after the node (or the database) was back",
            first - ready_at
        );
    }
}

#[tokio::test]
async fn a_node_stopped_under_load_loses_nothing_and_runs_nothing_twice() {
    survive(Fault::StopNode).await;
}

#[tokio::test]
async fn the_database_away_past_the_leases_loses_nothing_and_runs_nothing_twice() {
    survive(Fault::DatabaseOutage).await;
}

#[tokio::test]
async fn a_worker_killed_with_runs_in_flight_loses_nothing_and_leaves_no_container() {
    survive(Fault::KillWorker).await;
}
