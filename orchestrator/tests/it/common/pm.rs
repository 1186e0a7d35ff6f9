//! A Project Manager stack for tests of prompt tasks: an orchestrator whose PM model is a
//! scripted model (OpenAI wire protocol) behind a real worker API binary, which also runs the
//! tasks' sandbox jobs in real Podman sandboxes.

use std::path::Path;
use std::process::Stdio;

use cynode_e2e::DevEnv;
use cynode_e2e::process::{ChildGuard, binary, wait_http};
use cynode_e2e::scripted_model::ScriptedModel;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{LIMIT, Node, Orchestrator};

pub const MODEL: &str = "smollm2:135m";
pub const PM_ON: &[(&str, &str)] = &[("PM_REQUIRED", "true")];

/// A node whose worker API is the real binary, serving `model` from `inference_url`.
pub struct PmNode {
    _worker: ChildGuard,
    pub mounts: tempfile::TempDir,
}

fn capability(slug: &str, worker_url: &str) -> Value {
    let mut cap = super::capability(slug, worker_url);
    cap["inference"] = json!({"supported": true, "mode": "allow", "existing_service": true,
        "running": true, "available_models": [MODEL], "loaded_models": [MODEL]});
    cap
}

impl PmNode {
    pub async fn start(o: &Orchestrator, slug: &str, inference_url: &str) -> Self {
        let env = DevEnv::load();
        let port = cynode_e2e::free_port();
        let worker_url = format!("http://127.0.0.1:{port}");
        let resp = o.register_node(&capability(slug, &worker_url)).await;
        assert!(resp.status().is_success(), "{}", resp.status());
        let mut node = Node {
            slug: slug.into(),
            bootstrap: resp.json().await.unwrap(),
            config: None,
        };
        let config = node.fetch_config(o).await.clone();
        let token = config.worker_api.orchestrator_bearer_token.clone();
        let mounts = tempfile::tempdir().unwrap();
        cynode_e2e::worker::inference_proxy_binary();
        let mut child = Command::new(binary("cynode-worker-api"))
            .arg("--bearer-token-stdin")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--podman-socket")
            .arg(&env.podman_socket)
            .arg("--mount-root")
            .arg(mounts.path())
            .arg("--default-image")
            .arg(&env.sandbox_image)
            .arg("--inference-url")
            .arg(inference_url)
            .env_remove("WORKER_API_BEARER_TOKEN")
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn cynode-worker-api");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{token}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        assert!(wait_http(&format!("{worker_url}/healthz"), 200, LIMIT).await);
        let acked = node.ack(o, &config.config_version, "applied").await;
        assert_eq!(acked.status(), 204);
        Self {
            _worker: ChildGuard(child),
            mounts,
        }
    }

    /// The job ids the worker keeps a directory (and, once finished, a result) for: every job
    /// it ran, once each (a repeated delivery is answered from the stored result).
    pub fn jobs_run(&self) -> Vec<String> {
        job_dirs(self.mounts.path())
    }
}

fn job_dirs(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("result.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| uuid::Uuid::parse_str(name).is_ok())
        .collect();
    ids.sort();
    ids
}

/// Waits until `/readyz` answers 200.
pub async fn wait_ready(o: &Orchestrator) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (code, reason) = o.readyz().await;
        if code == 200 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {reason}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An orchestrator whose PM runs on a scripted model, ready; and an admin token.
pub async fn pm_stack(extra: &[(&str, &str)]) -> (Orchestrator, ScriptedModel, PmNode, String) {
    let mut vars = PM_ON.to_vec();
    vars.extend_from_slice(extra);
    let o = Orchestrator::start(&vars).await;
    let model = ScriptedModel::start(MODEL).await;
    let node = PmNode::start(&o, "pm-node", &model.url).await;
    wait_ready(&o).await;
    let admin = o.admin_token().await;
    (o, model, node, admin)
}

/// Creates a prompt task and waits until it finished.
pub async fn prompt_task(o: &Orchestrator, token: &str, prompt: &str) -> Value {
    let task = o.create_task(token, json!({"prompt": prompt})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    o.wait_finished(token, &id).await
}

/// `GET /v1/tasks/{id}/steps`.
pub async fn steps(o: &Orchestrator, token: &str, id: &str) -> Vec<Value> {
    let (code, body) = o.get(token, &format!("/v1/tasks/{id}/steps")).await;
    assert_eq!(code, 200, "{body}");
    body["steps"].as_array().unwrap().clone()
}

/// The task's checkpoint: (last_node_id, state).
pub async fn checkpoint(o: &Orchestrator, id: &str) -> Option<(String, Value)> {
    sqlx::query_as("SELECT last_node_id, state FROM workflow_checkpoints WHERE task_id = $1::uuid")
        .bind(id)
        .fetch_optional(&o.db)
        .await
        .unwrap()
}

/// Waits until `pred` holds on the scripted model's requests.
pub async fn wait_requests(model: &ScriptedModel, what: &str, pred: impl Fn(&[Value]) -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !pred(&model.requests()) {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
