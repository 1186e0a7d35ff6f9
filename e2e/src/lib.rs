//! Test harness for CyNodeAI's integration, end-to-end and acceptance tests.
//!
//! [`DevEnv`] describes the real components `scripts/bootstrap.sh` set up (PostgreSQL, the
//! Podman REST socket, the sandbox image, the llama.cpp inference server). A test that needs one
//! and finds it missing fails with the command that installs it: tests never skip themselves.

pub mod mcp;
pub mod metrics;
pub mod netns;
pub mod notify;
pub mod nspawn;
pub mod ollama;
pub mod postgres;
pub mod process;
pub mod sandbox;
pub mod scripted_model;
pub mod tmux;
pub mod units;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;

use sqlx::Connection;

/// Where the bootstrap wrote its description of the environment.
pub fn devenv_file() -> PathBuf {
    if let Some(home) = std::env::var_os("CYNODE_DEV_HOME") {
        return PathBuf::from(home).join("devenv.env");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("cynodeai").join("devenv.env")
}

/// The real components of the development environment.
#[derive(Debug, Clone)]
pub struct DevEnv {
    /// Connection URL of the test role's own database; the role may create databases.
    pub database_url: String,
    pub podman_socket: PathBuf,
    pub sandbox_image: String,
    /// Base URL of the OpenAI-compatible inference server (no trailing slash).
    pub inference_url: String,
    pub inference_model: String,
    pub llama_server: PathBuf,
    pub model_path: PathBuf,
    /// Offline stand-in for the Ollama image: llama.cpp's server with the model, on port 11434.
    pub inference_image: String,
    /// The interpreter of the venv the bootstrap installed the official `openai` and `mcp`
    /// clients into.
    pub python: PathBuf,
}

impl DevEnv {
    /// Reads the environment from `CYNODE_TEST_*` variables, falling back to the bootstrap's
    /// `devenv.env`. Panics with the fix when neither has it.
    pub fn load() -> Self {
        let file = devenv_file();
        let from_file: HashMap<String, String> = std::fs::read_to_string(&file)
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let get = |key: &str| -> String {
            std::env::var(key)
                .ok()
                .or_else(|| from_file.get(key).cloned())
                .unwrap_or_else(|| {
                    panic!(
                        "{key} is not set and {} does not define it: run `scripts/bootstrap.sh` (or `just setup`) first",
                        file.display()
                    )
                })
        };
        Self {
            database_url: get("CYNODE_TEST_DATABASE_URL"),
            podman_socket: get("CYNODE_TEST_PODMAN_SOCKET").into(),
            sandbox_image: get("CYNODE_TEST_SANDBOX_IMAGE"),
            inference_url: get("CYNODE_TEST_INFERENCE_URL"),
            inference_model: get("CYNODE_TEST_INFERENCE_MODEL"),
            llama_server: get("CYNODE_TEST_LLAMA_SERVER").into(),
            model_path: get("CYNODE_TEST_MODEL_PATH").into(),
            inference_image: get("CYNODE_TEST_INFERENCE_IMAGE"),
            python: get("CYNODE_TEST_PYTHON").into(),
        }
    }

    /// Creates a fresh, empty database for one test and returns its URL. Databases are named
    /// `cynode_t_<uuid>`; `just test` drops leftovers of earlier runs before it starts.
    pub async fn fresh_database(&self) -> String {
        let mut admin = sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at the dev-env URL refused us ({e}): run `scripts/bootstrap.sh`")
            });
        let name = format!("cynode_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let mut url = url::Url::parse(&self.database_url).expect("database URL");
        url.set_path(&name);
        url.to_string()
    }

    /// `POST /v1/chat/completions` on the dev inference server with the test model; `extra`
    /// fields (max_tokens, response_format, ...) are merged into the request. Returns the
    /// assistant's text; panics with the server's answer if there is none.
    pub async fn chat(&self, prompt: &str, extra: serde_json::Value) -> String {
        let mut body = serde_json::json!({
            "model": self.inference_model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let resp: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.inference_url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "inference server at {} unreachable ({e}): run `scripts/bootstrap.sh`",
                    self.inference_url
                )
            })
            .error_for_status()
            .expect("chat completion status")
            .json()
            .await
            .expect("chat completion JSON");
        resp["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("no assistant text in {resp}"))
            .to_owned()
    }

    /// Containers, running or not, that a worker API created for `job_id` (it labels each
    /// sandbox `cynodeai.job_id`).
    pub async fn job_containers(
        &self,
        job_id: uuid::Uuid,
    ) -> Vec<podman_api::models::ListContainer> {
        use podman_api::opts::{ContainerListFilter, ContainerListOpts};
        self.podman()
            .containers()
            .list(
                &ContainerListOpts::builder()
                    .all(true)
                    .filter([ContainerListFilter::LabelKeyVal(
                        "cynodeai.job_id".into(),
                        job_id.to_string(),
                    )])
                    .build(),
            )
            .await
            .expect("list containers through the Podman socket")
    }

    /// A second llama.cpp server of its own on 127.0.0.1:`port` with the dev model, for tests
    /// that stop it or start it late; killed with the guard. Answers `/health` once loaded.
    pub fn spawn_llama_server(&self, port: u16) -> process::ChildGuard {
        process::ChildGuard::spawn(
            tokio::process::Command::new(&self.llama_server)
                .arg("-m")
                .arg(&self.model_path)
                .args(["--alias", &self.inference_model, "-c", "512"])
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )
    }

    /// A Podman REST client on the dev socket.
    pub fn podman(&self) -> podman_api::Podman {
        podman_api::Podman::unix(&self.podman_socket)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Below Linux's ephemeral range (32768-60999): a port the kernel hands out for port 0 may be
    // taken by an outgoing connection before the test's server binds it. Each test process
    // walks the range from its own offset, so parallel tests and processes rarely meet, and a
    // port is handed out only after a bind on it succeeded.
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}-{}", FIRST + SPAN - 1)
}
