//! The node's single inference backend (`node.md` §1.2 step 8). If a server already answers on
//! the configured URL it is used as is; otherwise the node manager creates and starts the
//! container the orchestrator selected through the Podman REST API, published on loopback only,
//! and waits until `/v1/models` lists the selected model.

use std::collections::HashMap;
use std::time::Duration;

use cynode_contracts::node::InferenceBackend;
use futures::StreamExt;
use podman_api::Podman;
use podman_api::models::PortMapping;
use podman_api::opts::{ContainerCreateOpts, ContainerDeleteOpts, ContainerStopOpts, PullOpts};

use crate::config::InferenceSettings;
use crate::model_server::{ModelServer, PullProgress};

/// Label on containers this node manager created, so it only ever removes its own.
pub const MANAGED_LABEL: &str = "io.cynodeai.managed-by";
const MANAGED_VALUE: &str = "cynode-node-manager";

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "no inference server answers at {url} and the orchestrator enabled no inference container \
         (set INFERENCE_MODEL / NODE_INFERENCE_IMAGE on the orchestrator, or start a server there)"
    )]
    NothingToStart { url: String },
    #[error("inference image {image} is not available locally and pulling it failed: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("container {name} exists but was not created by the node manager; remove or rename it")]
    ForeignContainer { name: String },
    #[error("the Podman API refused to {action} the inference container: {reason}")]
    Podman {
        action: &'static str,
        reason: String,
    },
    #[error("the inference container exited during start-up with code {code}: {logs}")]
    Exited { code: i64, logs: String },
    #[error(
        "the selected model `{model}` is missing: inference at {url} serves {listed}, and it cannot \
         pull models (it is not Ollama); install the model there or select one it serves"
    )]
    ModelNotServed {
        url: String,
        model: String,
        listed: String,
    },
    #[error(
        "the selected model `{model}` is missing and pulling it through Ollama at {url} failed: {reason}"
    )]
    PullFailed {
        url: String,
        model: String,
        reason: String,
    },
    #[error("inference at {url} did not list model `{model}` within {secs}s (it lists: {listed})")]
    ModelMissing {
        url: String,
        model: String,
        secs: u64,
        listed: String,
    },
}

/// What the node manager ended up with.
#[derive(Debug)]
pub enum Backend {
    /// A server that was already there; the node manager never stops it.
    Existing,
    /// A container this process started and must stop on shutdown.
    Started { container_id: String },
}

/// Ensures the backend is up and serves `backend.selected_model`. `found_running` is the
/// start-up decision (a server already answered before registration): it is the same fact the
/// capability reports carry as `existing_service`, so it is not probed again here. A container
/// is put into `slot` as soon as it exists, so that whoever owns the slot removes it even if this
/// future is dropped (SIGTERM) or fails while waiting for the model.
pub async fn ensure(
    settings: &InferenceSettings,
    backend: Option<&InferenceBackend>,
    found_running: bool,
    podman: &Podman,
    server: &ModelServer,
    slot: &mut Option<Backend>,
) -> Result<(), InferenceError> {
    let model = backend.map(|b| b.selected_model.as_str()).unwrap_or("");
    if found_running {
        tracing::info!(url = %settings.url, "using the inference server that already answers");
        *slot = Some(Backend::Existing);
        return wait_for_model(settings, model, server, None).await;
    }
    let Some(backend) = backend.filter(|b| b.enabled) else {
        return Err(InferenceError::NothingToStart {
            url: settings.url.to_string(),
        });
    };
    let image = backend
        .image
        .clone()
        .unwrap_or_else(|| settings.image.clone());
    let container_id = start_container(settings, backend, &image, podman, slot).await?;
    wait_for_model(settings, model, server, Some((podman, &container_id))).await
}

async fn start_container(
    settings: &InferenceSettings,
    backend: &InferenceBackend,
    image: &str,
    podman: &Podman,
    slot: &mut Option<Backend>,
) -> Result<String, InferenceError> {
    remove_stale(podman, &settings.container_name).await?;
    ensure_image(podman, image).await?;
    let host_port = settings
        .url
        .port_or_known_default()
        .expect("config checked that the inference URL has a port");
    let labels: HashMap<&str, &str> = [(MANAGED_LABEL, MANAGED_VALUE)].into();
    let mut opts = ContainerCreateOpts::builder()
        .image(image)
        .name(&settings.container_name)
        .labels(labels)
        .env(backend.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // Inference must never be reachable from the network (REQ-WORKER-0115).
        .portmappings([PortMapping {
            container_port: Some(backend.port),
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(host_port),
            protocol: Some("tcp".into()),
            range: None,
        }]);
    if !backend.command.is_empty() {
        opts = opts.command(&backend.command);
    }
    let created = podman
        .containers()
        .create(&opts.build())
        .await
        .map_err(|e| podman_error("create", &e))?;
    tracing::info!(container = %created.id, image, "inference container created");
    *slot = Some(Backend::Started {
        container_id: created.id.clone(),
    });
    podman
        .containers()
        .get(&created.id)
        .start(None)
        .await
        .map_err(|e| podman_error("start", &e))?;
    Ok(created.id)
}

/// A container left over by a crashed predecessor blocks the name; remove it if it is ours.
async fn remove_stale(podman: &Podman, name: &str) -> Result<(), InferenceError> {
    let container = podman.containers().get(name);
    let Ok(info) = container.inspect().await else {
        return Ok(());
    };
    let ours = info
        .config
        .and_then(|c| c.labels)
        .is_some_and(|l| l.get(MANAGED_LABEL).map(String::as_str) == Some(MANAGED_VALUE));
    if !ours {
        return Err(InferenceError::ForeignContainer { name: name.into() });
    }
    tracing::warn!(
        name,
        "removing a stale inference container of an earlier run"
    );
    container
        .delete(&ContainerDeleteOpts::builder().force(true).build())
        .await
        .map_err(|e| podman_error("remove", &e))
}

async fn ensure_image(podman: &Podman, image: &str) -> Result<(), InferenceError> {
    if podman.images().get(image).exists().await.unwrap_or(false) {
        return Ok(());
    }
    tracing::info!(image, "pulling the inference image");
    let images = podman.images();
    let mut stream = images.pull(&PullOpts::builder().reference(image).quiet(true).build());
    while let Some(report) = stream.next().await {
        let reason = match report {
            Ok(r) => r.error,
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = reason {
            return Err(InferenceError::ImageUnavailable {
                image: image.into(),
                reason,
            });
        }
    }
    Ok(())
}

/// Polls the server until it lists `model` (any model if empty). With a container, also fails
/// as soon as it exits. A server that answers without the model either pulls it (Ollama, with
/// progress in `STATUS=` and the log) or fails at once naming the model: waiting would not make
/// a llama.cpp server grow a model.
async fn wait_for_model(
    settings: &InferenceSettings,
    model: &str,
    server: &ModelServer,
    container: Option<(&Podman, &str)>,
) -> Result<(), InferenceError> {
    let deadline = tokio::time::Instant::now() + settings.startup_timeout;
    let mut pulled = false;
    let mut listed = None;
    loop {
        if let Some(snapshot) = server.snapshot().await {
            if model.is_empty() || snapshot.available.iter().any(|m| m == model) {
                return Ok(());
            }
            if !snapshot.ollama {
                return Err(InferenceError::ModelNotServed {
                    url: settings.url.to_string(),
                    model: model.into(),
                    listed: listed_models(&snapshot.available),
                });
            }
            if !pulled {
                pull(server, model).await?;
                pulled = true;
                continue;
            }
            listed = Some(snapshot.available);
        }
        if let Some((podman, id)) = container
            && let Some(code) = exit_code(podman, id).await
        {
            return Err(InferenceError::Exited {
                code,
                logs: log_tail(podman, id).await,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(InferenceError::ModelMissing {
                url: settings.url.to_string(),
                model: model.into(),
                secs: settings.startup_timeout.as_secs(),
                listed: listed
                    .map_or_else(|| "nothing, it never answered".into(), |m| m.join(", ")),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn listed_models(models: &[String]) -> String {
    if models.is_empty() {
        "no model".into()
    } else {
        models.join(", ")
    }
}

/// Ollama's pull with its progress in `STATUS=` (at most one line a second) and the log.
async fn pull(server: &ModelServer, model: &str) -> Result<(), InferenceError> {
    tracing::info!(model, url = %server.url(), "the selected model is missing; pulling it through Ollama");
    cynode_service_kit::notify::status(&format!("pulling model `{model}` through Ollama"));
    let mut last_status = std::time::Instant::now() - Duration::from_secs(1);
    let mut last_logged = String::new();
    server
        .ollama_pull(model, |progress: &PullProgress| {
            let text = progress.describe();
            if last_status.elapsed() >= Duration::from_secs(1) {
                cynode_service_kit::notify::status(&format!("pulling model `{model}`: {text}"));
                last_status = std::time::Instant::now();
            }
            if progress.status != last_logged {
                tracing::info!(model, progress = %text, "model pull");
                last_logged = progress.status.clone();
            }
        })
        .await
        .map_err(|e| InferenceError::PullFailed {
            url: server.url().to_string(),
            model: model.into(),
            reason: e.to_string(),
        })?;
    tracing::info!(model, "model pulled");
    Ok(())
}

async fn exit_code(podman: &Podman, id: &str) -> Option<i64> {
    let state = podman.containers().get(id).inspect().await.ok()?.state?;
    match state.status.as_deref() {
        Some("exited" | "stopped") => Some(state.exit_code.map_or(-1, i64::from)),
        _ => None,
    }
}

async fn log_tail(podman: &Podman, id: &str) -> String {
    use podman_api::conn::TtyChunk;
    let container = podman.containers().get(id);
    let mut logs = container.logs(
        &podman_api::opts::ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .tail("5")
            .build(),
    );
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        if let TtyChunk::StdOut(b) | TtyChunk::StdErr(b) = chunk {
            text.push_str(&String::from_utf8_lossy(&b));
        }
    }
    text.trim().replace('\n', " | ")
}

/// Stops and removes a container we started; an existing server is left alone.
/// Returns whether the container is gone.
pub async fn stop(podman: &Podman, backend: &Backend, grace: Duration) -> bool {
    let Backend::Started { container_id } = backend else {
        return true;
    };
    let container = podman.containers().get(container_id);
    let secs = usize::try_from(grace.as_secs()).unwrap_or(usize::MAX);
    if let Err(e) = container
        .stop(&ContainerStopOpts::builder().timeout(secs).build())
        .await
    {
        tracing::warn!(error = %e, "stopping the inference container failed; removing it by force");
    }
    match container
        .delete(&ContainerDeleteOpts::builder().force(true).build())
        .await
    {
        Ok(()) => {
            tracing::info!(container = %container_id, "inference container removed");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, container = %container_id, "cannot remove the inference container");
            false
        }
    }
}

fn podman_error(action: &'static str, e: &podman_api::Error) -> InferenceError {
    InferenceError::Podman {
        action,
        reason: crate::registration::error_chain(e),
    }
}
