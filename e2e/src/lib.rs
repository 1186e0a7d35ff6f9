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

/// The orchestrator's schema, from the same `migrations/` directory it embeds.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// FNV-1a over every migration's version and checksum: names the template for this schema.
fn migrations_digest() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in MIGRATOR.iter() {
        let version = migration.version.to_le_bytes();
        for byte in version.iter().chain(migration.checksum.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

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
        self.create_database("").await
    }

    /// A fresh database with the schema already in place: a copy of a template that this
    /// suite run migrated once (`migrations/` is the schema's only source, so the template is
    /// exactly what an orchestrator's start-up migration would make). Cloning costs a fraction
    /// of running every migration again for each test that starts an orchestrator.
    pub async fn migrated_database(&self) -> String {
        let template = self.migrated_template().await;
        self.create_database(&format!("TEMPLATE {template}")).await
    }

    async fn admin_connection(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at the dev-env URL refused us ({e}): run `scripts/bootstrap.sh`")
            })
    }

    async fn create_database(&self, options: &str) -> String {
        let mut admin = self.admin_connection().await;
        let name = format!("cynode_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name} {options}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} {options}: {e}"));
        admin.close().await.ok();
        self.database_named(&name)
    }

    fn database_named(&self, name: &str) -> String {
        let mut url = url::Url::parse(&self.database_url).expect("database URL");
        url.set_path(name);
        url.to_string()
    }

    /// The name of the migrated template, made on first use by whichever test process gets
    /// there first. Its name carries a digest of the migrations, so a changed migration makes a
    /// new one; `just test` drops all templates when it starts. An advisory lock serialises the
    /// makers, and the template is built under a scratch name and renamed when complete, so no
    /// process ever clones a half-migrated schema (PostgreSQL refuses to clone a database that
    /// has a connection, which is why the migration's connection is closed before the rename).
    async fn migrated_template(&self) -> String {
        static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        TEMPLATE
            .get_or_init(|| async {
                const LOCK: i64 = 0x6379_6e6f_6465; // "cynode"
                let name = format!("cynode_tmpl_{:016x}", migrations_digest());
                let mut admin = self.admin_connection().await;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(LOCK)
                    .execute(&mut admin)
                    .await
                    .expect("advisory lock for the template database");
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                )
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .expect("look up the template database");
                if !exists {
                    let scratch = format!("{name}_building");
                    for statement in [
                        format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"),
                        format!("CREATE DATABASE {scratch}"),
                    ] {
                        sqlx::query(&statement)
                            .execute(&mut admin)
                            .await
                            .unwrap_or_else(|e| panic!("{statement}: {e}"));
                    }
                    let mut conn = sqlx::PgConnection::connect(&self.database_named(&scratch))
                        .await
                        .expect("connect to the template being built");
                    MIGRATOR
                        .run(&mut conn)
                        .await
                        .expect("migrate the template database");
                    conn.close().await.expect("close the template's connection");
                    let rename = format!("ALTER DATABASE {scratch} RENAME TO {name}");
                    sqlx::query(&rename)
                        .execute(&mut admin)
                        .await
                        .unwrap_or_else(|e| panic!("{rename}: {e}"));
                }
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(LOCK)
                    .execute(&mut admin)
                    .await
                    .expect("advisory unlock");
                admin.close().await.ok();
                name
            })
            .await
            .clone()
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
