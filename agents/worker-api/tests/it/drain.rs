//! The drain signal (`contracts::worker_cli::DRAIN_SIGNAL`, SIGUSR1), with the real binary on
//! the real Podman socket: the worker stops listening at once, answers the delivery it is
//! running with its real result (nothing interrupted, nothing run twice), then exits 0; a
//! SIGTERM during the drain still interrupts what runs.

use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::worker::{Worker, job};
use uuid::Uuid;

fn signal(worker: &Worker, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(worker.pid().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

async fn wait_running(env: &DevEnv, job_id: Uuid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = env.job_containers(job_id).await;
        if found.len() == 1 && found[0].state.as_deref() == Some("running") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_drained_worker_stops_listening_finishes_its_job_once_and_exits_0() {
    assert_eq!(cynode_contracts::worker_cli::DRAIN_SIGNAL, "SIGUSR1");
    let env = DevEnv::load();
    let mut worker = Worker::start(&env, &[]).await;
    let job_id = Uuid::new_v4();
    let body = job(
        job_id,
        "echo run >> /workspace/runs; sleep 3; echo drained-done",
    );
    let delivery = worker.deliver(&body);
    wait_running(&env, job_id).await;

    signal(&worker, "USR1");
    // The listener goes at once, while the job still runs.
    let healthz = format!("{}/healthz", worker.base);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while reqwest::get(&healthz).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listening after the drain signal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        worker.child.0.try_wait().unwrap().is_none(),
        "exited before its job ended"
    );

    let (status, result) = delivery
        .await
        .unwrap()
        .expect("the delivery in flight was answered");
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["stdout"], "drained-done\n", "{result}");
    let exit = worker.child.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    assert!(
        env.job_containers(job_id).await.is_empty(),
        "container left"
    );
    assert_eq!(
        std::fs::read_to_string(worker.job_dir(job_id).join("workspace/runs")).unwrap(),
        "run\n"
    );

    // The next instance has nothing to adopt and answers a repeated delivery from the ledger.
    worker.restart().await;
    let (status, again) = worker.deliver(&body).await.unwrap().unwrap();
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, result);
    assert_eq!(
        std::fs::read_to_string(worker.job_dir(job_id).join("workspace/runs")).unwrap(),
        "run\n",
        "the job ran again"
    );
}

#[tokio::test]
async fn sigterm_during_a_drain_still_interrupts_the_running_job() {
    let env = DevEnv::load();
    let mut worker = Worker::start(&env, &[]).await;
    let job_id = Uuid::new_v4();
    let delivery = worker.deliver(&job(job_id, "sleep 60"));
    wait_running(&env, job_id).await;
    signal(&worker, "USR1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(worker.child.0.try_wait().unwrap().is_none());
    signal(&worker, "TERM");
    let (status, answer) = delivery.await.unwrap().expect("answered");
    assert_eq!(status, 503, "{answer}");
    let exit = worker.child.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.is_some(), "still running after SIGTERM");
    assert!(
        env.job_containers(job_id).await.is_empty(),
        "container left"
    );
}
