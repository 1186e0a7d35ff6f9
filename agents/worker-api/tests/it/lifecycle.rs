//! One lifecycle per job, with the real binary on the real Podman socket: a shutdown keeps a run
//! that has just finished, a worker killed mid-run leaves sandboxes the next instance takes
//! over, and the stop endpoint cancels a running job (issues 13 and 10).

use std::time::Duration;

use cynode_contracts::problem::types;
use cynode_e2e::DevEnv;
use cynode_e2e::worker::{Worker, job};
use podman_api::models::ListContainer;
use serde_json::{Value, json};
use uuid::Uuid;

async fn containers(env: &DevEnv, job_id: Uuid) -> Vec<ListContainer> {
    env.job_containers(job_id).await
}

/// Waits until the job's one container is in `state` (`running`, `exited`).
async fn wait_state(env: &DevEnv, job_id: Uuid, state: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let found = containers(env, job_id).await;
        if found.len() == 1 && found[0].state.as_deref() == Some(state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id}'s container never became {state}: {:?}",
            found.iter().map(|c| c.state.clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(worker: &Worker, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(worker.pid().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

fn runs(worker: &Worker, job_id: Uuid) -> String {
    std::fs::read_to_string(worker.job_dir(job_id).join("workspace/runs")).unwrap_or_default()
}

#[tokio::test]
async fn a_shutdown_as_jobs_exit_keeps_their_results_and_each_job_runs_once() {
    let env = DevEnv::load();
    let mut worker = Worker::start(&env, &[]).await;
    // Each job ends when the test says so, and counts its runs in its workspace. Several at
    // once, because which of exit and shutdown the worker notices first is up to the scheduler.
    let jobs: Vec<(Uuid, Value)> = (0..3)
        .map(|_| {
            let job_id = Uuid::new_v4();
            let script = "while [ ! -e /workspace/go ]; do sleep 0.05; done; \
                          echo run >> /workspace/runs; echo finished";
            (job_id, job(job_id, script))
        })
        .collect();
    let first: Vec<_> = jobs.iter().map(|(_, body)| worker.deliver(body)).collect();
    for (job_id, _) in &jobs {
        wait_state(&env, *job_id, "running", Duration::from_secs(20)).await;
    }

    // Frozen, the worker cannot see the jobs end; it wakes to their exits and SIGTERM at once.
    signal(&worker, "STOP");
    for (job_id, _) in &jobs {
        std::fs::write(worker.job_dir(*job_id).join("workspace/go"), "").unwrap();
    }
    for (job_id, _) in &jobs {
        wait_state(&env, *job_id, "exited", Duration::from_secs(20)).await;
    }
    signal(&worker, "TERM");
    signal(&worker, "CONT");

    let mut results = Vec::new();
    for ((job_id, _), answer) in jobs.iter().zip(first) {
        let (status, result) = answer.await.unwrap().expect("the delivery was answered");
        assert_eq!(
            status, 200,
            "job {job_id}: the finished run was thrown away: {result}"
        );
        assert_eq!(result["status"], "completed", "{result}");
        assert_eq!(result["stdout"], "finished\n", "{result}");
        results.push(result);
    }
    let exit = worker.child.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    for (job_id, _) in &jobs {
        assert!(containers(&env, *job_id).await.is_empty(), "container left");
        assert!(
            worker.job_dir(*job_id).join("result.json").exists(),
            "the result was not recorded"
        );
    }

    worker.restart().await;
    for ((job_id, body), result) in jobs.iter().zip(results) {
        let (status, again) = worker.deliver(body).await.unwrap().unwrap();
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, result, "a repeated delivery got another result");
        assert_eq!(runs(&worker, *job_id), "run\n", "the command ran again");
        assert!(containers(&env, *job_id).await.is_empty());
    }
}

#[tokio::test]
async fn a_worker_killed_mid_run_leaves_sandboxes_its_next_instance_takes_over() {
    let env = DevEnv::load();
    let mut worker = Worker::start(&env, &[]).await;
    let (short, long) = (Uuid::new_v4(), Uuid::new_v4());
    let short_body = job(
        short,
        "echo run >> /workspace/runs; sleep 1; echo short-done",
    );
    let long_body = job(long, "echo run >> /workspace/runs; sleep 8; echo long-done");
    let lost = [worker.deliver(&short_body), worker.deliver(&long_body)];
    wait_state(&env, short, "running", Duration::from_secs(20)).await;
    wait_state(&env, long, "running", Duration::from_secs(20)).await;

    worker.kill().await;
    for delivery in lost {
        assert!(
            delivery.await.unwrap().is_none(),
            "a killed worker answered"
        );
    }
    // The short job ends while no worker runs; the long one still runs at the restart.
    wait_state(&env, short, "exited", Duration::from_secs(20)).await;
    assert_eq!(containers(&env, long).await.len(), 1);
    worker.restart().await;

    // The finished one is collected into the ledger and its container removed, unasked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(worker.job_dir(short).join("result.json").exists()
        && containers(&env, short).await.is_empty())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the exited sandbox was not collected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The running one: a redelivery waits for it (no 409, no second run) and gets its result.
    let (status, result) = worker.deliver(&long_body).await.unwrap().unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["stdout"], "long-done\n", "{result}");
    assert_eq!(result["exit_code"], 0, "{result}");
    assert_eq!(result["run_diagnostics"]["adopted"], true, "{result}");
    let (status, result) = worker.deliver(&short_body).await.unwrap().unwrap();
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["stdout"], "short-done\n", "{result}");
    assert_eq!(result["run_diagnostics"]["adopted"], true, "{result}");

    for job_id in [short, long] {
        assert_eq!(runs(&worker, job_id), "run\n", "job {job_id} ran twice");
        assert!(
            containers(&env, job_id).await.is_empty(),
            "a container of job {job_id} remains"
        );
    }
}

#[tokio::test]
async fn stop_cancels_a_running_job_removes_its_sandbox_and_changes_nothing_else() {
    let env = DevEnv::load();
    let worker = Worker::start(&env, &[]).await;
    let job_id = Uuid::new_v4();
    let body = job(
        job_id,
        "echo run >> /workspace/runs; echo started; sleep 600",
    );
    let pending = worker.deliver(&body);
    wait_state(&env, job_id, "running", Duration::from_secs(20)).await;

    let asked = tokio::time::Instant::now();
    let (status, stopped) = worker.stop_job(job_id).await;
    assert_eq!(status, 200, "{stopped}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        asked.elapsed()
    );
    assert_eq!(stopped["status"], "canceled", "{stopped}");
    assert_eq!(stopped["job_id"], job_id.to_string());
    assert_eq!(stopped["stdout"], "started\n", "{stopped}");
    assert!(containers(&env, job_id).await.is_empty(), "container left");
    let (status, answered) = pending.await.unwrap().unwrap();
    assert_eq!(
        (status, &answered),
        (200, &stopped),
        "the delivery's answer"
    );

    // Again: harmless, the same answer; and a repeated delivery runs nothing.
    assert_eq!(worker.stop_job(job_id).await, (200, stopped.clone()));
    let (status, redelivered) = worker.deliver(&body).await.unwrap().unwrap();
    assert_eq!((status, &redelivered), (200, &stopped));
    assert_eq!(runs(&worker, job_id), "run\n");

    // A finished job: its stored result, unchanged.
    let done = Uuid::new_v4();
    let (status, result) = worker
        .run_job(done, json!({"command": ["echo", "hi"]}))
        .await;
    assert_eq!(status, 200, "{result}");
    let stored = std::fs::read(worker.job_dir(done).join("result.json")).unwrap();
    assert_eq!(worker.stop_job(done).await, (200, result));
    assert_eq!(
        std::fs::read(worker.job_dir(done).join("result.json")).unwrap(),
        stored
    );

    // An unknown job: 404, and nothing of it appears.
    let unknown = Uuid::new_v4();
    let (status, problem) = worker.stop_job(unknown).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["type"], types::NOT_FOUND, "{problem}");
    assert!(!worker.job_dir(unknown).exists());

    // The bearer token is required, as for jobs:run.
    let resp = worker
        .client
        .post(format!(
            "{}{}",
            worker.base,
            cynode_contracts::routes::worker::job_stop(done)
        ))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
