//! Acceptance: the orchestrator (features/orchestrator), run as the real binary on a fresh real
//! PostgreSQL database, with a worker API double that speaks the real `jobs:run` wire format.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use cucumber::{World, given, then, when};
use cynode_contracts::worker::{RunJobRequest, RunJobResponse, RunStatus, Truncated};
use cynode_e2e::process::binary;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::orchestrator_process::{ADMIN_PASSWORD, JWT_SECRET, LIMIT, Orchestrator, PSK};

const WORKFLOW_TOKEN: &str = "feature-workflow-runner-token";

/// Requests the worker double received: (bearer token, request).
type Received = Arc<Mutex<Vec<(Option<String>, RunJobRequest)>>>;

#[derive(Debug, Default, World)]
struct OrchWorld {
    orchestrator: Option<Orchestrator>,
    http: reqwest::Client,
    worker_url: Option<String>,
    received: Received,
    bootstrap: Value,
    config: Value,
    last: Option<(u16, Value)>,
    access: String,
    task_id: String,
    /// The lease id each workflow runner starts with (its idempotency key), by holder.
    workflow_leases: std::collections::HashMap<String, String>,
    /// The lease of the last workflow start that succeeded.
    workflow_lease: Option<String>,
    /// The envelope of the last MCP tool call.
    tool_answer: Value,
}

impl OrchWorld {
    fn o(&self) -> &Orchestrator {
        self.orchestrator
            .as_ref()
            .expect("the Background starts the orchestrator")
    }

    fn worker_url(&self) -> String {
        self.worker_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:9".into())
    }

    fn capability(&self, slug: &str) -> Value {
        json!({
            "version": 1, "reported_at": Utc::now(),
            "node": {"node_slug": slug, "labels": []},
            "platform": {"os": "linux", "arch": "amd64"},
            "compute": {"cpu_cores": 2, "ram_mb": 4096},
            "inference": {"supported": true, "mode": "allow"},
            "worker_api": {"base_url": self.worker_url()}
        })
    }

    async fn remember(&mut self, resp: reqwest::Response) {
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        self.last = Some((status, body));
    }

    /// The node's JWT from the registration answer.
    fn jwt(&self) -> String {
        self.bootstrap["auth"]["node_jwt"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// One of the node endpoints named in the registration answer.
    fn endpoint(&self, name: &str) -> String {
        self.bootstrap["orchestrator"]["endpoints"][name]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// POSTs `body` to a node endpoint with the node's JWT and remembers the answer.
    async fn node_post(&mut self, endpoint: &str, body: Value) {
        let resp = self
            .http
            .post(self.endpoint(endpoint))
            .bearer_auth(self.jwt())
            .json(&body)
            .send()
            .await
            .unwrap();
        self.remember(resp).await;
    }

    /// A request to a gateway path carrying the user's access token.
    fn user_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.o().gw))
            .bearer_auth(&self.access)
    }
}

#[given("a running orchestrator on a fresh database")]
async fn start(world: &mut OrchWorld) {
    world.orchestrator = Some(
        Orchestrator::start(&[
            ("WORKFLOW_RUNNER_BEARER_TOKEN", WORKFLOW_TOKEN),
            // These nodes are registered through the API and serve no model: readiness is the
            // node part only (the Project Manager warm-up is covered by orchestrator/tests/pm.rs).
            ("PM_REQUIRED", "false"),
            // Pulls fail (the double has no telemetry API); the scenarios check nothing minds.
            ("TELEMETRY_PULL_INTERVAL", "200ms"),
        ])
        .await,
    );
}

async fn run_job(
    State(received): State<Received>,
    headers: HeaderMap,
    Json(req): Json<RunJobRequest>,
) -> Json<RunJobResponse> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    received.lock().unwrap().push((token, req.clone()));
    let now = Utc::now();
    let script = req.sandbox.command.last().cloned().unwrap_or_default();
    // `exit N` exits N, with the stderr a shell gives for a word it cannot run.
    let exit_code = script
        .strip_prefix("exit ")
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Json(RunJobResponse {
        version: 1,
        task_id: req.task_id,
        job_id: req.job_id,
        status: RunStatus::Completed,
        exit_code,
        stdout: format!("ran: {script}\n"),
        stderr: match exit_code {
            0 => String::new(),
            _ => "sh: Tell: not found\n".into(),
        },
        started_at: now,
        ended_at: now,
        truncated: Truncated::default(),
        sba_result: None,
        artifacts: None,
        run_diagnostics: None,
        limits: None,
        oom_killed: false,
    })
}

#[given("a dispatchable node whose worker answers at once")]
async fn dispatchable_node(world: &mut OrchWorld) {
    let app = axum::Router::new()
        .route("/v1/worker/jobs:run", axum::routing::post(run_job))
        .with_state(world.received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    world.worker_url = Some(format!("http://{}", listener.local_addr().unwrap()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    register(world, "node-1".into()).await;
    fetch_config(world, "node-1".into()).await;
    ack(world, "node-1".into()).await;
    assert_eq!(world.last.as_ref().unwrap().0, 204);
}

#[given("I am logged in as the bootstrap admin")]
async fn login(world: &mut OrchWorld) {
    let resp: Value = world
        .http
        .post(format!("{}/v1/auth/login", world.o().gw))
        .json(&json!({"handle": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    world.access = resp["access_token"]
        .as_str()
        .expect("login works")
        .to_owned();
}

#[when(expr = "node {string} registers with the correct pre-shared key")]
async fn register(world: &mut OrchWorld, slug: String) {
    register_with(world, slug, PSK.to_owned()).await;
}

#[when(expr = "node {string} registers with the pre-shared key {string}")]
async fn register_with(world: &mut OrchWorld, slug: String, psk: String) {
    let resp = world
        .http
        .post(format!("{}/v1/nodes/register", world.o().cp))
        .json(&json!({"psk": psk, "capability": world.capability(&slug)}))
        .send()
        .await
        .unwrap();
    world.remember(resp).await;
    if world.last.as_ref().unwrap().0 < 300 {
        world.bootstrap = world.last.as_ref().unwrap().1.clone();
    }
}

#[then("the registration answer is 201 with a node JWT and the node config URL")]
fn registration_answer(world: &mut OrchWorld) {
    let (status, body) = world.last.as_ref().unwrap();
    assert_eq!(*status, 201);
    assert!(
        body["auth"]["node_jwt"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(
        body["orchestrator"]["endpoints"]["node_config_url"],
        format!("{}/v1/nodes/config", world.o().cp)
    );
}

#[when(expr = "node {string} reports its capabilities")]
async fn report(world: &mut OrchWorld, slug: String) {
    let capability = world.capability(&slug);
    world.node_post("node_report_url", capability).await;
}

#[then(expr = "the report is accepted with 204")]
#[then(expr = "the acknowledgement is accepted with 204")]
fn accepted(world: &mut OrchWorld) {
    assert_eq!(world.last.as_ref().unwrap().0, 204);
}

#[when(expr = "node {string} fetches its configuration")]
async fn fetch_config(world: &mut OrchWorld, _slug: String) {
    let resp = world
        .http
        .get(world.endpoint("node_config_url"))
        .bearer_auth(world.jwt())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    world.config = resp.json().await.unwrap();
}

#[then("the configuration has a ULID config_version, the node's worker URL and a worker token")]
fn config_shape(world: &mut OrchWorld) {
    let version = world.config["config_version"].as_str().unwrap();
    assert_eq!(version.len(), 26);
    assert!(version.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        world.config["orchestrator"]["endpoints"]["worker_api_target_url"],
        world.worker_url()
    );
    assert!(
        world.config["worker_api"]["orchestrator_bearer_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32)
    );
}

#[then(expr = "the configuration selects the model {string}")]
fn config_model(world: &mut OrchWorld, model: String) {
    assert_eq!(
        world.config["inference_backend"]["selected_model"],
        model.as_str()
    );
    assert_eq!(world.config["inference_backend"]["enabled"], true);
}

#[when(expr = "node {string} acknowledges the configuration as applied")]
async fn ack(world: &mut OrchWorld, slug: String) {
    let version = world.config["config_version"].as_str().unwrap().to_owned();
    ack_version(world, slug, version).await;
}

#[when(expr = "node {string} acknowledges config_version {string} as applied")]
async fn ack_version(world: &mut OrchWorld, slug: String, version: String) {
    let ack = json!({"version": 1, "node_slug": slug, "config_version": version, "ack_at": Utc::now(), "status": "applied"});
    world.node_post("node_config_url", ack).await;
}

#[then(expr = "the orchestrator records the ack {string} for that config_version")]
async fn ack_recorded(world: &mut OrchWorld, status: String) {
    let (ack, version): (String, String) =
        sqlx::query_as("SELECT config_ack_status, config_ack_version FROM nodes")
            .fetch_one(&world.o().db)
            .await
            .unwrap();
    assert_eq!(ack, status);
    assert_eq!(version, world.config["config_version"].as_str().unwrap());
}

#[then(expr = "the answer is a {int} problem")]
fn problem(world: &mut OrchWorld, status: u16) {
    let (got, body) = world.last.as_ref().unwrap();
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[then("no node is stored")]
async fn no_node(world: &mut OrchWorld) {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM nodes")
        .fetch_one(&world.o().db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[given(expr = "I create a {string} task {string}")]
#[when(expr = "I create a {string} task {string}")]
async fn create_task(world: &mut OrchWorld, mode: String, text: String) {
    let resp = world
        .user_request(Method::POST, "/v1/tasks")
        .json(&json!({"prompt": text, "input_mode": mode}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let task: Value = resp.json().await.unwrap();
    world.task_id = task["id"].as_str().unwrap().to_owned();
}

async fn get(world: &OrchWorld, path: &str) -> (u16, Value) {
    let resp = world.user_request(Method::GET, path).send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[then(expr = "the task becomes {string}")]
async fn task_becomes(world: &mut OrchWorld, status: String) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (_, task) = get(world, &format!("/v1/tasks/{}", world.task_id)).await;
        if task["status"] == status.as_str() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task stayed {}",
            task["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[then(expr = "the worker received the command {string} {string} {string} with the node's token")]
fn worker_received(world: &mut OrchWorld, a: String, b: String, c: String) {
    let received = world.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let (token, req) = &received[0];
    assert_eq!(req.sandbox.command, [a, b, c]);
    assert_eq!(
        token.as_deref(),
        world.config["worker_api"]["orchestrator_bearer_token"].as_str()
    );
}

#[then("the worker received nothing")]
fn worker_nothing(world: &mut OrchWorld) {
    assert!(world.received.lock().unwrap().is_empty());
}

#[then(expr = "the task logs show stdout {string}")]
async fn logs(world: &mut OrchWorld, stdout: String) {
    let (status, logs) = get(world, &format!("/v1/tasks/{}/logs", world.task_id)).await;
    assert_eq!(status, 200);
    assert_eq!(logs["stdout"].as_str().unwrap().trim_end(), stdout);
}

#[then(expr = "the task summary says {string}")]
async fn summary(world: &mut OrchWorld, text: String) {
    let (_, task) = get(world, &format!("/v1/tasks/{}", world.task_id)).await;
    assert!(
        task["summary"].as_str().unwrap_or_default().contains(&text),
        "{task}"
    );
}

#[then(expr = "the task result keeps exit code {int} and stderr {string}")]
async fn result_keeps(world: &mut OrchWorld, code: i64, stderr: String) {
    let (status, result) = get(world, &format!("/v1/tasks/{}/result", world.task_id)).await;
    assert_eq!(status, 200);
    let job = &result["jobs"][0];
    assert_eq!(job["status"], "failed", "{result}");
    assert_eq!(job["result"]["exit_code"], code, "{result}");
    assert_eq!(
        job["result"]["stderr"].as_str().map(str::trim_end),
        Some(stderr.as_str())
    );
}

#[when("I log out")]
async fn logout(world: &mut OrchWorld) {
    let resp = world
        .user_request(Method::POST, "/v1/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[then(expr = "asking who I am is a {int} problem")]
async fn whoami(world: &mut OrchWorld, status: u16) {
    let resp = world
        .user_request(Method::GET, "/v1/users/me")
        .send()
        .await
        .unwrap();
    world.remember(resp).await;
    problem(world, status);
}

#[then(expr = "readyz answers {int} with a reason mentioning {string}")]
async fn readyz_reason(world: &mut OrchWorld, status: u16, reason: String) {
    let resp = world
        .http
        .get(format!("{}/readyz", world.o().cp))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), status);
    assert!(resp.text().await.unwrap().contains(&reason));
}

#[then(expr = "readyz answers {int} {string}")]
async fn readyz_ok(world: &mut OrchWorld, status: u16, text: String) {
    for base in [&world.o().cp, &world.o().gw] {
        let resp = world
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.text().await.unwrap(), text);
    }
}

#[when(expr = "I create a {string} task {string} requiring the label {string}")]
async fn create_task_requiring(world: &mut OrchWorld, mode: String, text: String, label: String) {
    let resp = world
        .user_request(Method::POST, "/v1/tasks")
        .json(&json!({"prompt": text, "input_mode": mode, "requirements": {"labels": [label]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let task: Value = resp.json().await.unwrap();
    world.task_id = task["id"].as_str().unwrap().to_owned();
}

#[then(expr = "the task waits with the reason {string}")]
async fn task_waits(world: &mut OrchWorld, reason: String) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (_, task) = get(world, &format!("/v1/tasks/{}", world.task_id)).await;
        if task["wait_reason"] == reason.as_str() {
            assert_eq!(task["status"], "queued", "{task}");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{task}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[when("I cancel the task")]
async fn cancel_task(world: &mut OrchWorld) {
    let path = format!("/v1/tasks/{}/cancel", world.task_id);
    let resp = world
        .user_request(Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[when(expr = "I drain node {string}")]
async fn drain(world: &mut OrchWorld, slug: String) {
    let path = format!("/v1/nodes/{slug}/drain");
    let resp = world
        .user_request(Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let node: Value = resp.json().await.unwrap();
    assert_eq!(node["state"], "drained", "{node}");
}

#[when(expr = "I undrain node {string}")]
async fn undrain(world: &mut OrchWorld, slug: String) {
    let path = format!("/v1/nodes/{slug}/undrain");
    let resp = world
        .user_request(Method::POST, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[then(expr = "node {string} shows no telemetry and is active")]
async fn no_telemetry(world: &mut OrchWorld, slug: String) {
    let (status, node) = get(world, &format!("/v1/nodes/{slug}")).await;
    assert_eq!(status, 200, "{node}");
    assert!(node.get("telemetry").is_none(), "{node}");
    assert_eq!(node["state"], "active", "{node}");
}

/// POSTs `body` to a workflow API path with the runner's token and remembers the answer.
async fn workflow_post(world: &mut OrchWorld, path: &str, body: Value) {
    let resp = world
        .http
        .post(format!("{}{path}", world.o().cp))
        .bearer_auth(WORKFLOW_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    world.remember(resp).await;
}

#[when(expr = "the workflow runner {string} starts the task")]
async fn workflow_start(world: &mut OrchWorld, holder: String) {
    let key = world
        .workflow_leases
        .entry(holder.clone())
        .or_insert_with(|| uuid::Uuid::new_v4().to_string())
        .clone();
    let body = json!({"task_id": world.task_id, "holder_id": holder, "idempotency_key": key});
    workflow_post(world, "/v1/workflow/start", body).await;
    if world
        .last
        .as_ref()
        .is_some_and(|(status, _)| *status == 200)
    {
        world.workflow_lease = Some(key);
    }
}

#[when(expr = "the workflow runner saves a checkpoint at {string}")]
async fn workflow_checkpoint(world: &mut OrchWorld, node: String) {
    let state = json!({"task_id": world.task_id, "current_step_index": 0}).to_string();
    let body = json!({"task_id": world.task_id, "state": state, "last_node_id": node});
    workflow_post(world, "/v1/workflow/checkpoint", body).await;
    assert_eq!(world.last.as_ref().unwrap().0, 204);
}

#[when("the workflow runner resumes the task")]
async fn workflow_resume(world: &mut OrchWorld) {
    let body = json!({"task_id": world.task_id});
    workflow_post(world, "/v1/workflow/resume", body).await;
}

#[when("the workflow runner releases the lease")]
async fn workflow_release(world: &mut OrchWorld) {
    let lease = world.workflow_lease.clone().expect("a started workflow");
    let body = json!({"task_id": world.task_id, "lease_id": lease});
    workflow_post(world, "/v1/workflow/release", body).await;
    assert_eq!(world.last.as_ref().unwrap().0, 204);
}

#[then(expr = "the workflow answer is 200 with status {string} and a run_id")]
fn workflow_started(world: &mut OrchWorld, status: String) {
    let (code, body) = world.last.as_ref().unwrap();
    assert_eq!(*code, 200, "{body}");
    assert_eq!(body["status"], status.as_str(), "{body}");
    assert!(uuid::Uuid::parse_str(body["run_id"].as_str().unwrap_or_default()).is_ok());
    assert_eq!(body["run_id"], body["lease_id"]);
}

#[then(expr = "the workflow answer is 200 with last_node_id {string}")]
fn workflow_resumed(world: &mut OrchWorld, node: String) {
    let (code, body) = world.last.as_ref().unwrap();
    assert_eq!(*code, 200, "{body}");
    assert_eq!(body["last_node_id"], node.as_str(), "{body}");
    let state: Value = serde_json::from_str(body["state"].as_str().unwrap()).unwrap();
    assert_eq!(state["task_id"], world.task_id.as_str());
}

/// An agent token from `cynode-orchestrator mcp-token` (`pm`, or `sandbox` for the task's job).
async fn agent_token(world: &OrchWorld, agent: &str) -> String {
    let mut command = Command::new(binary("cynode-orchestrator"));
    command
        .args(["mcp-token", "--agent", agent])
        .env("DATABASE_URL", &world.o().database_url)
        .env("JWT_SECRET", JWT_SECRET);
    if agent == "sandbox" {
        let job: uuid::Uuid =
            sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1::uuid ORDER BY created_at")
                .bind(&world.task_id)
                .fetch_one(&world.o().db)
                .await
                .unwrap();
        command.args(["--task-id", &world.task_id, "--job-id", &job.to_string()]);
    }
    let output = command.output().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[when(expr = "the {word} agent calls {string} for the task")]
async fn agent_calls(world: &mut OrchWorld, agent: String, tool: String) {
    let token = match agent.as_str() {
        "anonymous" => None,
        "project-manager" => Some(agent_token(world, "pm").await),
        "sandbox" => Some(agent_token(world, "sandbox").await),
        other => panic!("unknown agent {other}"),
    };
    let mcp = cynode_e2e::mcp::McpClient::new(&world.o().mcp);
    world.tool_answer = mcp
        .call(token.as_deref(), &tool, json!({"task_id": world.task_id}))
        .await;
}

#[then("the tool answers with the task")]
fn tool_answers_task(world: &mut OrchWorld) {
    let answer = &world.tool_answer;
    assert_eq!(answer["status"], "success", "{answer}");
    assert_eq!(answer["result"]["task_id"], world.task_id.as_str());
}

#[then(expr = "the tool answers the error {string}")]
fn tool_answers_error(world: &mut OrchWorld, kind: String) {
    let answer = &world.tool_answer;
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["type"], kind.as_str(), "{answer}");
}

#[then(expr = "the MCP audit holds exactly one {string} {string} row for {string} by {string}")]
async fn audit_row(
    world: &mut OrchWorld,
    decision: String,
    status: String,
    tool: String,
    agent: String,
) {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT decision, status, subject_type FROM mcp_tool_call_audit_log WHERE tool_name = $1",
    )
    .bind(&tool)
    .fetch_all(&world.o().db)
    .await
    .unwrap();
    assert_eq!(rows, vec![(decision, status, agent)]);
    // Admins read the same row through the gateway.
    let resp = world
        .user_request(Method::GET, &format!("/v1/audit/mcp?tool_name={tool}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrator_features() {
    OrchWorld::cucumber()
        // Each scenario runs an orchestrator (4 connections) and holds 2 of its own: bounded,
        // so that the scenarios together stay far below PostgreSQL's 100 connections beside
        // the other tests (cucumber's default is 64 at once, which once ran it out).
        .max_concurrent_scenarios(4)
        .fail_on_skipped()
        // The test harness owns the command line (filters, --nocapture): not cucumber's to parse.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run_and_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/orchestrator"))
        .await;
}
