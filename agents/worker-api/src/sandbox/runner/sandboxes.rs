//! The node's sandbox runner as a value: its Podman client, mount root, pods, seccomp profile
//! and telemetry; what may end a run and how it ended; and the one way a sandbox container is
//! created.

use std::path::{Path, PathBuf};

use cynode_contracts::worker::RunJobResponse;
use podman_api::Podman;
use tokio::sync::watch;
use uuid::Uuid;

use crate::sandbox::create::{CreateError, create_body_with, create_container};
use crate::sandbox::labels::{LABEL_JOB_ID, LABEL_MOUNT_ROOT, LABEL_TASK_ID};
use crate::sandbox::plan::JobPlan;
use crate::sandbox::pod::{PodError, PodSetup};
use crate::sandbox::spec::container_spec;
use crate::telemetry::Telemetry;

/// The node's sandbox runner: a Podman client plus where per-job directories go.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    pub(super) podman: Podman,
    pub(super) socket: PathBuf,
    pub(super) mount_root: PathBuf,
    /// Set when the node serves inference or MCP to sandboxes.
    pub(super) pods: Option<PodSetup>,
    /// The seccomp profile every sandbox runs under (see `seccomp`); without one, Podman's
    /// default.
    pub(super) seccomp: Option<PathBuf>,
    /// Records each sandbox's lifecycle steps and output; disabled unless set.
    pub(super) telemetry: Telemetry,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("job {0} already has a container or pod on this node that this worker did not make")]
    AlreadyRunning(Uuid),
    #[error("image `{0}` is allowed but not present on this node")]
    ImageMissing(String),
    #[error("cannot prepare the job directory {path}: {source}")]
    Workspace {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Create(CreateError),
    #[error(transparent)]
    Pod(PodError),
    #[error("Podman failed: {0}")]
    Podman(#[from] podman_api::Error),
    #[error("cannot empty a job's workspace: {0}")]
    Cleanup(String),
}

/// Why the orchestrator stops a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its task was canceled: the run ends `canceled`, and that result is kept.
    Cancel,
    /// It is to run elsewhere (its node was drained): the run is killed like at shutdown,
    /// interrupted, and nothing is kept, so a later delivery here runs it afresh.
    Requeue,
}

/// What may end a run before its process or its deadline does.
#[derive(Debug)]
pub struct Signals {
    /// Set when the job is stopped through the API.
    pub stop: watch::Receiver<Option<Stop>>,
    /// Turns true when the worker shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// How a run ended, once its container is gone.
#[derive(Debug)]
pub enum RunEnd {
    /// It has a result: it ran to its end, timed out, could not exec, or was canceled.
    Finished(Box<RunJobResponse>),
    /// The worker shut down while it still ran: it was killed and nothing of it is kept.
    Interrupted,
}

impl Sandboxes {
    pub fn new(socket: &Path, mount_root: &Path) -> Self {
        Self {
            podman: Podman::unix(socket),
            socket: socket.to_owned(),
            mount_root: mount_root.to_owned(),
            pods: None,
            seccomp: None,
            telemetry: Telemetry::disabled(),
        }
    }

    /// Records every sandbox's create, start, stop, removal and output here.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Runs every sandbox under this seccomp profile (a file Podman can read).
    pub fn with_seccomp(mut self, profile: PathBuf) -> Self {
        self.seccomp = Some(profile);
        self
    }

    /// Lets jobs with inference or MCP run: each in a pod with the sidecar (see `pod`).
    pub fn with_pods(mut self, setup: PodSetup) -> Self {
        self.pods = Some(setup);
        self
    }

    /// The node's model server, when it serves inference.
    pub fn inference(&self) -> Option<&crate::inference::Backend> {
        self.pods.as_ref().and_then(|p| p.inference.as_ref())
    }

    /// Whether sandboxes run under the worker's seccomp profile, which refuses new user
    /// namespaces.
    pub fn denies_user_namespaces(&self) -> bool {
        self.seccomp.is_some()
    }

    pub fn podman(&self) -> &Podman {
        &self.podman
    }

    pub fn mount_root(&self) -> &Path {
        &self.mount_root
    }

    /// `<mount_root>/<job_id>/workspace`, mounted at `/workspace`.
    pub fn workspace_dir(&self, job_id: Uuid) -> PathBuf {
        self.mount_root.join(job_id.to_string()).join("workspace")
    }

    /// The labels that tie a container or pod to its job and to this worker's mount root.
    pub(super) fn owner_labels(&self, task_id: Uuid, job_id: Uuid) -> Vec<(&'static str, String)> {
        vec![
            (LABEL_TASK_ID, task_id.to_string()),
            (LABEL_JOB_ID, job_id.to_string()),
            (LABEL_MOUNT_ROOT, self.mount_root.display().to_string()),
        ]
    }

    /// Creates (does not start) the job's locked-down container ([`container_spec`]).
    pub(super) async fn create_sandbox(
        &self,
        plan: &JobPlan,
        workspace: &Path,
        pod: Option<&str>,
        labels: Vec<(&'static str, String)>,
    ) -> Result<String, SandboxError> {
        let (spec, extra) = container_spec(plan, workspace, pod, labels, self.seccomp.as_deref());
        let body = create_body_with(&spec, extra).map_err(SandboxError::Create)?;
        create_container(&self.socket, body)
            .await
            .map_err(|e| match e {
                // The container is named after the job, so a second run of a running job
                // collides on the name (Podman 4.3 says so with a 500).
                CreateError::Refused { status, message }
                    if status == 409 || message.contains("is already in use") =>
                {
                    SandboxError::AlreadyRunning(plan.job_id)
                }
                other => SandboxError::Create(other),
            })
    }
}
