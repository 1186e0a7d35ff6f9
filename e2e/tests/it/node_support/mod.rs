//! Shared by the node-side end-to-end tests: the real orchestrator binary on a fresh database
//! and the real node manager (which spawns the real worker API) with a notify socket we read.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cynode_e2e::notify::NotifySocket;
use cynode_e2e::process::{ChildGuard, binary, wait_http};
use cynode_e2e::{DevEnv, free_port};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use tokio::process::Command;

pub const MODEL: &str = "smollm2:135m";
pub const INFERENCE_COMMAND: &str =
    "-m /models/model.gguf --alias smollm2:135m --host 0.0.0.0 --port 11434";

/// `cynode-orchestrator all` with its secrets in files, logging to a file.
pub struct Orchestrator {
    pub process: ChildGuard,
    pub cp: String,
    pub gw: String,
    /// The MCP gateway's endpoint URL.
    pub mcp: String,
    pub database_url: String,
    pub psk: String,
    pub admin_password: String,
    /// Decrypts the worker tokens it stores (derived from its JWT secret, as without
    /// `WORKER_TOKEN_KEY`).
    pub jwt_secret: String,
    pub dir: tempfile::TempDir,
    /// The environment it runs with, so that a restart is the same orchestrator.
    vars: Vec<(String, String)>,
}

impl Orchestrator {
    pub async fn start(env: &DevEnv, extra: &[(&str, &str)]) -> Self {
        Self::start_on(env.migrated_database().await, extra).await
    }

    /// `cynode-orchestrator all` on the database at `database_url`.
    pub async fn start_on(database_url: String, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret = |name: &str, value: &str| -> String {
            let path = dir.path().join(name);
            std::fs::write(&path, value).unwrap();
            path.display().to_string()
        };
        let psk = format!("psk-{}", uuid::Uuid::new_v4().simple());
        let admin_password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let jwt_secret = uuid::Uuid::new_v4().to_string();
        let (cp_port, gw_port, mcp_port) = (free_port(), free_port(), free_port());
        let cp = format!("http://127.0.0.1:{cp_port}");
        let gw = format!("http://127.0.0.1:{gw_port}");
        let mut vars = vec![
            ("RUST_LOG".into(), "info".into()),
            (
                "DATABASE_URL_FILE".into(),
                secret("database_url", &database_url),
            ),
            ("JWT_SECRET_FILE".into(), secret("jwt", &jwt_secret)),
            ("NODE_REGISTRATION_PSK_FILE".into(), secret("psk", &psk)),
            (
                "BOOTSTRAP_ADMIN_PASSWORD_FILE".into(),
                secret("admin", &admin_password),
            ),
            (
                "CONTROL_PLANE_LISTEN_ADDR".into(),
                format!("127.0.0.1:{cp_port}"),
            ),
            (
                "USER_GATEWAY_LISTEN_ADDR".into(),
                format!("127.0.0.1:{gw_port}"),
            ),
            ("ORCHESTRATOR_PUBLIC_URL".into(), cp.clone()),
            ("MCP_LISTEN_ADDR".into(), format!("127.0.0.1:{mcp_port}")),
            ("INFERENCE_MODEL".into(), MODEL.into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let process = spawn_orchestrator(dir.path(), &vars, &cp).await;
        Self {
            process,
            cp,
            gw,
            mcp: format!("http://127.0.0.1:{mcp_port}/mcp"),
            database_url,
            psk,
            admin_password,
            jwt_secret,
            dir,
            vars,
        }
    }

    /// Runs `cynode-orchestrator ARGS` with this orchestrator's configuration and secrets and
    /// returns its stdout; it must succeed.
    pub async fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(binary("cynode-orchestrator"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "cynode-orchestrator {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Kills the process outright (no shutdown of any kind) and starts it again on the same
    /// ports, database and secrets, as systemd's `Restart=` would.
    pub async fn restart_after_crash(&mut self) {
        self.process.0.start_kill().unwrap();
        self.process.wait_exit(Duration::from_secs(10)).await;
        self.process = spawn_orchestrator(self.dir.path(), &self.vars, &self.cp).await;
    }

    /// Stops the process with SIGTERM and starts it again on the same ports, database and
    /// secrets but with `changes` to its environment, as an operator editing its settings would.
    pub async fn restart_with(&mut self, changes: &[(&str, &str)]) {
        let status = self.process.terminate(Duration::from_secs(30)).await;
        assert!(status.is_some(), "the orchestrator did not stop");
        for (name, value) in changes {
            self.vars.retain(|(k, _)| k != name);
            self.vars.push(((*name).to_owned(), (*value).to_owned()));
        }
        self.process = spawn_orchestrator(self.dir.path(), &self.vars, &self.cp).await;
    }

    /// Polls `GET /readyz` until it answers 200 (after a node is ready the orchestrator still
    /// warms up its Project Manager model) or `limit` passes; returns the last answer.
    pub async fn ready_within(&self, limit: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answer = self.readyz().await;
            if answer.0 == 200 || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `(status, body)` of `GET /readyz` on the control plane.
    pub async fn readyz(&self) -> (u16, String) {
        let resp = reqwest::get(format!("{}/readyz", self.cp)).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The node's row: `(config_version, config_ack_status, config_ack_version, worker token,
    /// config_ack_error as text)`.
    pub async fn node_row(&self, slug: &str) -> Option<NodeRow> {
        let mut conn = sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap();
        let row = sqlx::query(
            "SELECT config_version, config_ack_status, config_ack_version,
                    worker_api_bearer_token, config_ack_error::text, worker_api_target_url, id
             FROM nodes WHERE node_slug = $1",
        )
        .bind(slug)
        .fetch_optional(&mut conn)
        .await
        .unwrap()?;
        Some(NodeRow {
            config_version: row.get(0),
            ack_status: row.get(1),
            ack_version: row.get(2),
            worker_token: row.get::<Option<String>, _>(3).map(|stored| {
                let keys = cynode_orchestrator::worker_tokens::TokenKeys::new(
                    None,
                    None,
                    &cynode_service_kit::secrets::Secret::new(self.jwt_secret.clone()),
                );
                keys.open(row.get(6), &stored)
                    .expect("the stored token decrypts")
                    .expose()
                    .to_owned()
            }),
            ack_error: row.get(4),
            worker_url: row.get(5),
        })
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path(), "orchestrator.log")
    }

    /// `pg_dump` of its whole database, as text.
    pub fn pg_dump(&self) -> String {
        let out = std::process::Command::new("pg_dump")
            .arg(format!("--dbname={}", self.database_url))
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The `inference` object of the node's latest capability report.
    pub async fn latest_inference_report(&self, slug: &str) -> serde_json::Value {
        self.latest_snapshot(slug).await["inference"].take()
    }

    /// The node's newest capability report as the orchestrator stored it.
    pub async fn latest_snapshot(&self, slug: &str) -> serde_json::Value {
        let mut conn = sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap();
        sqlx::query(
            "SELECT c.capability_snapshot FROM node_capabilities c
             JOIN nodes n ON n.id = c.node_id WHERE n.node_slug = $1
             ORDER BY c.created_at DESC LIMIT 1",
        )
        .bind(slug)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0)
    }

    /// How many capability reports the node has sent (registration included).
    pub async fn capability_reports(&self, slug: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap();
        // Identical reports add no snapshot row; the node counts every report it receives.
        sqlx::query("SELECT capability_reports::bigint FROM nodes WHERE node_slug = $1")
            .bind(slug)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0)
    }
}

#[derive(Debug)]
pub struct NodeRow {
    pub config_version: String,
    pub ack_status: Option<String>,
    pub ack_version: Option<String>,
    pub worker_token: Option<String>,
    pub ack_error: Option<String>,
    pub worker_url: Option<String>,
}

/// What differs between node-manager runs.
pub struct NodeOptions {
    pub inference_url: String,
    pub inference_image: String,
    pub container_name: String,
    pub psk: String,
    pub extra_env: Vec<(String, String)>,
    /// `inference.existing_wait_seconds`: how long start-up waits for the server at the URL.
    pub existing_wait_seconds: u64,
    /// Appended to node.yaml (top-level sections the defaults leave out).
    pub extra_yaml: String,
}

impl NodeOptions {
    /// Uses the dev environment's llama-server as the inference that "already answers".
    pub fn existing_inference(env: &DevEnv, orchestrator: &Orchestrator) -> Self {
        Self {
            inference_url: env.inference_url.clone(),
            inference_image: "localhost/cynode-no-such-image:latest".into(),
            container_name: unique_container_name(),
            psk: orchestrator.psk.clone(),
            extra_env: Vec::new(),
            existing_wait_seconds: 0,
            extra_yaml: String::new(),
        }
    }
}

pub fn unique_container_name() -> String {
    format!("cynode-test-inference-{}", uuid::Uuid::new_v4().simple())
}

/// The node manager process, its notify socket and its files.
pub struct NodeManager {
    pub process: ChildGuard,
    pub notify: NotifySocket,
    pub slug: String,
    pub dir: tempfile::TempDir,
    pub worker_port: u16,
    extra_env: Vec<(String, String)>,
}

impl NodeManager {
    /// A node that serves the dev environment's model, started and waited for until the
    /// orchestrator is ready too: the node's READY=1 comes before the orchestrator has seen its
    /// models and warmed up the Project Manager on it.
    pub async fn start_serving(env: &DevEnv, orchestrator: &Orchestrator) -> Self {
        const LIMIT: Duration = Duration::from_secs(120);
        let options = NodeOptions::existing_inference(env, orchestrator);
        let mut node = Self::start(env, orchestrator, &options);
        node.expect_ready(LIMIT).await;
        let (code, reason) = orchestrator.ready_within(LIMIT).await;
        assert_eq!(code, 200, "orchestrator not ready: {reason}");
        node
    }

    pub fn start(env: &DevEnv, orchestrator: &Orchestrator, options: &NodeOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let slug = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let worker_port = free_port();
        std::fs::write(dir.path().join("psk"), &options.psk).unwrap();
        let yaml = format!(
            r#"version: 1
orchestrator:
  url: {cp}
  registration_psk_file: {dir}/psk
node:
  id: {slug}
  name: e2e node
worker_api:
  listen_host: 127.0.0.1
  listen_port: {worker_port}
  public_base_url: http://127.0.0.1:{worker_port}
  binary: {worker_bin}
sandbox:
  podman_socket: {socket}
  default_image: {sandbox_image}
inference:
  url: {inference_url}
  image: {inference_image}
  container_name: {container}
  startup_timeout_seconds: 120
  existing_wait_seconds: {existing_wait}
storage:
  state_dir: {dir}/state
shutdown:
  grace_seconds: 10
{extra_yaml}"#,
            cp = orchestrator.cp,
            dir = dir.path().display(),
            worker_bin = binary("cynode-worker-api").display(),
            socket = env.podman_socket.display(),
            sandbox_image = env.sandbox_image,
            inference_url = options.inference_url,
            inference_image = options.inference_image,
            container = options.container_name,
            existing_wait = options.existing_wait_seconds,
            extra_yaml = options.extra_yaml,
        );
        std::fs::write(dir.path().join("node.yaml"), yaml).unwrap();
        let notify = NotifySocket::bind();
        Self {
            process: spawn_node_manager(dir.path(), &notify, &options.extra_env),
            notify,
            slug,
            dir,
            worker_port,
            extra_env: options.extra_env.clone(),
        }
    }

    /// Starts the exited process again with the same node.yaml, state directory and log, as
    /// systemd's `Restart=` would; the notify socket is a fresh one, so `received()` holds only
    /// what the new process said.
    pub fn restart(&mut self) {
        assert!(
            self.process.0.try_wait().unwrap().is_some(),
            "restart() is for an exited node manager"
        );
        self.notify = NotifySocket::bind();
        self.process = spawn_node_manager(self.dir.path(), &self.notify, &self.extra_env);
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id().expect("node manager still running")
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path(), "node-manager.log")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every `STATUS=` text received so far, in order.
    pub fn statuses(&self) -> Vec<String> {
        self.notify
            .received()
            .iter()
            .filter_map(|l| l.strip_prefix("STATUS=").map(str::to_owned))
            .collect()
    }

    /// Waits for `READY=1`, failing with the node manager's log if it does not come.
    pub async fn expect_ready(&mut self, limit: Duration) {
        let ready = self.notify.wait_for("READY=1", limit).await;
        assert!(
            ready,
            "no READY=1 within {limit:?}; statuses {:?}; log:\n{}",
            self.statuses(),
            self.log()
        );
    }

    /// The pids of the node manager's direct children (the worker API).
    pub fn children(&self) -> Vec<u32> {
        let pid = self.pid();
        let mut children = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let path = task.unwrap().path().join("children");
            let text = std::fs::read_to_string(path).unwrap_or_default();
            children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        children
    }

    /// Start-up announced its steps (`STATUS=`) in the order node.md §1.2 makes mandatory, and
    /// `READY=1` came only after the config ack.
    pub fn assert_started_in_order(&self) {
        let statuses = self.statuses();
        let position = |needle: &str| {
            statuses
                .iter()
                .position(|s| s.contains(needle))
                .unwrap_or_else(|| panic!("no STATUS containing {needle:?} in {statuses:?}"))
        };
        let order = [
            position("container runtime"),
            position("registering"),
            position("fetching the node configuration"),
            position("starting the worker API"),
            position("waiting for inference"),
            position("acknowledging configuration"),
            position("ready:"),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{statuses:?}");
        let received = self.notify.received();
        let ready = received
            .iter()
            .position(|l| l == "READY=1")
            .unwrap_or_else(|| panic!("no READY=1 in {received:?}"));
        let ack = received
            .iter()
            .position(|l| l.contains("acknowledging configuration"))
            .unwrap_or_else(|| panic!("no ack status in {received:?}"));
        assert!(ack < ready, "{received:?}");
    }

    /// `VmRSS` of the node manager in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

fn spawn_node_manager(
    dir: &Path,
    notify: &NotifySocket,
    extra_env: &[(String, String)],
) -> ChildGuard {
    // systemd names the watched pid in WATCHDOG_PID; a shell that execs keeps its pid.
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(r#"export WATCHDOG_PID=$$; exec "$0" "$@""#)
        .arg(binary("cynode-node-manager"))
        .arg("--config")
        .arg(dir.join("node.yaml"))
        .env_clear()
        .env("WATCHDOG_USEC", "2000000")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", notify.path())
        .stdout(Stdio::null())
        .stderr(log_file(dir, "node-manager.log"));
    command.envs(extra_env.iter().map(|(k, v)| (k, v)));
    ChildGuard::spawn(&mut command)
}

async fn spawn_orchestrator(dir: &Path, vars: &[(String, String)], cp: &str) -> ChildGuard {
    let mut command = Command::new(binary("cynode-orchestrator"));
    command
        .arg("all")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log_file(dir, "orchestrator.log"));
    let process = ChildGuard::spawn(&mut command);
    assert!(
        wait_http(&format!("{cp}/healthz"), 200, Duration::from_secs(60)).await,
        "the orchestrator did not come up; its log:\n{}",
        read_log(dir, "orchestrator.log")
    );
    process
}

/// Appends, so that a restarted process's log follows the first one's.
fn log_file(dir: &Path, name: &str) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    Stdio::from(file)
}

fn read_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Starts the dev inference image as a server on 127.0.0.1:`port`, the way an operator might
/// have one running before the node manager starts; returns once `/v1/models` lists [`MODEL`].
pub async fn start_inference_server(env: &DevEnv, name: &str, port: u16) {
    use podman_api::models::PortMapping;
    use podman_api::opts::ContainerCreateOpts;
    let podman = env.podman();
    let created = podman
        .containers()
        .create(
            &ContainerCreateOpts::builder()
                .image(&env.inference_image)
                .name(name)
                .command(INFERENCE_COMMAND.split_whitespace())
                .portmappings([PortMapping {
                    container_port: Some(11434),
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(port),
                    protocol: Some("tcp".into()),
                    range: None,
                }])
                .build(),
        )
        .await
        .expect("create the inference container");
    podman
        .containers()
        .get(&created.id)
        .start(None)
        .await
        .expect("start the inference container");
    let url = format!("http://127.0.0.1:{port}/v1/models");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(resp) = reqwest::get(&url).await
            && resp.text().await.is_ok_and(|t| t.contains(MODEL))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the inference container never listed {MODEL}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Removes a container by name, whatever its state.
pub async fn remove_container(env: &DevEnv, name: &str) {
    use podman_api::opts::ContainerDeleteOpts;
    env.podman()
        .containers()
        .get(name)
        .delete(&ContainerDeleteOpts::builder().force(true).build())
        .await
        .expect("remove the container");
}

/// Whether a container of that name exists on the dev Podman socket.
pub async fn container_exists(env: &DevEnv, name: &str) -> bool {
    env.podman().containers().get(name).exists().await.unwrap()
}

/// A user of the gateway, logged in as the bootstrap admin.
pub struct User {
    http: reqwest::Client,
    gw: String,
    token: String,
}

impl User {
    /// The access token, for clients other than this one.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn login(orchestrator: &Orchestrator) -> Self {
        let http = reqwest::Client::new();
        let login: Value = http
            .post(format!("{}/v1/auth/login", orchestrator.gw))
            .json(&json!({"handle": "admin", "password": orchestrator.admin_password}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("access token").into();
        Self {
            http,
            gw: orchestrator.gw.clone(),
            token,
        }
    }

    pub async fn create_commands_task(&self, commands: &str) -> String {
        self.create_task(json!({"prompt": commands, "input_mode": "commands"}))
            .await
    }

    /// `GET` a gateway path as this user; the body as JSON (checked for success).
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.gw))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET path`'s body bytes (a success asserted).
    pub async fn download(&self, path: &str) -> Vec<u8> {
        self.http
            .get(format!("{}{path}", self.gw))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// `PUT path` with a JSON body; the answer's JSON (a success asserted).
    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.http
            .put(format!("{}{path}", self.gw))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST /v1/tasks` with `body`; returns the new task's id.
    pub async fn create_task(&self, body: Value) -> String {
        let created = self
            .http
            .post(format!("{}/v1/tasks", self.gw))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let task: Value = created.json().await.unwrap();
        task["id"].as_str().expect("task id").to_owned()
    }

    /// `POST /v1/tasks/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/tasks/{id}/cancel", self.gw))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// Polls `GET /v1/tasks/{id}/result` until the task is finished; `None` after `limit`.
    pub async fn finished_result(&self, id: &str, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let result: Value = self
                .http
                .get(format!("{}/v1/tasks/{id}/result", self.gw))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if matches!(
                result["status"].as_str(),
                Some("completed" | "failed" | "canceled")
            ) {
                return Some(result);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}
