//! The real stack for cynork's tests: `cynode-orchestrator all` on a fresh PostgreSQL database,
//! optionally with a worker node (registered through the control plane, served by the real
//! `cynode-worker-api` on the dev Podman socket), and the real `cynork` binary with its own
//! config directory. Also used by `features/tests/cynork.rs`.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cynode_e2e::process::{ChildGuard, binary, wait_http};
use cynode_e2e::{DevEnv, free_port};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub const ADMIN_PASSWORD: &str = "cynork-test-admin-password";
const PSK: &str = "cynork-test-node-psk";
const JWT_SECRET: &str = "cynork-test-jwt-secret-0123456789";
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running orchestrator (and maybe a node). Everything is killed when dropped.
pub struct Stack {
    pub gateway: String,
    pub control_plane: String,
    /// The MCP gateway's endpoint URL.
    pub mcp: String,
    database_url: String,
    orchestrator: ChildGuard,
    worker: Option<ChildGuard>,
    dir: tempfile::TempDir,
}

impl Stack {
    /// `cynode-orchestrator all` on a fresh database; returns once `/healthz` answers.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Like [`Stack::start`], with extra orchestrator environment (e.g. `JWT_ACCESS_DURATION`).
    pub async fn start_with(extra_env: &[(&str, &str)]) -> Self {
        let env = DevEnv::load();
        let database_url = env.migrated_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (cp_port, gw_port, mcp_port) = (free_port(), free_port(), free_port());
        let control_plane = format!("http://127.0.0.1:{cp_port}");
        let gateway = format!("http://127.0.0.1:{gw_port}");
        let log = std::fs::File::create(dir.path().join("orchestrator.log")).expect("log file");
        let mut command = Command::new(binary("cynode-orchestrator"));
        command
            .arg("all")
            .env("DATABASE_URL", &database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("NODE_REGISTRATION_PSK", PSK)
            .env("BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CONTROL_PLANE_LISTEN_ADDR", format!("127.0.0.1:{cp_port}"))
            .env("USER_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gw_port}"))
            .env("MCP_LISTEN_ADDR", format!("127.0.0.1:{mcp_port}"))
            .env("ORCHESTRATOR_PUBLIC_URL", &control_plane)
            .env("RATE_LIMIT_PER_MINUTE", "1000")
            // The test node has no model: readiness needs no Project Manager here.
            .env("PM_REQUIRED", "false")
            .env_remove("NOTIFY_SOCKET")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let orchestrator = ChildGuard::spawn(&mut command);
        let stack = Self {
            gateway,
            control_plane,
            mcp: format!("http://127.0.0.1:{mcp_port}/mcp"),
            database_url,
            orchestrator,
            worker: None,
            dir,
        };
        assert!(
            wait_http(&format!("{}/healthz", stack.gateway), 200, START_LIMIT).await,
            "the orchestrator did not answer /healthz; its log:\n{}",
            stack.log()
        );
        stack
    }

    /// Runs `sql` on the orchestrator's database: fixtures no API makes (token usage of past
    /// days).
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&self.database_url)
            .await
            .expect("connect to the test database");
        sqlx::raw_sql(sql).execute(&mut db).await.expect(sql);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orchestrator.log")).unwrap_or_default()
    }

    /// Makes the orchestrator ready: registers node `slug` with the PSK, starts the real worker
    /// API with the node's bearer token (on stdin, as node-manager does), acks the config.
    /// A Project Manager MCP token from `cynode-orchestrator mcp-token`.
    pub async fn pm_token(&self) -> String {
        let output = Command::new(binary("cynode-orchestrator"))
            .args(["mcp-token", "--agent", "pm"])
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .output()
            .await
            .expect("cynode-orchestrator mcp-token");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    pub async fn add_node(&mut self, slug: &str) {
        let env = DevEnv::load();
        let http = reqwest::Client::new();
        let worker_port = free_port();
        let worker_url = format!("http://127.0.0.1:{worker_port}");
        let capability = json!({
            "version": 1,
            "reported_at": chrono_now(),
            "node": {"node_slug": slug, "labels": []},
            "platform": {"os": "linux", "arch": "amd64"},
            "compute": {"cpu_cores": 2, "ram_mb": 4096},
            "gpu": {"present": false, "devices": []},
            "inference": {"supported": false, "mode": "allow", "existing_service": false, "running": false},
            "worker_api": {"base_url": worker_url}
        });
        let resp = http
            .post(format!("{}/v1/nodes/register", self.control_plane))
            .json(&json!({"psk": PSK, "capability": capability}))
            .send()
            .await
            .expect("control plane reachable");
        assert!(resp.status().is_success(), "register: {}", resp.status());
        let bootstrap: Value = resp.json().await.expect("bootstrap payload");
        let jwt = bootstrap["auth"]["node_jwt"]
            .as_str()
            .expect("node_jwt")
            .to_owned();
        let config_url = bootstrap["orchestrator"]["endpoints"]["node_config_url"]
            .as_str()
            .expect("node_config_url")
            .to_owned();
        let config: Value = http
            .get(&config_url)
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("config")
            .error_for_status()
            .expect("config status")
            .json()
            .await
            .expect("config payload");
        let token = config["worker_api"]["orchestrator_bearer_token"]
            .as_str()
            .expect("worker bearer token")
            .to_owned();

        let mounts = self.dir.path().join("sandbox_mounts");
        std::fs::create_dir_all(&mounts).expect("mount root");
        let log = std::fs::File::create(self.dir.path().join("worker.log")).expect("log file");
        let mut command = Command::new(binary("cynode-worker-api"));
        command
            .arg("--bearer-token-stdin")
            .arg("--listen")
            .arg(format!("127.0.0.1:{worker_port}"))
            .arg("--podman-socket")
            .arg(&env.podman_socket)
            .arg("--mount-root")
            .arg(&mounts)
            .arg("--default-image")
            .arg(&env.sandbox_image)
            .arg("--node-slug")
            .arg(slug)
            .env_remove("WORKER_API_BEARER_TOKEN")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn cynode-worker-api");
        let mut stdin = child.stdin.take().expect("worker stdin");
        stdin
            .write_all(format!("{token}\n").as_bytes())
            .await
            .expect("token to the worker");
        drop(stdin);
        self.worker = Some(ChildGuard(child));
        assert!(
            wait_http(&format!("{worker_url}/healthz"), 200, START_LIMIT).await,
            "the worker API did not answer /healthz; its log:\n{}",
            std::fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
        );

        let ack = http
            .post(&config_url)
            .bearer_auth(&jwt)
            .json(&json!({
                "version": 1,
                "node_slug": slug,
                "config_version": config["config_version"],
                "ack_at": chrono_now(),
                "status": "applied"
            }))
            .send()
            .await
            .expect("ack");
        assert_eq!(ack.status(), 204, "config ack");
        assert!(
            wait_http(&format!("{}/readyz", self.gateway), 200, START_LIMIT).await,
            "the orchestrator did not become ready; its log:\n{}",
            self.log()
        );
    }

    /// Stops the orchestrator, so its port refuses connections.
    pub async fn stop(&mut self) {
        self.orchestrator.terminate(Duration::from_secs(10)).await;
    }
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// What one `cynork` run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "cynork failed: {self:?}");
        &self.stdout
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// The real `cynork` binary with a config directory of its own.
pub struct Cynork {
    pub gateway: String,
    config_home: tempfile::TempDir,
}

impl Cynork {
    pub fn new(gateway: &str) -> Self {
        Self {
            gateway: gateway.to_owned(),
            config_home: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn binary() -> PathBuf {
        binary("cynork")
    }

    pub fn config_home(&self) -> &Path {
        self.config_home.path()
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_home.path().join("cynork").join("config.yaml")
    }

    /// The environment every run gets: its own XDG config dir, the gateway, no inherited token or
    /// API key.
    pub fn command(&self) -> Command {
        let mut command = Command::new(Self::binary());
        command
            .env("XDG_CONFIG_HOME", self.config_home.path())
            .env("CYNORK_GATEWAY_URL", &self.gateway)
            .env_remove("CYNORK_TOKEN")
            .env_remove("CYNORK_API_KEY")
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, &[]).await
    }

    pub async fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut command = self.command();
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn cynork");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
        }
        let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("cynork {args:?} did not finish"))
            .expect("cynork output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn login_admin(&self) {
        let run = self
            .run_with(
                &["auth", "login", "-u", "admin", "--password-stdin"],
                Some(&format!("{ADMIN_PASSWORD}\n")),
                &[],
            )
            .await;
        assert_eq!(run.ok().trim(), "logged_in=true user=admin");
    }
}
