//! A real `cynode-worker-api`, started the way the node manager starts it: the token on stdin
//! and nowhere else, its own mount root, a free port on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use uuid::Uuid;

use crate::DevEnv;
use crate::process::{ChildGuard, binary, wait_http};

/// The statically linked sidecar the worker mounts into inference pods, next to the other
/// binaries (`scripts/build-inference-proxy.sh` puts it there; the test recipes run it).
pub fn inference_proxy_binary() -> PathBuf {
    binary("cynode-inference-proxy")
}

/// A running worker API with its own mount root and a random token.
#[derive(Debug)]
pub struct Worker {
    pub child: ChildGuard,
    pub base: String,
    pub port: u16,
    pub token: String,
    pub mount_root: tempfile::TempDir,
    pub client: reqwest::Client,
    /// Everything on its command line but the token, for [`Worker::restart`].
    command_line: Vec<std::ffi::OsString>,
}

impl Worker {
    /// Starts the binary with the dev sandbox image as its default and only image, plus `args`.
    pub async fn start(env: &DevEnv, args: &[String]) -> Self {
        Self::start_with(&env.podman_socket, &env.sandbox_image, args).await
    }

    /// Starts the binary on another Podman socket or with another default image.
    pub async fn start_with(podman_socket: &Path, default_image: &str, args: &[String]) -> Self {
        let token = format!("tok-{}", Uuid::new_v4().simple());
        Self::start_as(
            podman_socket,
            default_image,
            crate::free_port(),
            &token,
            args,
        )
        .await
    }

    /// Starts the binary on `port` with `token`, as a node manager does with what the
    /// orchestrator's configuration gave it (a node registered with this worker's URL first).
    pub async fn start_as(
        podman_socket: &Path,
        default_image: &str,
        port: u16,
        token: &str,
        args: &[String],
    ) -> Self {
        let mount_root = tempfile::tempdir().expect("tempdir");
        let token = token.to_owned();
        let mut command_line: Vec<std::ffi::OsString> = vec![
            "--bearer-token-stdin".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--podman-socket".into(),
            podman_socket.into(),
            "--mount-root".into(),
            mount_root.path().into(),
            "--default-image".into(),
            default_image.into(),
        ];
        command_line.extend(args.iter().map(Into::into));
        let child = spawn(&command_line, &token, port).await;
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            token,
            mount_root,
            client: reqwest::Client::new(),
            command_line,
        }
    }

    /// Kills the process outright (SIGKILL: no shutdown of any kind, its sandboxes stay on the
    /// Podman socket) and waits for it to be gone.
    pub async fn kill(&mut self) {
        self.child.0.start_kill().expect("SIGKILL the worker API");
        self.child.0.wait().await.expect("reap the worker API");
    }

    /// Starts the binary again with the same command line, token and mount root, as the node
    /// manager would after the process died.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.command_line, &self.token, self.port).await;
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id().expect("the worker API runs")
    }

    /// With inference from `inference_url`; the sidecar is found next to the worker binary,
    /// as in an installation.
    pub async fn with_inference(env: &DevEnv, inference_url: &str) -> Self {
        inference_proxy_binary();
        Self::start(env, &["--inference-url".into(), inference_url.into()]).await
    }

    pub fn job_dir(&self, job_id: Uuid) -> PathBuf {
        self.mount_root.path().join(job_id.to_string())
    }

    /// `POST /v1/worker/jobs/{job_id}/stop` with the token; returns the status and the JSON
    /// answer.
    pub async fn stop_job(&self, job_id: Uuid) -> (u16, Value) {
        let resp = self
            .client
            .post(format!(
                "{}{}",
                self.base,
                cynode_contracts::routes::worker::job_stop(job_id)
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("worker API reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON answer"))
    }

    /// `POST /v1/worker/jobs:run` with the token; returns the status and the JSON answer.
    pub async fn run_job(&self, job_id: Uuid, sandbox: Value) -> (u16, Value) {
        let body =
            json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id, "sandbox": sandbox});
        let resp = self
            .client
            .post(format!(
                "{}{}",
                self.base,
                cynode_contracts::routes::worker::JOBS_RUN
            ))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("worker API reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON answer"))
    }
}

/// A `jobs:run` body for a new task running `sh -c script` as `job_id`.
pub fn job(job_id: Uuid, script: &str) -> Value {
    json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
           "sandbox": {"command": ["sh", "-c", script]}})
}

impl Worker {
    /// Posts a delivery in the background; the answer is `(status, body)`, or `None` when the
    /// connection broke (the worker died).
    pub fn deliver(&self, body: &Value) -> tokio::task::JoinHandle<Option<(u16, Value)>> {
        let (client, token, body) = (self.client.clone(), self.token.clone(), body.clone());
        let url = format!(
            "{}{}",
            self.base,
            cynode_contracts::routes::worker::JOBS_RUN
        );
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .ok()?;
            let status = resp.status().as_u16();
            Some((status, resp.json().await.ok()?))
        })
    }
}

/// Starts `cynode-worker-api` with `command_line`, hands it the token on stdin and waits until
/// it answers `/healthz` on `port`.
async fn spawn(command_line: &[std::ffi::OsString], token: &str, port: u16) -> ChildGuard {
    let mut child = Command::new(binary("cynode-worker-api"))
        .args(command_line)
        .env_remove("WORKER_API_BEARER_TOKEN")
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn cynode-worker-api");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{token}\n").as_bytes())
        .await
        .expect("hand the token over");
    drop(stdin);
    let child = ChildGuard(child);
    assert!(
        wait_http(
            &format!("http://127.0.0.1:{port}/healthz"),
            200,
            Duration::from_secs(20)
        )
        .await,
        "worker API did not answer /healthz"
    );
    child
}
