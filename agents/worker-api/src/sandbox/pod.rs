//! The pod of a job with inference or MCP (ARCHITECTURE.md §4 "Sandbox inference"): a Podman
//! pod whose network namespace has loopback only, one sidecar in it listening on loopback for
//! each service the job has (`127.0.0.1:11434` for inference, `127.0.0.1:12083` for MCP), and
//! the job's socket for each mounted into the sidecar alone. The sandbox container joins the pod
//! afterwards (see `runner`), so it shares the pod's loopback and nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cynode_inference_proxy::args::{CONTAINER_BINARY, Forward, READY_FILE_NAME, SidecarArgs};
use podman_api::Podman;
use podman_api::models::ContainerMount;
use podman_api::opts::ContainerCreateOpts;

use super::create::{CreateError, create_body, create_container, create_pod};
use super::labels::{LABEL_ROLE, ROLE_SIDECAR};
use super::plan::JobPlan;
use super::removal::remove_patiently;
use super::spec::auto_userns;
use crate::inference::routes::job_router;
use crate::inference::{Backend, Usage};
use crate::job_socket::JobSocket;
use crate::mcp::{JobMcp, McpGateway};

/// How long the sidecar may take to listen.
const SIDECAR_READY_WITHIN: Duration = Duration::from_secs(15);

/// What this node needs to give a job a pod: the sidecar, and what the job's sockets forward to.
#[derive(Debug, Clone)]
pub struct PodSetup {
    /// The static sidecar binary, or why there is none (checked once at start-up).
    pub sidecar: Result<PathBuf, String>,
    /// The image the sidecar container is made of (the node's default sandbox image: the
    /// binary needs nothing from it).
    pub sidecar_image: String,
    /// The node's model server, when it serves inference to sandboxes.
    pub inference: Option<Backend>,
    /// The orchestrator's MCP gateway, when the node forwards jobs' MCP calls.
    pub mcp: Option<McpGateway>,
}

/// A running pod with its sidecar and the job's sockets; removed by [`JobPod::remove`].
#[derive(Debug)]
pub struct JobPod {
    pub name: String,
    sockets: Vec<PodSocket>,
    /// The job's inference counts, when it has inference.
    inference: Option<Arc<Usage>>,
    /// The job's MCP forwarding, when it has MCP.
    mcp: Option<JobMcp>,
}

/// One of the job's sockets and the sidecar forward that reaches it.
#[derive(Debug)]
struct PodSocket {
    forward: Forward,
    socket: JobSocket,
}

/// Why a job's pod could not be made ready. `Unavailable` fails the job with its reason (the
/// node cannot serve the job's pod right now); the rest are node faults.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("inference and MCP for sandboxes are unavailable on this node: {0}")]
    Unavailable(String),
    #[error("job {0} already has a pod on this node")]
    AlreadyRunning(uuid::Uuid),
    #[error("cannot open the job's socket: {0}")]
    Socket(std::io::Error),
    #[error("Podman refused the job's pod: {0}")]
    Podman(String),
}

pub fn pod_name(job_id: uuid::Uuid) -> String {
    format!("cynodeai-pod-{job_id}")
}

/// Creates the pod, opens the job's sockets, starts the sidecar and waits until it listens.
/// `labels` (the job's and its worker's) go on the pod and the sidecar. Whatever exists when
/// this fails is removed before it returns.
pub async fn start(
    podman: &Podman,
    socket_path: &Path,
    plan: &JobPlan,
    job_dir: &Path,
    setup: &PodSetup,
    labels: &[(&'static str, String)],
) -> Result<JobPod, PodError> {
    let binary = setup.sidecar.clone().map_err(PodError::Unavailable)?;
    let mut sockets = Vec::new();
    let mut inference = None;
    if plan.use_inference {
        let backend = setup
            .inference
            .clone()
            .ok_or_else(|| PodError::Unavailable("inference is disabled on this node".into()))?;
        let usage = Arc::new(Usage::default());
        let app = job_router(backend, Arc::clone(&usage));
        sockets.push(PodSocket::open(job_dir, Forward::inference(), app)?);
        inference = Some(usage);
    }
    let mut mcp = None;
    if let Some(target) = &plan.mcp {
        let gateway = setup.mcp.as_ref().ok_or_else(|| {
            PodError::Unavailable("no MCP gateway is configured on this node".into())
        })?;
        let job = JobMcp::new(gateway, target.clone());
        sockets.push(PodSocket::open(job_dir, Forward::mcp(), job.router())?);
        mcp = Some(job);
    }
    let name = pod_name(plan.job_id);
    let body = pod_body(&name, labels);
    create_pod(socket_path, body).await.map_err(|e| match e {
        CreateError::Refused { status, message }
            if status == 409 || message.contains("already in use") =>
        {
            PodError::AlreadyRunning(plan.job_id)
        }
        // Podman could not make the pod at all (its pause image, or no subordinate ids for
        // its user namespace): no such job can run here until an operator fixes that, so the
        // job fails with the reason.
        other => PodError::Unavailable(format!("Podman cannot create the job's pod: {other}")),
    })?;
    let pod = JobPod {
        name,
        sockets,
        inference,
        mcp,
    };
    match start_sidecar(podman, socket_path, &pod, &binary, setup, labels).await {
        Ok(()) => Ok(pod),
        Err(e) => {
            pod.remove(podman).await;
            Err(e)
        }
    }
}

impl PodSocket {
    /// The socket `forward` reaches: the sidecar sees `<dir>/<name>` of its upstream path, the
    /// host has `<job_dir>/<last part of dir>/<name>` (`inference/inference.sock`, `mcp/mcp.sock`).
    fn open(job_dir: &Path, forward: Forward, app: Router) -> Result<Self, PodError> {
        let container_dir = forward.upstream_socket.parent().unwrap_or(Path::new("/"));
        let (Some(dir), Some(name)) = (
            container_dir.file_name(),
            forward.upstream_socket.file_name().and_then(|n| n.to_str()),
        ) else {
            return Err(PodError::Socket(std::io::Error::other(format!(
                "the sidecar's socket path {} has no directory of its own",
                forward.upstream_socket.display()
            ))));
        };
        let socket = JobSocket::open(job_dir.join(dir), name, app).map_err(PodError::Socket)?;
        Ok(Self { forward, socket })
    }

    /// Where the sidecar has this socket's directory.
    fn container_dir(&self) -> String {
        self.forward
            .upstream_socket
            .parent()
            .unwrap_or(Path::new("/"))
            .display()
            .to_string()
    }
}

/// The libpod spec of a job's pod: its labels, a network namespace with loopback only (the
/// sidecar is the one way out), and a user namespace of its own that the sidecar and the job's
/// container share (see `spec::auto_userns`).
fn pod_body(name: &str, labels: &[(&'static str, String)]) -> Vec<u8> {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into()))
        .collect();
    let mut spec = serde_json::Map::new();
    spec.insert("name".into(), name.into());
    spec.insert("labels".into(), labels.into());
    spec.insert("netns".into(), serde_json::json!({"nsmode": "none"}));
    spec.extend(auto_userns());
    serde_json::to_vec(&spec).expect("JSON")
}

async fn start_sidecar(
    podman: &Podman,
    socket_path: &Path,
    pod: &JobPod,
    binary: &Path,
    setup: &PodSetup,
    labels: &[(&'static str, String)],
) -> Result<(), PodError> {
    // The sidecar writes it into the first forward's socket directory (`SidecarArgs::for_pod`).
    let Some(first) = pod.sockets.first() else {
        return Err(PodError::Podman(
            "a pod without sockets has no sidecar".into(),
        ));
    };
    let ready = first.socket.dir().join(READY_FILE_NAME);
    let args = SidecarArgs::for_pod(pod.sockets.iter().map(|s| s.forward.clone()).collect());
    let mounts = std::iter::once(bind(binary, CONTAINER_BINARY, "ro")).chain(
        pod.sockets
            .iter()
            .map(|s| bind(s.socket.dir(), &s.container_dir(), "rw")),
    );
    let spec = ContainerCreateOpts::builder()
        .name(format!("{}-sidecar", pod.name))
        .pod(&pod.name)
        .image(&setup.sidecar_image)
        .entrypoint([CONTAINER_BINARY])
        .command(args.to_args())
        .labels(
            labels
                .iter()
                .cloned()
                .chain([(LABEL_ROLE, ROLE_SIDECAR.to_owned())]),
        )
        .drop_capabilities(["ALL"])
        .no_new_privilages(true)
        .read_only_fs(true)
        .mounts(mounts)
        .build();
    let body = create_body(&spec).map_err(|e| PodError::Podman(e.to_string()))?;
    let id = create_container(socket_path, body)
        .await
        .map_err(|e| match e {
            CreateError::Refused { message, .. }
                if message.contains("image not known") || message.contains("no such image") =>
            {
                PodError::Unavailable(format!(
                    "the sidecar image {} is missing: {message}",
                    setup.sidecar_image
                ))
            }
            other => PodError::Podman(other.to_string()),
        })?;
    let sidecar = podman.containers().get(&id);
    sidecar
        .start(None)
        .await
        .map_err(|e| PodError::Unavailable(format!("the sidecar did not start: {e}")))?;
    let deadline = tokio::time::Instant::now() + SIDECAR_READY_WITHIN;
    loop {
        if tokio::fs::try_exists(&ready).await.unwrap_or(false) {
            return Ok(());
        }
        let state = sidecar
            .inspect()
            .await
            .map_err(|e| PodError::Podman(e.to_string()))?
            .state;
        if let Some(state) = state
            && matches!(state.status.as_deref(), Some("exited" | "stopped"))
        {
            return Err(PodError::Unavailable(format!(
                "the sidecar exited with code {} before it listened",
                state.exit_code.unwrap_or(-1)
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PodError::Unavailable(format!(
                "the sidecar did not listen within {}s",
                SIDECAR_READY_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn bind(source: &Path, destination: &str, mode: &str) -> ContainerMount {
    ContainerMount {
        destination: Some(destination.into()),
        source: Some(source.display().to_string()),
        _type: Some("bind".into()),
        options: Some(vec![
            "rbind".into(),
            mode.into(),
            "nosuid".into(),
            "nodev".into(),
        ]),
        uid_mappings: None,
        gid_mappings: None,
    }
}

impl JobPod {
    /// Removes the pod with everything in it, then the sockets; returns what the job used, for
    /// its `run_diagnostics` (`inference`: requests and tokens; `mcp`: requests).
    pub async fn remove(self, podman: &Podman) -> serde_json::Map<String, serde_json::Value> {
        remove(podman, &self.name).await;
        drop(self.sockets);
        let mut used = serde_json::Map::new();
        if let Some(usage) = self.inference {
            used.insert("inference".into(), usage.to_json());
        }
        if let Some(mcp) = self.mcp {
            used.insert("mcp".into(), mcp.usage());
        }
        used
    }
}

/// Removes a pod with everything in it: a job's own at its end, or one an earlier worker left.
pub async fn remove(podman: &Podman, name: &str) {
    let pod = podman.pods().get(name);
    // SIGKILL first: the sidecar is its container's PID 1 and installs no SIGTERM handler,
    // so a plain stop would wait out Podman's 10 s grace for nothing.
    if let Err(e) = pod.kill().await {
        tracing::debug!(pod = %name, error = %e, "killing a job's pod");
    }
    if let Err(e) = remove_patiently(|| pod.remove()).await {
        tracing::error!(pod = %name, error = %e, "cannot remove a job's pod");
    }
}
