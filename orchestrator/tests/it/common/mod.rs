//! Shared test fixtures: an orchestrator on a fresh real PostgreSQL database, a worker API test
//! double speaking the real `jobs:run` wire format, and a simulated node.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod pm;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cynode_contracts::node::*;
use cynode_contracts::worker::{RunJobRequest, RunJobResponse, RunStatus, Truncated};
use cynode_e2e::{DevEnv, free_port};
use cynode_orchestrator::auth::{Claims, Keys, TokenType};
use cynode_orchestrator::{Config, Role, Running, Secrets};
use cynode_service_kit::secrets::Secret;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

pub const PSK: &str = "test-psk-0123456789";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef";
pub const ADMIN_PASSWORD: &str = "admin-test-password";
/// How long any wait in these tests may take before it fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A task in a final state.
pub fn finished(task: &Value) -> bool {
    matches!(
        task["status"].as_str(),
        Some("completed" | "failed" | "canceled")
    )
}

/// Signs a token of `token_type` for subject `x` with `key`; `edit` adjusts the claims first.
pub fn sign_token(
    key: &[u8],
    token_type: TokenType,
    lifetime: Duration,
    edit: impl FnOnce(&mut Claims),
) -> String {
    let (mut claims, _) = Keys::claims(token_type, "x".into(), lifetime);
    edit(&mut claims);
    Keys::new(key).sign(&claims).unwrap()
}

/// `token`, an access token this test's orchestrator issued, as it will be once it has expired:
/// the same claims and lifetime moved into the past, signed with the same key. Tests need not
/// wait a token's lifetime out.
pub fn expired(token: &str) -> String {
    let keys = Keys::new(JWT_SECRET.as_bytes());
    let mut claims = keys.verify(token, TokenType::Access).unwrap();
    let lifetime = claims.exp - claims.iat;
    claims.exp = Utc::now().timestamp() - 1;
    claims.iat = claims.exp - lifetime;
    keys.sign(&claims).unwrap()
}

/// Node secrets issued in this test process, by (database, slug).
static NODE_SECRETS: std::sync::LazyLock<Mutex<HashMap<(String, String), String>>> =
    std::sync::LazyLock::new(Default::default);

pub struct Orchestrator {
    pub running: Option<Running>,
    pub gw: String,
    pub cp: String,
    pub db: PgPool,
    pub database_url: String,
    pub http: reqwest::Client,
}

pub fn settings(cp_port: u16, gw_port: u16, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("CONTROL_PLANE_LISTEN_ADDR", format!("127.0.0.1:{cp_port}")),
        ("USER_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gw_port}")),
        (
            "ORCHESTRATOR_PUBLIC_URL",
            format!("http://127.0.0.1:{cp_port}"),
        ),
        // Tests run orchestrators side by side: each MCP gateway on a port of its own.
        ("MCP_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("DISPATCH_HTTP_TIMEOUT", "10s".to_owned()),
        ("DISPATCH_RETRY_BASE", "200ms".to_owned()),
        ("DATABASE_POOL_SIZE", "8".to_owned()),
        ("INFERENCE_MODEL", "smollm2:135m".to_owned()),
        // Readiness of these tests' nodes (worker doubles without a model) needs no PM model;
        // tests of the PM turn it on.
        ("PM_REQUIRED", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

impl Orchestrator {
    /// `POST /v1/users/me/api-keys` with `body`.
    pub async fn create_key(&self, token: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/users/me/api-keys", self.gw))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a key named `name` and returns the answer.
    pub async fn new_key(&self, token: &str, name: &str) -> Value {
        let resp = self.create_key(token, json!({"name": name})).await;
        assert_eq!(resp.status(), 201, "create key {name}");
        resp.json().await.unwrap()
    }

    /// `all` on a fresh database.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let database_url = DevEnv::load().migrated_database().await;
        Self::start_on(&database_url, Role::All, extra).await
    }

    pub async fn start_on(database_url: &str, role: Role, extra: &[(&str, &str)]) -> Self {
        let (cp_port, gw_port) = (free_port(), free_port());
        let vars = settings(cp_port, gw_port, extra);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let secrets = Secrets {
            database_url: Secret::new(database_url),
            jwt_secret: Secret::new(JWT_SECRET),
            node_registration_psk: Some(Secret::new(PSK)),
            bootstrap_admin_password: Some(Secret::new(ADMIN_PASSWORD)),
            worker_token_key: vars.get("WORKER_TOKEN_KEY").map(Secret::new),
            worker_token_key_previous: vars.get("WORKER_TOKEN_KEY_PREVIOUS").map(Secret::new),
            workflow_runner_bearer_token: vars.get("WORKFLOW_RUNNER_BEARER_TOKEN").map(Secret::new),
        };
        let running = cynode_orchestrator::start(role, config, secrets)
            .await
            .expect("orchestrator starts");
        Self {
            gw: format!("http://127.0.0.1:{gw_port}"),
            cp: format!("http://127.0.0.1:{cp_port}"),
            db: running.state.db.clone(),
            database_url: database_url.to_owned(),
            running: Some(running),
            http: reqwest::Client::new(),
        }
    }

    /// An MCP client of this orchestrator's gateway.
    pub fn mcp(&self) -> cynode_e2e::mcp::McpClient {
        cynode_e2e::mcp::McpClient::new(
            self.running
                .as_ref()
                .expect("running")
                .state
                .mcp_url
                .clone()
                .expect("the control plane serves MCP"),
        )
    }

    /// An agent token for `agent`, valid for five minutes.
    pub fn agent_token(&self, agent: &cynode_orchestrator::mcp::Agent) -> String {
        self.running
            .as_ref()
            .expect("running")
            .state
            .mcp_keys
            .issue(agent, Duration::from_secs(300))
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Logs in and returns (access, refresh).
    pub async fn login(&self, handle: &str, password: &str) -> (String, String) {
        let resp = self
            .post_json(
                "/v1/auth/login",
                json!({"handle": handle, "password": password}),
            )
            .await;
        assert_eq!(resp.status(), 200, "login of {handle}");
        let body: Value = resp.json().await.unwrap();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await.0
    }

    /// Another user, created by the admin through `POST /v1/users` (with their own default
    /// project and no other role).
    pub async fn create_user(&self, handle: &str, password: &str) {
        let admin = self.admin_token().await;
        let resp = self
            .http
            .post(format!("{}/v1/users", self.gw))
            .bearer_auth(&admin)
            .json(&json!({"handle": handle, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "creating {handle}: {}",
            resp.text().await.unwrap()
        );
    }

    /// A project the admin creates (and owns), with `members` bound as its members.
    pub async fn create_project(&self, slug: &str, members: &[&str]) -> Uuid {
        let admin = self.admin_token().await;
        let resp = self
            .http
            .post(format!("{}/v1/projects", self.gw))
            .bearer_auth(&admin)
            .json(&json!({"slug": slug, "display_name": slug}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "creating project {slug}");
        let id: Uuid = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        for member in members {
            let resp = self
                .http
                .post(format!("{}/v1/role-bindings", self.gw))
                .bearer_auth(&admin)
                .json(
                    &json!({"role": "member", "subject_type": "user", "subject": member,
                              "scope_type": "project", "scope_id": slug}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "binding {member} in {slug}");
        }
        id
    }

    pub async fn create_task(&self, token: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/v1/tasks", self.gw))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "create task {body}");
        resp.json().await.unwrap()
    }

    /// Creates a script task running `prompt` and returns its id.
    pub async fn create_script_task(&self, token: &str, prompt: &str) -> String {
        self.create_task(token, json!({"prompt": prompt, "input_mode": "script"}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates `n` script tasks `echo 0`, `echo 1`, ... and returns their ids in that order.
    pub async fn create_echo_tasks(&self, token: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(self.create_script_task(token, &format!("echo {i}")).await);
        }
        ids
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self.get_url(&format!("{}{path}", self.gw), token).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GET a full URL with a bearer token.
    pub async fn get_url(&self, url: &str, token: &str) -> reqwest::Response {
        self.http.get(url).bearer_auth(token).send().await.unwrap()
    }

    /// GET a full URL without a token.
    pub async fn fetch(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// POST a JSON body to a gateway path, without a token.
    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.gw))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST to a gateway path with a bearer token and no body.
    pub async fn post_auth(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.gw))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// POST raw text declared as JSON to a full URL, with a bearer token if given.
    pub async fn post_raw(
        &self,
        url: &str,
        token: Option<&str>,
        body: String,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    /// Cancels the task `id_or_name`.
    pub async fn cancel(&self, token: &str, id_or_name: &str) -> reqwest::Response {
        self.post_auth(token, &format!("/v1/tasks/{id_or_name}/cancel"))
            .await
    }

    /// Registers a node with the right pre-shared key and `capability`.
    /// Registers like a node that keeps its identity: the `node_secret` of an earlier
    /// registration of the slug on this database is presented, and a newly issued one kept.
    pub async fn register_node(&self, capability: &Value) -> reqwest::Response {
        let slug = capability["node"]["node_slug"].as_str().unwrap_or_default();
        let key = (self.database_url.clone(), slug.to_owned());
        let known = NODE_SECRETS.lock().unwrap().get(&key).cloned();
        let resp = self.register_node_with(capability, known.as_deref()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap();
        let payload: Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(secret) = payload["auth"]["node_secret"].as_str() {
            NODE_SECRETS.lock().unwrap().insert(key, secret.to_owned());
        }
        let mut rebuilt = axum::http::Response::builder().status(status);
        for (name, value) in &headers {
            rebuilt = rebuilt.header(name, value);
        }
        reqwest::Response::from(rebuilt.body(body).unwrap())
    }

    /// `POST /v1/nodes/register` with exactly this `node_secret` (or none).
    pub async fn register_node_with(
        &self,
        capability: &Value,
        node_secret: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({"psk": PSK, "capability": capability});
        if let Some(secret) = node_secret {
            body["node_secret"] = json!(secret);
        }
        self.http
            .post(format!("{}/v1/nodes/register", self.cp))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The OpenAPI document served at `base`.
    pub async fn openapi(&self, base: &str) -> Value {
        self.fetch(&format!("{base}/openapi.json"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Makes every backed-off job due now, ends every node's dispatch pause and wakes the
    /// dispatcher.
    pub async fn retry_now(&self) {
        sqlx::query("UPDATE jobs SET next_attempt_at = now()")
            .execute(&self.db)
            .await
            .unwrap();
        sqlx::query("UPDATE nodes SET dispatch_paused_until = NULL")
            .execute(&self.db)
            .await
            .unwrap();
        self.running.as_ref().unwrap().state.wake.notify_one();
    }

    /// Polls the task until it is [`finished`].
    /// `(status, body)` of `GET /readyz` on the control plane.
    pub async fn readyz(&self) -> (u16, String) {
        let resp = self.fetch(&format!("{}/readyz", self.cp)).await;
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn wait_finished(&self, token: &str, id: &str) -> Value {
        self.wait_task(token, id, LIMIT, finished).await
    }

    /// Polls the task until `pred` holds on it (or panics after `limit`).
    pub async fn wait_task(
        &self,
        token: &str,
        id: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let (status, task) = self.get(token, &format!("/v1/tasks/{id}")).await;
            assert_eq!(status, 200, "{task}");
            if pred(&task) {
                return task;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task never got there: {task}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

/// Asserts a problem+json answer with `status` whose detail contains `needle`.
pub async fn assert_problem(resp: reqwest::Response, status: u16, needle: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "detail {detail:?} should mention {needle:?}"
    );
    body
}

pub fn capability(slug: &str, worker_url: &str) -> Value {
    json!({
        "version": 1,
        "reported_at": Utc::now(),
        "node": {"node_slug": slug, "labels": []},
        "platform": {"os": "linux", "arch": "amd64"},
        "compute": {"cpu_cores": 2, "ram_mb": 4096},
        "gpu": {"present": false, "devices": []},
        "inference": {"supported": true, "mode": "allow", "existing_service": false, "running": false},
        "worker_api": {"base_url": worker_url}
    })
}

/// A configuration acknowledgement, as the node manager sends it.
pub fn ack_body(slug: &str, config_version: &str, status: &str) -> Value {
    json!({"version": 1, "node_slug": slug, "config_version": config_version,
           "ack_at": Utc::now(), "status": status})
}

/// A node as the node manager drives it.
pub struct Node {
    pub slug: String,
    pub bootstrap: NodeBootstrapPayload,
    pub config: Option<NodeConfigurationPayload>,
}

impl Node {
    pub async fn register(o: &Orchestrator, slug: &str, worker_url: &str) -> Self {
        Self::register_with(o, &capability(slug, worker_url)).await
    }

    /// Registers with this capability report (its `node.node_slug` is the node's slug).
    pub async fn register_with(o: &Orchestrator, capability: &Value) -> Self {
        let resp = o.register_node(capability).await;
        assert!(
            resp.status() == 201 || resp.status() == 200,
            "{}",
            resp.status()
        );
        Self {
            slug: capability["node"]["node_slug"].as_str().unwrap().to_owned(),
            bootstrap: resp.json().await.unwrap(),
            config: None,
        }
    }

    pub fn jwt(&self) -> &str {
        &self.bootstrap.auth.node_jwt
    }

    pub async fn fetch_config(&mut self, o: &Orchestrator) -> &NodeConfigurationPayload {
        let resp = o
            .get_url(
                &self.bootstrap.orchestrator.endpoints.node_config_url,
                self.jwt(),
            )
            .await;
        assert_eq!(resp.status(), 200);
        self.config = Some(resp.json().await.unwrap());
        self.config.as_ref().unwrap()
    }

    pub async fn ack(
        &self,
        o: &Orchestrator,
        config_version: &str,
        status: &str,
    ) -> reqwest::Response {
        self.send_ack(o, &ack_body(&self.slug, config_version, status))
            .await
    }

    /// Posts any acknowledgement body with this node's token.
    pub async fn send_ack(&self, o: &Orchestrator, body: &Value) -> reqwest::Response {
        self.post(
            o,
            &self.bootstrap.orchestrator.endpoints.node_config_url,
            body,
        )
        .await
    }

    /// Reports `capability` with this node's token.
    pub async fn report(&self, o: &Orchestrator, capability: &Value) -> reqwest::Response {
        self.post(
            o,
            &self.bootstrap.orchestrator.endpoints.node_report_url,
            capability,
        )
        .await
    }

    async fn post(&self, o: &Orchestrator, url: &str, body: &Value) -> reqwest::Response {
        o.http
            .post(url)
            .bearer_auth(self.jwt())
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Register, fetch config, ack applied: a dispatchable node. Returns the worker token.
    pub async fn ready(o: &Orchestrator, slug: &str, worker: &WorkerDouble) -> (Self, String) {
        Self::ready_with(o, worker, &capability(slug, &worker.url)).await
    }

    /// [`Node::ready`] with this capability report.
    pub async fn ready_with(
        o: &Orchestrator,
        worker: &WorkerDouble,
        capability: &Value,
    ) -> (Self, String) {
        let mut node = Self::register_with(o, capability).await;
        let config = node.fetch_config(o).await.clone();
        let token = config.worker_api.orchestrator_bearer_token.clone();
        worker.set_token(&token);
        assert_eq!(
            node.ack(o, &config.config_version, "applied")
                .await
                .status(),
            204
        );
        (node, token)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer at once with a completed run.
    Instant,
    /// Answer 500.
    Fail,
    /// Never answer.
    Hang,
    /// Hold every request until released, then answer; as [`Mode::Fail`] does if the mode is
    /// `Fail` by then (a node that went away with deliveries in flight).
    Block,
    /// Answer at once with a run whose command exited with this code, as the real worker API
    /// does for a command the shell cannot find (`completed`, 127, `sh: Tell: not found`).
    Exit(i32),
    /// Answer at once with a run that hit its sandbox timeout.
    TimedOut,
    /// Answer 503 "job interrupted", as the real worker API does for a run its shutdown stopped.
    Interrupted,
}

#[derive(Default)]
pub struct DoubleState {
    token: Mutex<Option<String>>,
    mode: Mutex<Option<Mode>>,
    /// Every authorised request, in arrival order.
    pub received: Mutex<Vec<RunJobRequest>>,
    /// Runs the double finished and answered, per job.
    pub completed: Mutex<HashMap<Uuid, u32>>,
    /// Requests whose caller went away before the answer.
    pub aborted: Mutex<HashMap<Uuid, u32>>,
    pub rejected_tokens: Mutex<u32>,
    /// Live log requests (`GET /v1/worker/jobs/{job_id}/logs`) with the right token; the double
    /// never answers them, like a node that stopped responding.
    pub log_requests: Mutex<u32>,
    in_flight: Mutex<u32>,
    pub max_in_flight: Mutex<u32>,
    release: Mutex<Option<watch::Sender<bool>>>,
}

/// The worker API as the orchestrator sees it: `POST /v1/worker/jobs:run` with the node's bearer
/// token and a `RunJobRequest` (unknown fields refused), answered with a `RunJobResponse`.
pub struct WorkerDouble {
    pub url: String,
    pub addr: SocketAddr,
    pub state: Arc<DoubleState>,
}

struct InFlight {
    state: Arc<DoubleState>,
    job_id: Uuid,
    done: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.state.in_flight.lock().unwrap() -= 1;
        if !self.done {
            *self
                .state
                .aborted
                .lock()
                .unwrap()
                .entry(self.job_id)
                .or_default() += 1;
        }
    }
}

async fn run_job(
    State(state): State<Arc<DoubleState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let expected = state.token.lock().unwrap().clone();
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if expected.is_none() || given != expected.as_deref() {
        *state.rejected_tokens.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, Json(json!({"type":"about:blank","title":"Unauthorized","status":401,"detail":"bad token"}))).into_response();
    }
    let req: RunJobRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"type":"about:blank","title":"Bad","status":400,"detail":e.to_string()}),
                ),
            )
                .into_response();
        }
    };
    state.received.lock().unwrap().push(req.clone());
    let mode = state.mode.lock().unwrap().unwrap_or(Mode::Instant);
    {
        let mut n = state.in_flight.lock().unwrap();
        *n += 1;
        let mut max = state.max_in_flight.lock().unwrap();
        *max = (*max).max(*n);
    }
    let mut guard = InFlight {
        state: state.clone(),
        job_id: req.job_id,
        done: false,
    };
    match mode {
        Mode::Fail => {
            guard.done = true;
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"type":"about:blank","title":"Internal","status":500,"detail":"sandbox runtime exploded"}))).into_response();
        }
        Mode::Interrupted => {
            guard.done = true;
            let problem = cynode_contracts::problem::Problem::job_interrupted(
                "the worker API shut down while the job was running",
            );
            return (StatusCode::SERVICE_UNAVAILABLE, Json(problem)).into_response();
        }
        Mode::Hang => std::future::pending::<()>().await,
        Mode::Block => {
            let mut rx = state
                .release
                .lock()
                .unwrap()
                .get_or_insert_with(|| watch::channel(false).0)
                .subscribe();
            let _ = rx.wait_for(|r| *r).await;
            if *state.mode.lock().unwrap() == Some(Mode::Fail) {
                guard.done = true;
                return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"type":"about:blank","title":"Unavailable","status":503,"detail":"the worker is shutting down"}))).into_response();
            }
        }
        Mode::Instant | Mode::Exit(_) | Mode::TimedOut => {}
    }
    guard.done = true;
    *state
        .completed
        .lock()
        .unwrap()
        .entry(req.job_id)
        .or_default() += 1;
    let script = req.sandbox.command.last().cloned().unwrap_or_default();
    let now = Utc::now();
    let (status, exit_code, stderr) = match mode {
        Mode::Exit(code) => (RunStatus::Completed, code, "sh: Tell: not found\n".into()),
        Mode::TimedOut => (RunStatus::Timeout, -1, String::new()),
        _ => (RunStatus::Completed, 0, "note\n".into()),
    };
    Json(RunJobResponse {
        version: 1,
        task_id: req.task_id,
        job_id: req.job_id,
        status,
        exit_code,
        stdout: format!("ran: {script}\n"),
        stderr,
        started_at: now,
        ended_at: now,
        truncated: Truncated::default(),
        sba_result: None,
        artifacts: None,
        run_diagnostics: Some(json!({"double": true})),
        limits: None,
        oom_killed: false,
    })
    .into_response()
}

/// A node that takes the log request and never answers.
async fn silent_logs(State(state): State<Arc<DoubleState>>, headers: HeaderMap) -> Response {
    let expected = state.token.lock().unwrap().clone();
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if expected.is_none() || given != expected.as_deref() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    *state.log_requests.lock().unwrap() += 1;
    std::future::pending().await
}

impl WorkerDouble {
    pub async fn start(mode: Mode) -> Self {
        let state = Arc::new(DoubleState::default());
        *state.mode.lock().unwrap() = Some(mode);
        *state.release.lock().unwrap() = Some(watch::channel(false).0);
        let app = axum::Router::new()
            .route("/v1/worker/jobs:run", axum::routing::post(run_job))
            .route(
                cynode_contracts::routes::worker::JOB_LOGS,
                axum::routing::get(silent_logs),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}"),
            addr,
            state,
        }
    }

    pub fn set_token(&self, token: &str) {
        *self.state.token.lock().unwrap() = Some(token.to_owned());
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    pub fn release(&self) {
        if let Some(tx) = self.state.release.lock().unwrap().as_ref() {
            tx.send_replace(true);
        }
    }

    pub fn received(&self) -> Vec<RunJobRequest> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn completed(&self) -> HashMap<Uuid, u32> {
        self.state.completed.lock().unwrap().clone()
    }

    pub fn aborted(&self) -> HashMap<Uuid, u32> {
        self.state.aborted.lock().unwrap().clone()
    }

    pub fn in_flight(&self) -> u32 {
        *self.state.in_flight.lock().unwrap()
    }

    /// Waits until `pred` holds on the received requests.
    pub async fn wait_received(&self, limit: Duration, pred: impl Fn(&[RunJobRequest]) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !pred(&self.received()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker double never saw the expected requests: {:?}",
                self.received().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads one job row: (status, attempts, last_error, result).
pub async fn job_row(db: &PgPool, task_id: &str) -> (String, i32, Option<String>, Option<Value>) {
    sqlx::query_as("SELECT status, attempts, last_error, result FROM jobs WHERE task_id = $1::uuid")
        .bind(task_id)
        .fetch_one(db)
        .await
        .unwrap()
}
