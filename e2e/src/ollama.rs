//! A wire double of Ollama's model management, for what cannot run here (Ollama needs a
//! registry): `GET /api/version`, `GET /api/tags`, `GET /api/ps`, `POST /api/pull` (streamed
//! NDJSON progress, as Ollama sends it) and Ollama's OpenAI-compatible `GET /v1/models`. It
//! serves no inference: tests that need a model use the real llama.cpp server.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct Models {
    local: BTreeSet<String>,
    /// What a pull can fetch; anything else fails the way Ollama fails an unknown name.
    pullable: BTreeSet<String>,
    pulls: Vec<String>,
}

/// A running double on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct OllamaDouble {
    pub url: String,
    models: Arc<Mutex<Models>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OllamaDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OllamaDouble {
    /// Serves `local` models and can pull those in `pullable`.
    pub async fn start(local: &[&str], pullable: &[&str]) -> Self {
        let models = Arc::new(Mutex::new(Models {
            local: local.iter().map(|m| (*m).to_owned()).collect(),
            pullable: pullable.iter().map(|m| (*m).to_owned()).collect(),
            pulls: Vec::new(),
        }));
        let app = Router::new()
            .route(
                "/api/version",
                get(|| async { axum::Json(json!({"version": "0.12.6"})) }),
            )
            .route("/api/tags", get(tags))
            .route("/api/ps", get(ps))
            .route("/api/pull", post(pull))
            .route("/v1/models", get(openai_models))
            .with_state(Arc::clone(&models));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Ollama double");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("Ollama double");
        });
        Self {
            url,
            models,
            server,
        }
    }

    /// Names asked for with `/api/pull`, in order.
    pub fn pulls(&self) -> Vec<String> {
        self.models.lock().expect("lock").pulls.clone()
    }
}

type Shared = State<Arc<Mutex<Models>>>;

fn model_entry(name: &str) -> Value {
    json!({
        "name": name, "model": name, "modified_at": "2026-11-30T00:00:00Z", "size": 91_000_000,
        "digest": "0f3a5e1b", "details": {"format": "gguf", "family": "llama", "parameter_size": "135M"}
    })
}

async fn tags(State(models): Shared) -> axum::Json<Value> {
    let local = models.lock().expect("lock").local.clone();
    axum::Json(json!({"models": local.iter().map(|m| model_entry(m)).collect::<Vec<_>>()}))
}

/// Nothing is loaded until used; this double never runs a model.
async fn ps() -> axum::Json<Value> {
    axum::Json(json!({"models": []}))
}

async fn openai_models(State(models): Shared) -> axum::Json<Value> {
    let local = models.lock().expect("lock").local.clone();
    axum::Json(json!({
        "object": "list",
        "data": local.iter().map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "library"})).collect::<Vec<_>>()
    }))
}

/// Streams progress lines like Ollama; a name it cannot fetch ends with an `error` line.
async fn pull(
    State(models): Shared,
    axum::Json(request): axum::Json<Value>,
) -> axum::response::Response {
    let name = request["model"]
        .as_str()
        .or_else(|| request["name"].as_str())
        .unwrap_or_default()
        .to_owned();
    let found = {
        let mut models = models.lock().expect("lock");
        models.pulls.push(name.clone());
        let found = models.pullable.contains(&name);
        if found {
            models.local.insert(name.clone());
        }
        found
    };
    let mut lines = vec![json!({"status": "pulling manifest"})];
    if found {
        for completed in [0, 45_500_000, 91_000_000] {
            lines.push(
                json!({"status": "pulling 0f3a5e1b", "digest": "sha256:0f3a5e1b",
                "total": 91_000_000, "completed": completed}),
            );
        }
        lines.push(json!({"status": "verifying sha256 digest"}));
        lines.push(json!({"status": "writing manifest"}));
        lines.push(json!({"status": "success"}));
    } else {
        lines.push(json!({"error": "pull model manifest: file does not exist"}));
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    axum::response::Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))
        .expect("response")
}
