//! Acceptance of the worker API: the real binary, the real Podman socket and the real sandbox
//! image (`node.md` §3.1 and §4; issue 4 "Acceptance" and "Bad input").

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cynode_contracts::routes;
use cynode_e2e::DevEnv;
use cynode_e2e::process::{ChildGuard, binary};
use serde_json::{Value, json};
use tokio::process::Command;
use uuid::Uuid;

const PROBLEM_JSON: &str = "application/problem+json";

/// The harness's worker plus the dev environment it runs in.
struct Worker {
    worker: cynode_e2e::worker::Worker,
    env: DevEnv,
}

impl std::ops::Deref for Worker {
    type Target = cynode_e2e::worker::Worker;
    fn deref(&self) -> &Self::Target {
        &self.worker
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.worker
    }
}

impl Worker {
    async fn start() -> Self {
        let env = DevEnv::load();
        let (socket, image) = (env.podman_socket.clone(), env.sandbox_image.clone());
        Self::start_with(env, socket, &image).await
    }

    async fn start_with(env: DevEnv, podman_socket: PathBuf, default_image: &str) -> Self {
        Self::start_with_allowed(env, podman_socket, default_image, default_image, &[]).await
    }

    async fn start_with_args(args: &[&str]) -> Self {
        let env = DevEnv::load();
        let (socket, image) = (env.podman_socket.clone(), env.sandbox_image.clone());
        Self::start_with_allowed(env, socket, &image, &image, args).await
    }

    /// Starts the binary the way node-manager does: the token on stdin, nowhere else.
    async fn start_with_allowed(
        env: DevEnv,
        podman_socket: PathBuf,
        default_image: &str,
        extra_allowed: &str,
        extra_args: &[&str],
    ) -> Self {
        let mut args = vec![
            "--allowed-image".to_owned(),
            default_image.to_owned(),
            "--allowed-image".to_owned(),
            extra_allowed.to_owned(),
        ];
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        let worker =
            cynode_e2e::worker::Worker::start_with(&podman_socket, default_image, &args).await;
        Self { worker, env }
    }

    async fn post(&self, body: impl Into<reqwest::Body>, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{}", self.base, routes::worker::JOBS_RUN))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("worker API reachable")
    }

    /// Runs a job that must be accepted and returns its result; its container must be gone.
    async fn run(&self, sandbox: Value) -> (Uuid, Value) {
        let job_id = Uuid::new_v4();
        let body =
            json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id, "sandbox": sandbox});
        let resp = self.post(body.to_string(), Some(&self.token)).await;
        let status = resp.status().as_u16();
        let result: Value = resp.json().await.expect("JSON result");
        assert_eq!(status, 200, "{result}");
        assert_eq!(result["job_id"], job_id.to_string());
        assert_eq!(result["task_id"], body["task_id"]);
        assert!(
            self.containers_of(job_id).await.is_empty(),
            "the sandbox of job {job_id} was not removed"
        );
        (job_id, result)
    }

    /// Sends a request that must be refused; returns its problem after checking that nothing of
    /// the job was created.
    async fn refused(
        &self,
        body: impl Into<reqwest::Body>,
        token: Option<&str>,
        job_id: Uuid,
    ) -> (u16, Value) {
        let resp = self.post(body, token).await;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let problem: Value = resp.json().await.expect("problem JSON");
        assert_eq!(ctype.as_deref(), Some(PROBLEM_JSON), "{problem}");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            self.containers_of(job_id).await.is_empty(),
            "a container was created"
        );
        assert!(
            !self.job_dir(job_id).exists(),
            "a job directory was created"
        );
        (status, problem)
    }

    async fn containers_of(&self, job_id: Uuid) -> Vec<podman_api::models::ListContainer> {
        self.env.job_containers(job_id).await
    }
}

fn sh(script: &str) -> Value {
    json!({"command": ["sh", "-c", script]})
}

fn text<'a>(result: &'a Value, stream: &str) -> &'a str {
    result[stream]
        .as_str()
        .unwrap_or_else(|| panic!("{stream} missing: {result}"))
}

#[tokio::test]
async fn a_job_returns_stdout_stderr_and_its_exit_code() {
    let worker = Worker::start().await;
    let (_, result) = worker.run(sh("echo out; echo err >&2; exit 3")).await;
    assert_eq!(result["status"], "completed");
    assert_eq!(result["exit_code"], 3);
    assert_eq!(text(&result, "stdout"), "out\n");
    assert_eq!(text(&result, "stderr"), "err\n");
    assert_eq!(
        result["truncated"],
        json!({"stdout": false, "stderr": false})
    );
    assert!(result["started_at"].as_str().unwrap() <= result["ended_at"].as_str().unwrap());
}

#[tokio::test]
async fn a_job_has_no_network_with_either_policy() {
    let worker = Worker::start().await;
    // No route at all (so no outside address is ever tried), and the host's loopback services
    // (PostgreSQL here) are not on the sandbox's loopback.
    let script = "ls /sys/class/net; echo routes: $(( $(wc -l < /proc/net/route) - 1 )); \
                  nc -w 2 127.0.0.1 5432 </dev/null && echo CONNECTED";
    for policy in ["none", "restricted"] {
        let mut sandbox = sh(script);
        sandbox["network_policy"] = json!(policy);
        let (_, result) = worker.run(sandbox).await;
        assert_eq!(result["status"], "completed");
        assert_eq!(
            text(&result, "stdout"),
            "lo\nroutes: 0\n",
            "{policy}: only loopback exists, without routes"
        );
        assert_ne!(result["exit_code"], 0, "{policy}: {result}");
        assert!(
            text(&result, "stderr").contains("Connection refused"),
            "{policy}: {result}"
        );
    }
}

#[tokio::test]
async fn a_job_has_no_capabilities_no_new_privileges_and_a_read_only_root() {
    let worker = Worker::start().await;
    let (_, result) = worker
        .run(sh(
            "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; \
             touch /etc/x 2>/dev/null && echo ROOT-WRITABLE; touch /tmp/x && echo tmp-writable",
        ))
        .await;
    let stdout = text(&result, "stdout");
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("CapPrm:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert!(!stdout.contains("ROOT-WRITABLE"), "{stdout}");
    assert!(stdout.contains("tmp-writable"), "{stdout}");
}

#[tokio::test]
async fn a_job_sees_its_context_env_and_never_the_token() {
    let worker = Worker::start().await;
    let mut sandbox = sh("env; pwd");
    sandbox["env"] = json!({"GREETING": "hallo"});
    let (job_id, result) = worker.run(sandbox).await;
    let stdout = text(&result, "stdout");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&format!("CYNODE_JOB_ID={job_id}").as_str()),
        "{stdout}"
    );
    assert!(
        lines.contains(&format!("CYNODE_TASK_ID={}", result["task_id"].as_str().unwrap()).as_str()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"CYNODE_WORKSPACE_DIR=/workspace"),
        "{stdout}"
    );
    assert!(lines.contains(&"GREETING=hallo"), "{stdout}");
    assert_eq!(lines.last(), Some(&"/workspace"), "working directory");
    assert!(
        !stdout.contains(&worker.token),
        "the bearer token leaked into the sandbox"
    );
    assert!(!stdout.contains("BEARER"), "{stdout}");
}

#[tokio::test]
async fn a_file_written_to_the_workspace_is_in_the_per_job_host_dir() {
    let worker = Worker::start().await;
    let (job_id, result) = worker
        .run(sh(
            "echo from-sandbox > /workspace/out.txt; echo relative > rel.txt",
        ))
        .await;
    assert_eq!(result["exit_code"], 0, "{result}");
    let dir = worker.job_dir(job_id).join("workspace");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "from-sandbox\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("rel.txt")).unwrap(),
        "relative\n"
    );
}

#[tokio::test]
async fn a_job_over_its_timeout_is_killed_and_reported() {
    let worker = Worker::start().await;
    let mut sandbox = sh("echo started; sleep 600; echo NEVER");
    sandbox["timeout_seconds"] = json!(1);
    let (_, result) = worker.run(sandbox).await;
    assert_eq!(result["status"], "timeout", "{result}");
    assert_eq!(result["exit_code"], -1);
    assert_eq!(text(&result, "stdout"), "started\n");
}

#[tokio::test]
async fn a_mebibyte_of_output_is_cut_at_a_character_boundary() {
    let worker = Worker::start().await;
    // 256 KiB = 262144 is not a multiple of 3 (€) nor of 1 + 4k (a + 😀), so the cap falls
    // inside a character on both streams.
    let (_, result) = worker
        .run(sh("yes € | tr -d '\\n' | head -c 1048575; \
             printf a >&2; yes 😀 | tr -d '\\n' | head -c 1048576 >&2"))
        .await;
    assert_eq!(result["exit_code"], 0, "{}", result["stderr"]);
    assert_eq!(result["truncated"], json!({"stdout": true, "stderr": true}));
    let stdout = text(&result, "stdout");
    assert_eq!(stdout.len(), 262_143);
    assert!(stdout.chars().all(|c| c == '€'));
    let stderr = text(&result, "stderr");
    assert_eq!(stderr.len(), 262_141);
    assert!(stderr.starts_with('a') && stderr[1..].chars().all(|c| c == '😀'));
}

#[tokio::test]
async fn a_missing_command_completes_with_exit_127() {
    let worker = Worker::start().await;
    let (_, bare) = worker
        .run(json!({"command": ["no-such-command", "x"]}))
        .await;
    assert_eq!(bare["status"], "completed", "{bare}");
    assert_eq!(bare["exit_code"], 127);
    assert!(text(&bare, "stderr").contains("no-such-command"), "{bare}");
    let (_, shell) = worker.run(sh("no-such-command")).await;
    assert_eq!(shell["exit_code"], 127);
    assert!(
        text(&shell, "stderr").contains("no-such-command"),
        "{shell}"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_reason_and_create_nothing() {
    let worker = Worker::start().await;
    let token = worker.token.clone();
    let body = |job_id: Uuid, sandbox: Value| {
        json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id, "sandbox": sandbox})
            .to_string()
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "image not on the allowlist",
            json!({"image": "docker.io/library/alpine:latest", "command": ["true"]}),
            400,
            "allowlist",
        ),
        (
            "negative timeout",
            json!({"command": ["true"], "timeout_seconds": -5}),
            400,
            "negative",
        ),
        (
            "huge timeout",
            json!({"command": ["true"], "timeout_seconds": 999_999_999}),
            400,
            "maximum of 10800",
        ),
        (
            "unknown field",
            json!({"command": ["true"], "privileged": true}),
            400,
            "privileged",
        ),
        ("empty command", json!({"command": []}), 400, "command"),
        (
            "reserved env",
            json!({"command": ["true"], "env": {"CYNODE_JOB_ID": "spoofed"}}),
            400,
            "CYNODE_JOB_ID",
        ),
        (
            "more memory than the node allows",
            json!({"command": ["true"], "resources": {"memory_mib": 4096}}),
            400,
            "sandbox.resources.memory_mib 4096 exceeds this node's limit of 2048",
        ),
        (
            "more CPU than the node allows",
            json!({"command": ["true"], "resources": {"cpu_millis": 1001}}),
            400,
            "sandbox.resources.cpu_millis 1001 exceeds this node's limit of 1000",
        ),
        (
            "too few processes to start",
            json!({"command": ["true"], "resources": {"pids": 1}}),
            400,
            "sandbox.resources.pids 1 is below the least a sandbox may have, 4",
        ),
        (
            "unknown resource",
            json!({"command": ["true"], "resources": {"gpus": 1}}),
            400,
            "gpus",
        ),
        (
            "unknown network policy",
            json!({"command": ["true"], "network_policy": "host"}),
            400,
            "network_policy",
        ),
    ];
    for (name, sandbox, status, needle) in cases {
        let job_id = Uuid::new_v4();
        let (got, problem) = worker
            .refused(body(job_id, sandbox), Some(&token), job_id)
            .await;
        assert_eq!(got, status, "{name}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{name}: {detail}");
    }

    let job_id = Uuid::new_v4();
    let top_level = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"command": ["true"]}, "run_as_root": true});
    let (got, problem) = worker
        .refused(top_level.to_string(), Some(&token), job_id)
        .await;
    assert_eq!(got, 400);
    assert!(
        problem["detail"].as_str().unwrap().contains("run_as_root"),
        "{problem}"
    );

    let job_id = Uuid::new_v4();
    let wrong_version = json!({"version": 2, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"command": ["true"]}});
    let (got, problem) = worker
        .refused(wrong_version.to_string(), Some(&token), job_id)
        .await;
    assert_eq!(got, 400);
    assert_eq!(problem["title"], "Unsupported payload version");

    let job_id = Uuid::new_v4();
    let big = body(
        job_id,
        json!({"command": ["true"], "env": {"BIG": "x".repeat(20 * 1024 * 1024)}}),
    );
    let (got, _) = worker.refused(big, Some(&token), job_id).await;
    assert_eq!(got, 413);

    for presented in [None, Some("wrong-token"), Some(&token[..token.len() - 1])] {
        let job_id = Uuid::new_v4();
        let (got, problem) = worker
            .refused(
                body(job_id, json!({"command": ["true"]})),
                presented,
                job_id,
            )
            .await;
        assert_eq!(got, 401, "{presented:?}: {problem}");
        assert!(
            !problem.to_string().contains(&token),
            "the token leaked in a problem"
        );
    }
}

/// The worker answers an oversized body only after reading it (bounded), so the client, which
/// is still sending when the limit is crossed, gets the 413 every time instead of a broken pipe
/// or a reset (the orchestrator's dispatcher would retry those). A refused token with a large
/// body within the limit is likewise answered only after the body is read.
#[tokio::test]
async fn refusals_of_large_bodies_reach_the_client_every_time() {
    let worker = Worker::start().await;
    let token = worker.token.clone();
    let big = |mib: usize| {
        json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": Uuid::new_v4(),
               "sandbox": {"command": ["true"], "env": {"BIG": "x".repeat(mib << 20)}}})
        .to_string()
    };
    let (twenty, nine) = (big(20), big(9));
    for round in 0..20 {
        for (body, presented, expected) in [
            (&twenty, Some(token.as_str()), 413),
            (&twenty, None, 413),
            (&nine, Some("wrong-token"), 401),
        ] {
            let resp = worker
                .client
                .post(format!("{}{}", worker.base, routes::worker::JOBS_RUN))
                .header("content-type", "application/json")
                .body(body.clone());
            let resp = match presented {
                Some(t) => resp.bearer_auth(t),
                None => resp,
            };
            let resp = resp.send().await.unwrap_or_else(|e| {
                panic!("round {round}, expected {expected}: transport error {e:?}")
            });
            assert_eq!(resp.status().as_u16(), expected, "round {round}");
            let problem: Value = resp.json().await.expect("problem JSON");
            assert_eq!(problem["status"], expected, "{problem}");
            if expected == 413 {
                assert!(
                    problem["detail"].as_str().unwrap().contains("size limit"),
                    "{problem}"
                );
            }
        }
    }
}

#[tokio::test]
async fn ready_only_when_a_container_could_run() {
    let worker = Worker::start().await;
    let ready = reqwest::get(format!("{}{}", worker.base, routes::READYZ))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");

    let env = DevEnv::load();
    let socket = env.podman_socket.clone();
    let missing_image =
        Worker::start_with(env.clone(), socket, "localhost/cynode-no-such-image:latest").await;
    let resp = reqwest::get(format!("{}{}", missing_image.base, routes::READYZ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("cynode-no-such-image"));

    let no_runtime = Worker::start_with(
        env.clone(),
        "/nonexistent/podman.sock".into(),
        &env.sandbox_image,
    )
    .await;
    let resp = reqwest::get(format!("{}{}", no_runtime.base, routes::READYZ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("container runtime unreachable")
    );
}

#[tokio::test]
async fn sigterm_stops_a_running_job_and_removes_its_container() {
    let mut worker = Worker::start().await;
    let job_id = Uuid::new_v4();
    let pending = tokio::spawn({
        let client = worker.client.clone();
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        let token = worker.token.clone();
        let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
            "sandbox": {"command": ["sleep", "600"]}})
        .to_string();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
        }
    });
    let mut running = false;
    for _ in 0..100 {
        if !worker.containers_of(job_id).await.is_empty() {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "the job's container never appeared");
    let exit = worker.child.terminate(Duration::from_secs(30)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "worker did not exit cleanly: {exit:?}"
    );
    let answer = pending
        .await
        .unwrap()
        .expect("the pending job was answered");
    assert_eq!(answer.status(), 503);
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(
        problem["type"],
        cynode_contracts::problem::types::JOB_INTERRUPTED,
        "the orchestrator must see an interruption, not a failure: {problem}"
    );
    assert!(
        worker.containers_of(job_id).await.is_empty(),
        "container left behind"
    );
    assert!(
        !worker.job_dir(job_id).join("result.json").exists(),
        "an interrupted run has no result to give a repeated delivery"
    );
}

#[tokio::test]
async fn the_worker_confines_itself_after_start_up() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let env = DevEnv::load();
    let mount_root = tempfile::tempdir().unwrap();
    let port = cynode_e2e::free_port();
    let mut child = Command::new(binary("cynode-worker-api"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--podman-socket")
        .arg(&env.podman_socket)
        .arg("--mount-root")
        .arg(mount_root.path())
        .env("WORKER_API_BEARER_TOKEN", "token-from-env")
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await
    {
        log.push_str(&line);
        log.push('\n');
        if line.contains("worker API listening") {
            break;
        }
    }
    assert!(log.contains("self-hardening applied"), "{log}");
    assert!(
        log.contains("enforced (ABI "),
        "Landlock status missing: {log}"
    );
    assert!(!log.contains("token-from-env"), "the token was logged");

    let pid = child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert!(
            status.contains(&format!("{field}:\t0000000000000000")),
            "{field} not empty:\n{status}"
        );
    }
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let _guard = ChildGuard(child);
}

#[tokio::test]
async fn a_job_whose_caller_hangs_up_still_removes_its_container() {
    let worker = Worker::start().await;
    let job_id = Uuid::new_v4();
    let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"command": ["sh", "-c", "sleep 2; echo done > /workspace/finished"]}});
    let hung_up = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap()
        .post(format!("{}{}", worker.base, routes::worker::JOBS_RUN))
        .bearer_auth(&worker.token)
        .json(&body)
        .send()
        .await;
    assert!(hung_up.is_err(), "the job should still have been running");
    let finished = worker.job_dir(job_id).join("workspace/finished");
    let mut gone = false;
    for _ in 0..200 {
        if finished.exists() && worker.containers_of(job_id).await.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the job did not finish and clean up after its caller left"
    );
}

#[tokio::test]
async fn node_side_conflicts_are_named_not_500() {
    // An allowed image that is not present (nothing can be pulled here): 503 naming it.
    let env = DevEnv::load();
    let (socket, image) = (env.podman_socket.clone(), env.sandbox_image.clone());
    let missing = Worker::start_with_allowed(
        env,
        socket,
        &image,
        "localhost/cynode-no-such-image:latest",
        &[],
    )
    .await;
    let job_id = Uuid::new_v4();
    let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"image": "localhost/cynode-no-such-image:latest", "command": ["true"]}});
    let (status, problem) = missing
        .refused(body.to_string(), Some(&missing.token), job_id)
        .await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("not present"),
        "{problem}"
    );

    let worker = Worker::start().await;
    // The same job twice at once: the second is a conflict, the first still completes.
    let job_id = Uuid::new_v4();
    let body = |cmd: &str| {
        json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
            "sandbox": {"command": ["sh", "-c", cmd]}})
        .to_string()
    };
    let first = tokio::spawn({
        let client = worker.client.clone();
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        let (token, body) = (worker.token.clone(), body("sleep 2"));
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    for _ in 0..100 {
        if !worker.containers_of(job_id).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = worker.post(body("true"), Some(&worker.token)).await;
    assert_eq!(second.status(), 409);
    assert_eq!(first.await.unwrap(), 200);
}

#[tokio::test]
async fn a_repeated_delivery_gets_the_first_result_and_runs_nothing_again() {
    // The orchestrator re-delivers a job when its lease expired mid-dispatch; the node must not
    // run it twice, whether the repeat comes after the first run or while it still runs.
    let worker = Worker::start().await;
    let (task_id, job_id) = (Uuid::new_v4(), Uuid::new_v4());
    let body = json!({"version": 1, "task_id": task_id, "job_id": job_id,
        "sandbox": {"command": ["sh", "-c", "sleep 1; echo run >> /workspace/runs; date +%s%N"]}})
    .to_string();
    let deliver = || {
        let (client, token, body) = (worker.client.clone(), worker.token.clone(), body.clone());
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (first, second) = tokio::join!(tokio::spawn(deliver()), tokio::spawn(deliver()));
    let ((s1, r1), (s2, r2)) = (first.unwrap(), second.unwrap());
    assert_eq!((s1, s2), (200, 200), "{r1}\n{r2}");
    assert_eq!(r1, r2, "concurrent deliveries got different results");
    let (s3, r3) = deliver().await;
    assert_eq!(s3, 200, "{r3}");
    assert_eq!(r3, r1, "a later delivery ran the job again");
    let runs = std::fs::read_to_string(worker.job_dir(job_id).join("workspace/runs")).unwrap();
    assert_eq!(runs, "run\n", "the job ran more than once");

    // The same job id for another task is a conflict, and runs nothing.
    let other = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"command": ["sh", "-c", "echo run >> /workspace/runs"]}});
    let resp = worker.post(other.to_string(), Some(&worker.token)).await;
    assert_eq!(resp.status(), 409);
    let problem: Value = resp.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&task_id.to_string()),
        "{problem}"
    );
    let runs = std::fs::read_to_string(worker.job_dir(job_id).join("workspace/runs")).unwrap();
    assert_eq!(runs, "run\n");
}

#[tokio::test]
async fn finished_job_directories_are_removed_after_the_retention_but_running_ones_are_kept() {
    let worker = Worker::start_with_args(&["--job-retention-secs", "2"]).await;
    // Files of the job's user namespace, one directory closed even to its owner.
    let (finished, result) = worker
        .run(sh(
            "echo kept > /workspace/out; mkdir -p /workspace/locked/in; \
                 touch /workspace/locked/in/f; chmod 000 /workspace/locked; chmod 700 /workspace",
        ))
        .await;
    assert_eq!(result["exit_code"], 0, "{result}");
    assert!(worker.job_dir(finished).join("result.json").exists());

    // A job that runs well past the retention: its directory has no result and an old mtime,
    // but a delivery holds it.
    let running = Uuid::new_v4();
    let pending = tokio::spawn({
        let client = worker.client.clone();
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        let token = worker.token.clone();
        let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": running,
            "sandbox": {"command": ["sh", "-c", "sleep 6; echo done > /workspace/out"]}})
        .to_string();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while worker.job_dir(finished).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finished job's directory outlived its 2 s retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !worker.containers_of(running).await.is_empty(),
        "the long job should still be running"
    );
    // Past the retention since the running job's directory was made, with sweeps every 200 ms.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !worker.containers_of(running).await.is_empty(),
        "the long job should still be running"
    );
    assert!(
        worker.job_dir(running).join("workspace").exists(),
        "the running job's directory was removed"
    );
    let answer = pending.await.unwrap().expect("the long job was answered");
    assert_eq!(answer.status(), 200);
    let result: Value = answer.json().await.unwrap();
    assert_eq!(result["exit_code"], 0, "{result}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while worker.job_dir(running).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the long job's directory outlived its retention once it finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The limits a worker started with `args` reports, next to what the kernel enforces.
const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn the_limits_in_force_come_back_in_the_result_and_are_what_the_kernel_enforces() {
    let worker = Worker::start_with_args(&[
        "--sandbox-memory-mib",
        "96",
        "--sandbox-cpu-millis",
        "500",
        "--sandbox-pids-limit",
        "40",
        "--sandbox-tmp-mib",
        "8",
        "--sandbox-log-max-bytes",
        "2000000",
    ])
    .await;
    // cgroup v1 paths (this machine); on cgroup v2 the same limits are in memory.max & co.
    let mut sandbox = sh("cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes \
         memory/memory.memsw.limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us \
         pids/pids.max; dd if=/dev/zero of=/tmp/big bs=1M count=16 2>&1 | grep -o 'No space left on device'; \
         echo tmp-bytes $(wc -c < /tmp/big)");
    sandbox["timeout_seconds"] = json!(30);
    let (job_id, result) = worker.run(sandbox.clone()).await;
    assert_eq!(
        result["limits"],
        json!({
            "timeout_seconds": 30,
            "memory_bytes": 96 * MIB,
            "cpu_millis": 500,
            "pids": 40,
            "tmp_bytes": 8 * MIB,
            "log_bytes": 2_000_000,
            "output_bytes": 256 * 1024,
            "workspace_bytes": null,
            "user_namespaces_denied": true,
        }),
        "{result}"
    );
    assert!(result.get("oom_killed").is_none(), "{result}");
    let stdout = text(&result, "stdout");
    let lines: Vec<&str> = stdout.lines().collect();
    let (mem, tmp) = ((96 * MIB).to_string(), format!("tmp-bytes {}", 8 * MIB));
    assert_eq!(
        lines,
        [
            mem.as_str(),
            mem.as_str(),
            "50000",
            "100000",
            "40",
            "No space left on device",
            tmp.as_str()
        ],
        "memory, memory+swap (no extra swap), CPU quota and period, pids, /tmp: {result}"
    );
    // The job's directory is the host root's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(worker.job_dir(job_id))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "job dir mode {mode:o}");

    // A job may ask for less than the node's limits, and gets exactly that.
    sandbox["resources"] = json!({"memory_mib": 48, "cpu_millis": 250, "pids": 20, "tmp_mib": 4});
    let (_, result) = worker.run(sandbox).await;
    let limits = &result["limits"];
    assert_eq!(
        (
            &limits["memory_bytes"],
            &limits["cpu_millis"],
            &limits["pids"],
            &limits["tmp_bytes"]
        ),
        (&json!(48 * MIB), &json!(250), &json!(20), &json!(4 * MIB)),
        "{result}"
    );
    let (mem, tmp) = ((48 * MIB).to_string(), format!("tmp-bytes {}", 4 * MIB));
    assert_eq!(
        text(&result, "stdout").lines().collect::<Vec<_>>(),
        [
            mem.as_str(),
            mem.as_str(),
            "25000",
            "100000",
            "20",
            "No space left on device",
            tmp.as_str()
        ],
        "the kernel enforces what the job asked for: {result}"
    );

    // Defaults of a worker started without the flags.
    let worker = Worker::start().await;
    let (_, result) = worker.run(sh("true")).await;
    assert_eq!(result["limits"]["memory_bytes"], 2048 * MIB, "{result}");
    assert_eq!(result["limits"]["cpu_millis"], 1000, "{result}");
    assert_eq!(result["limits"]["pids"], 512, "{result}");
    assert_eq!(result["limits"]["tmp_bytes"], 256 * MIB, "{result}");
    assert_eq!(result["limits"]["log_bytes"], 32 * MIB, "{result}");
    assert_eq!(result["limits"]["timeout_seconds"], 3600, "{result}");
}

/// With a `/workspace` size, writing past it fails with ENOSPC inside the sandbox, the result
/// says so in `limits.workspace_bytes`, and nothing of it lands on the host's disk.
#[tokio::test]
async fn writing_past_the_workspace_size_fails_with_enospc() {
    let worker = Worker::start_with_args(&["--sandbox-workspace-mib", "8"]).await;
    let (job_id, result) = worker
        .run(sh("dd if=/dev/zero of=/workspace/big bs=1M count=16 2>&1 \
                 | grep -o 'No space left on device'; echo workspace-bytes $(wc -c < /workspace/big)"))
        .await;
    assert_eq!(result["limits"]["workspace_bytes"], 8 * MIB, "{result}");
    let stdout = text(&result, "stdout");
    assert_eq!(
        stdout,
        format!("No space left on device\nworkspace-bytes {}\n", 8 * MIB),
        "{result}"
    );
    let on_host: Vec<_> = std::fs::read_dir(worker.job_dir(job_id).join("workspace"))
        .unwrap()
        .collect();
    assert!(
        on_host.is_empty(),
        "the workspace landed on the host: {on_host:?}"
    );

    // Without the setting, `/workspace` is the job's directory on the host, as before.
    let worker = Worker::start().await;
    let (job_id, result) = worker.run(sh("echo kept > /workspace/kept")).await;
    assert_eq!(result["limits"]["workspace_bytes"], Value::Null, "{result}");
    let kept = worker.job_dir(job_id).join("workspace").join("kept");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "kept\n");
}

/// Exit 137 is SIGKILL; the control run shows that the memory limit sent it. (`oom_killed` is
/// set only when Podman detects the OOM kill, which its conmon does not on this cgroup v1 host.)
#[tokio::test]
async fn a_memory_hog_is_killed_by_the_memory_limit_and_reported() {
    // The shell doubles a variable to 128 MiB: it is the container's main process.
    let hog = "echo start; x=aaaaaaaaaaaaaaaa; i=0; \
               while [ $i -lt 23 ]; do x=$x$x; i=$((i+1)); done; echo survived ${#x}";
    let small = Worker::start_with_args(&["--sandbox-memory-mib", "64"]).await;
    let mut sandbox = sh(hog);
    sandbox["timeout_seconds"] = json!(120);
    let (_, result) = small.run(sandbox.clone()).await;
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["exit_code"], 137, "killed by SIGKILL: {result}");
    assert_eq!(result["limits"]["memory_bytes"], 64 * MIB, "{result}");
    assert_eq!(text(&result, "stdout"), "start\n");
    if let Some(oom) = result.get("oom_killed") {
        assert_eq!(oom, true, "{result}");
    }

    let large = Worker::start_with_args(&["--sandbox-memory-mib", "1024"]).await;
    let (_, result) = large.run(sandbox).await;
    assert_eq!(result["exit_code"], 0, "{result}");
    assert_eq!(
        text(&result, "stdout"),
        format!("start\nsurvived {}\n", 128 * MIB)
    );
    assert!(result.get("oom_killed").is_none(), "{result}");
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_pids_limit_and_the_host_is_unharmed() {
    let worker = Worker::start_with_args(&["--sandbox-pids-limit", "32"]).await;
    // Each round leaves one more sleeping process; forks fail once 32 exist.
    let mut sandbox = sh(
        "n=0; while [ $n -lt 100 ]; do sleep 60 & n=$((n+1)); echo $n; done; \
         echo ALL-SPAWNED",
    );
    sandbox["timeout_seconds"] = json!(120);
    let started = std::time::Instant::now();
    let (_, result) = worker.run(sandbox).await;
    let stdout = text(&result, "stdout");
    assert!(!stdout.contains("ALL-SPAWNED"), "{result}");
    let spawned: u32 = stdout
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no count: {result}"));
    assert!((1..32).contains(&spawned), "spawned {spawned}: {result}");
    assert!(
        text(&result, "stderr").contains("fork"),
        "a fork failed: {result}"
    );
    assert_ne!(result["exit_code"], 0, "{result}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run waited for its sleeps: the limit did not stop the shell"
    );
    // The host still forks.
    let host = Command::new("true").status().await.unwrap();
    assert!(host.success());
}

#[tokio::test]
async fn a_job_cannot_create_user_namespaces() {
    let worker = Worker::start().await;
    let (_, result) = worker
        .run(sh("unshare -U true && echo USERNS-CREATED; \
             unshare -U -r id && echo USERNS-ROOT; \
             echo $(echo forks-still-work)"))
        .await;
    let stdout = text(&result, "stdout");
    assert!(!stdout.contains("USERNS"), "{result}");
    assert!(stdout.contains("forks-still-work"), "{result}");
    assert!(
        text(&result, "stderr").contains("Operation not permitted"),
        "{result}"
    );
}

#[tokio::test]
async fn an_output_flood_keeps_no_more_than_the_log_cap_on_the_host() {
    let cap: u64 = MIB;
    let worker = Worker::start_with_args(&["--sandbox-log-max-bytes", &cap.to_string()]).await;
    let podman = podman_api::Podman::unix(&worker.env.podman_socket);
    let job_id = Uuid::new_v4();
    // 50 MiB in lines of 1 KiB, then a pause so that the log is sampled after the flood too.
    let body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
        "sandbox": {"command": ["sh", "-c",
            "yes $(head -c 1023 /dev/zero | tr '\\0' y) | head -c 52428800; sleep 2"],
            "timeout_seconds": 300}});
    let pending = tokio::spawn({
        let (client, token) = (worker.client.clone(), worker.token.clone());
        let url = format!("{}{}", worker.base, routes::worker::JOBS_RUN);
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    });
    let (mut samples, mut largest) = (0, 0u64);
    while !pending.is_finished() {
        for container in worker.containers_of(job_id).await {
            let Some(id) = container.id else { continue };
            let Ok(inspect) = podman.containers().get(&id).inspect().await else {
                continue;
            };
            let Some(path) = inspect
                .host_config
                .and_then(|h| h.log_config)
                .and_then(|l| l.path)
                .filter(|p| !p.is_empty())
            else {
                continue;
            };
            if let Ok(meta) = std::fs::metadata(&path) {
                samples += 1;
                largest = largest.max(meta.len());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = pending.await.unwrap();
    assert_eq!(answer.status(), 200);
    let result: Value = answer.json().await.unwrap();
    assert_eq!(result["exit_code"], 0, "{}", result["stderr"]);
    assert!(
        samples > 10,
        "the log file was sampled only {samples} times"
    );
    assert!(largest > 0, "no log file was seen");
    assert!(
        largest <= cap,
        "the log file grew to {largest} bytes, over its cap of {cap}"
    );
    assert_eq!(result["truncated"]["stdout"], true);
    let stdout = text(&result, "stdout");
    assert_eq!(stdout.len(), 256 * 1024);
    assert!(stdout.starts_with(&format!("{}\n", "y".repeat(1023))));
    assert_eq!(result["limits"]["log_bytes"], cap);
    assert!(worker.containers_of(job_id).await.is_empty());
}

/// The host uid and gid that container id 0 maps to, from a `/proc/self/{uid,gid}_map` text,
/// and the range's size; `None` when the map is not one line.
fn root_mapping(map: &str) -> Option<(u64, u64)> {
    let mut lines = map.lines().filter(|l| !l.trim().is_empty());
    let fields: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    match (fields.as_slice(), lines.next()) {
        ([0, host, size], None) => Some((*host, *size)),
        _ => None,
    }
}

#[tokio::test]
async fn a_job_runs_in_a_user_namespace_whose_root_is_not_the_hosts() {
    let worker = Worker::start().await;
    let (_, result) = worker
        .run(sh(
            "cat /proc/self/uid_map; echo ---; cat /proc/self/gid_map; echo ---; id -u",
        ))
        .await;
    assert_eq!(result["exit_code"], 0, "{result}");
    let stdout = text(&result, "stdout");
    let parts: Vec<&str> = stdout.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{result}");
    assert_ne!(
        parts[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "the identity map: container root is host root ({result})"
    );
    let (uid, uid_size) = root_mapping(parts[0]).unwrap_or_else(|| panic!("{result}"));
    let (gid, gid_size) = root_mapping(parts[1]).unwrap_or_else(|| panic!("{result}"));
    assert_ne!(uid, 0, "{result}");
    assert_ne!(gid, 0, "{result}");
    assert_eq!((uid_size, gid_size), (65536, 65536), "{result}");
    // Still root inside, so images that expect it keep working.
    assert_eq!(parts[2].trim(), "0", "{result}");
}

#[tokio::test]
async fn a_file_written_to_the_workspace_belongs_on_the_host_to_the_mapped_uid() {
    use std::os::unix::fs::MetadataExt;
    let worker = Worker::start().await;
    let (job_id, result) = worker
        .run(sh("cat /proc/self/uid_map; echo data > /workspace/mine; \
                 mkdir /workspace/sub && echo deeper > /workspace/sub/f && ls -ln /workspace"))
        .await;
    assert_eq!(result["exit_code"], 0, "{result}");
    let (mapped_root, _) = root_mapping(text(&result, "stdout").lines().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("{result}"));
    assert_ne!(mapped_root, 0, "{result}");
    let workspace = worker.job_dir(job_id).join("workspace");
    for path in [
        workspace.clone(),
        workspace.join("mine"),
        workspace.join("sub"),
        workspace.join("sub/f"),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (u64::from(meta.uid()), u64::from(meta.gid())),
            (mapped_root, mapped_root),
            "{}: {result}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read_to_string(workspace.join("mine")).unwrap(),
        "data\n"
    );
}

/// Jobs running at once get distinct host ranges, so one job's files and processes are
/// another's "other".
#[tokio::test]
async fn two_jobs_running_at_once_get_distinct_host_ranges() {
    let worker = Worker::start().await;
    let job = || worker.run(sh("cat /proc/self/uid_map; sleep 2"));
    let ((_, a), (_, b)) = tokio::join!(job(), job());
    let root = |r: &Value| root_mapping(text(r, "stdout")).unwrap_or_else(|| panic!("{r}"));
    let ((a_root, size), (b_root, _)) = (root(&a), root(&b));
    assert!(
        a_root + size <= b_root || b_root + size <= a_root,
        "overlapping ranges: {a} {b}"
    );
}
