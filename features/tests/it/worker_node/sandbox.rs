//! Steps of `features/worker_node/sandbox.feature`: the real `cynode-worker-api` binary on the
//! real Podman socket with the real sandbox image.

use std::process::Stdio;
use std::time::Duration;

use cucumber::{given, then, when};
use cynode_contracts::routes;
use cynode_e2e::DevEnv;
use cynode_e2e::process::{ChildGuard, binary, wait_http};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use uuid::Uuid;

use super::NodeWorld;

#[derive(Debug, Default)]
pub struct SandboxState {
    worker: Option<WorkerApi>,
    job_id: Option<Uuid>,
    task_id: Option<Uuid>,
    /// HTTP status and JSON body of the last jobs:run call.
    answer: Option<(u16, Value)>,
}

/// A running worker API with its own mount root and a random token.
#[derive(Debug)]
struct WorkerApi {
    _child: ChildGuard,
    base: String,
    token: String,
    mount_root: tempfile::TempDir,
    env: DevEnv,
}

impl SandboxState {
    fn worker(&self) -> &WorkerApi {
        self.worker
            .as_ref()
            .expect("the Background starts the worker API")
    }

    fn answer(&self) -> (u16, &Value) {
        let (status, body) = self.answer.as_ref().expect("a job was sent");
        (*status, body)
    }

    fn result(&self) -> &Value {
        let (status, body) = self.answer();
        assert_eq!(status, 200, "the job was not run: {body}");
        body
    }

    fn stream(&self, name: &str) -> &str {
        self.result()[name].as_str().unwrap_or_default()
    }

    /// Posts `body` as the job `job_id`, with the node's token unless `token` says otherwise.
    async fn send(&mut self, body: impl Into<reqwest::Body>, token: Option<String>) {
        let worker = self.worker();
        let mut request = reqwest::Client::new()
            .post(format!("{}{}", worker.base, routes::worker::JOBS_RUN))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await.expect("worker API reachable");
        let status = resp.status().as_u16();
        let body = resp.json().await.expect("JSON answer");
        self.answer = Some((status, body));
    }

    async fn run(&mut self, sandbox: Value) {
        let body = self.job_body(sandbox);
        let token = self.worker().token.clone();
        self.send(body.to_string(), Some(token)).await;
    }

    fn job_body(&mut self, sandbox: Value) -> Value {
        let (task_id, job_id) = (Uuid::new_v4(), Uuid::new_v4());
        self.task_id = Some(task_id);
        self.job_id = Some(job_id);
        json!({"version": 1, "task_id": task_id, "job_id": job_id, "sandbox": sandbox})
    }

    async fn job_containers(&self) -> usize {
        let job_id = self.job_id.expect("a job was sent");
        self.worker().env.job_containers(job_id).await.len()
    }
}

fn sh(script: &str) -> Value {
    json!({"command": ["sh", "-c", script]})
}

#[given("a worker API started with its bearer token on stdin")]
async fn start_worker(world: &mut NodeWorld) {
    let env = DevEnv::load();
    let mount_root = tempfile::tempdir().expect("tempdir");
    let port = cynode_e2e::free_port();
    let token = format!("tok-{}", Uuid::new_v4().simple());
    let mut child = Command::new(binary("cynode-worker-api"))
        .arg("--bearer-token-stdin")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--podman-socket")
        .arg(&env.podman_socket)
        .arg("--mount-root")
        .arg(mount_root.path())
        .arg("--default-image")
        .arg(&env.sandbox_image)
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn cynode-worker-api");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{token}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_http(
            &format!("{base}{}", routes::READYZ),
            200,
            Duration::from_secs(20)
        )
        .await,
        "the worker API did not become ready"
    );
    world.sandbox.worker = Some(WorkerApi {
        _child: ChildGuard(child),
        base,
        token,
        mount_root,
        env,
    });
}

#[when(expr = "the orchestrator runs {string} in a sandbox")]
async fn run_script(world: &mut NodeWorld, script: String) {
    world.sandbox.run(sh(&script)).await;
}

#[when(expr = "the orchestrator runs the bare command {string} in a sandbox")]
async fn run_bare(world: &mut NodeWorld, program: String) {
    world.sandbox.run(json!({"command": [program]})).await;
}

#[when(expr = "the orchestrator runs {string} in a sandbox with network policy {string}")]
async fn run_with_policy(world: &mut NodeWorld, script: String, policy: String) {
    let mut sandbox = sh(&script);
    sandbox["network_policy"] = json!(policy);
    world.sandbox.run(sandbox).await;
}

#[when(expr = "the orchestrator runs {string} in a sandbox with env {word} set to {string}")]
async fn run_with_env(world: &mut NodeWorld, script: String, name: String, value: String) {
    let mut sandbox = sh(&script);
    sandbox["env"] = json!({ name: value });
    world.sandbox.run(sandbox).await;
}

#[when(expr = "the orchestrator runs {string} in a sandbox with a timeout of {int} second(s)")]
async fn run_with_timeout(world: &mut NodeWorld, script: String, seconds: i64) {
    let mut sandbox = sh(&script);
    sandbox["timeout_seconds"] = json!(seconds);
    world.sandbox.run(sandbox).await;
}

#[when(regex = r"^the orchestrator sends a job with (.+)$")]
async fn send_bad_job(world: &mut NodeWorld, case: String) {
    let state = &mut world.sandbox;
    let token = state.worker().token.clone();
    let ok = json!({"command": ["true"]});
    let (body, token) = match case.as_str() {
        "an image not allowlisted" => (
            state
                .job_body(json!({"image": "docker.io/library/alpine:latest", "command": ["true"]})),
            Some(token),
        ),
        "a negative timeout" => (
            state.job_body(json!({"command": ["true"], "timeout_seconds": -1})),
            Some(token),
        ),
        "a huge timeout" => (
            state.job_body(json!({"command": ["true"], "timeout_seconds": 100_000_000})),
            Some(token),
        ),
        "an unknown field" => (
            state.job_body(json!({"command": ["true"], "privileged": true})),
            Some(token),
        ),
        "an unknown network policy" => (
            state.job_body(json!({"command": ["true"], "network_policy": "host"})),
            Some(token),
        ),
        "a 20 MiB body" => (
            state.job_body(json!({"command": ["true"], "env": {"BIG": "x".repeat(20 << 20)}})),
            Some(token),
        ),
        "no bearer token" => (state.job_body(ok), None),
        "a wrong bearer token" => (state.job_body(ok), Some(format!("{token}x"))),
        other => panic!("unknown bad-input case: {other}"),
    };
    state.send(body.to_string(), token).await;
}

#[then(expr = "the job completed with exit code {int}")]
fn completed_with(world: &mut NodeWorld, code: i64) {
    let result = world.sandbox.result();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["exit_code"], code, "{result}");
}

#[then("the job's exit code is not 0")]
fn exit_not_zero(world: &mut NodeWorld) {
    let result = world.sandbox.result();
    assert_ne!(result["exit_code"], 0, "{result}");
}

#[then(expr = "the job status is {string}")]
fn job_status(world: &mut NodeWorld, status: String) {
    let result = world.sandbox.result();
    assert_eq!(result["status"], status.as_str(), "{result}");
}

#[then(expr = "stdout is {string}")]
fn stdout_is(world: &mut NodeWorld, expected: String) {
    assert_eq!(world.sandbox.stream("stdout").trim_end(), expected);
}

#[then(expr = "stderr is {string}")]
fn stderr_is(world: &mut NodeWorld, expected: String) {
    assert_eq!(world.sandbox.stream("stderr").trim_end(), expected);
}

#[then(expr = "stderr contains {string}")]
fn stderr_contains(world: &mut NodeWorld, needle: String) {
    let stderr = world.sandbox.stream("stderr");
    assert!(stderr.contains(&needle), "{stderr}");
}

/// Tabs (as in /proc/self/status) compare equal to a single space.
#[then(expr = "stdout has the line {string}")]
fn stdout_has_line(world: &mut NodeWorld, line: String) {
    let stdout = world.sandbox.stream("stdout");
    assert!(
        stdout.lines().any(|l| l.replace('\t', " ") == line),
        "no line {line:?} in:\n{stdout}"
    );
}

#[then("stdout has the job's CYNODE_TASK_ID, CYNODE_JOB_ID and CYNODE_WORKSPACE_DIR")]
fn stdout_has_context(world: &mut NodeWorld) {
    let state = &world.sandbox;
    let stdout = state.stream("stdout");
    for line in [
        format!("CYNODE_TASK_ID={}", state.task_id.unwrap()),
        format!("CYNODE_JOB_ID={}", state.job_id.unwrap()),
        "CYNODE_WORKSPACE_DIR=/workspace".to_owned(),
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line} in:\n{stdout}");
    }
}

#[then("stdout does not contain the bearer token")]
fn no_token(world: &mut NodeWorld) {
    let state = &world.sandbox;
    assert!(!state.stream("stdout").contains(&state.worker().token));
}

#[then(expr = "the job's host workspace holds {string} with {string}")]
fn host_workspace(world: &mut NodeWorld, file: String, content: String) {
    let state = &world.sandbox;
    let path = state
        .worker()
        .mount_root
        .path()
        .join(state.job_id.unwrap().to_string())
        .join("workspace")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(text.trim_end(), content);
}

#[then(expr = "stdout was truncated to {int} bytes of {string}")]
fn truncated(world: &mut NodeWorld, bytes: usize, unit: String) {
    let result = world.sandbox.result();
    assert_eq!(
        result["truncated"]["stdout"], true,
        "{}",
        result["truncated"]
    );
    let stdout = world.sandbox.stream("stdout");
    assert_eq!(stdout.len(), bytes);
    assert!(stdout.chars().all(|c| unit.starts_with(c)));
}

#[then(expr = "the request is refused with status {int} naming {string}")]
fn refused(world: &mut NodeWorld, status: u16, reason: String) {
    let (got, problem) = world.sandbox.answer();
    assert_eq!(got, status, "{problem}");
    assert_eq!(problem["status"], status);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&reason), "{detail}");
}

#[then(regex = r"^no container of the job (?:is left|was created)$")]
async fn no_container(world: &mut NodeWorld) {
    assert_eq!(world.sandbox.job_containers().await, 0);
    let state = &world.sandbox;
    if state.answer().0 != 200 {
        let dir = state
            .worker()
            .mount_root
            .path()
            .join(state.job_id.unwrap().to_string());
        assert!(!dir.exists(), "a refused job left {}", dir.display());
    }
}
