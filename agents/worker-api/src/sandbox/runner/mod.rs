//! The Podman side of a job's run: create its container (or find one an earlier worker left),
//! supervise it until it ends, collect what it printed, and remove it. Which run happens when,
//! and what becomes of its result, is decided by [`super::lifecycle`].
//!
//! One file per step: `workspace` (the job's host directory), `supervise` (start, wait, end
//! early), `logs` (the output, capped, followed while the job writes), `result` (what the run
//! reports), `leftover` (what an earlier worker left) and `managed` (the Project Manager's
//! long-lived sandboxes).

mod leftover;
mod logs;
mod managed;
mod result;
mod supervise;
mod workspace;

use std::path::{Path, PathBuf};

use chrono::Utc;
use cynode_contracts::telemetry::{ContainerAction, ContainerKind};
use cynode_contracts::worker::{RunJobResponse, SandboxLimits};
use podman_api::Podman;
use podman_api::opts::ContainerDeleteOpts;
use serde_json::Map;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use self::result::{Collected, collect, exec_failed, refused, response};
use self::supervise::{run_to_end, start};
use self::workspace::prepare_job_dir;
use super::create::{CreateError, create_body_with, create_container};
use super::labels::{LABEL_DEADLINE, LABEL_JOB_ID, LABEL_MOUNT_ROOT, LABEL_TASK_ID};
use super::live::LiveOutput;
use super::plan::JobPlan;
use super::pod::{self, PodError, PodSetup};
use super::removal::remove_patiently;
use super::spec::{container_name, container_spec};
use crate::telemetry::{ContainerRef, Telemetry};

pub use leftover::Adoptable;
pub use result::canceled_before_start;

/// The node's sandbox runner: a Podman client plus where per-job directories go.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    podman: Podman,
    socket: PathBuf,
    mount_root: PathBuf,
    /// Set when the node serves inference or MCP to sandboxes.
    pods: Option<PodSetup>,
    /// The seccomp profile every sandbox runs under (see `seccomp`); without one, Podman's
    /// default.
    seccomp: Option<PathBuf>,
    /// Records each sandbox's lifecycle steps and output; disabled unless set.
    telemetry: Telemetry,
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
    fn owner_labels(&self, task_id: Uuid, job_id: Uuid) -> Vec<(&'static str, String)> {
        vec![
            (LABEL_TASK_ID, task_id.to_string()),
            (LABEL_JOB_ID, job_id.to_string()),
            (LABEL_MOUNT_ROOT, self.mount_root.display().to_string()),
        ]
    }

    /// Runs the job to its end, its timeout, a stop or worker shutdown. The container (and pod)
    /// is removed in every case; the workspace directory stays.
    /// What the job prints goes to `live` as it is read, as well as into the result.
    pub async fn run(
        &self,
        plan: &JobPlan,
        signals: &mut Signals,
        live: &LiveOutput,
    ) -> Result<RunEnd, SandboxError> {
        let workspace = self.ready_to_create(plan).await?;
        let labels = self.owner_labels(plan.task_id, plan.job_id);
        let pod = if plan.needs_pod() {
            let setup = self.pods.as_ref().ok_or_else(|| {
                SandboxError::Pod(PodError::Unavailable(
                    "neither inference nor MCP is configured on this node".into(),
                ))
            })?;
            let job_dir = self.mount_root.join(plan.job_id.to_string());
            match pod::start(&self.podman, &self.socket, plan, &job_dir, setup, &labels).await {
                Ok(pod) => Some(pod),
                Err(e @ PodError::Unavailable(_)) => {
                    let reason = e.to_string();
                    tracing::error!(task_id = %plan.task_id, job_id = %plan.job_id, %reason, "job's pod cannot run");
                    return Ok(RunEnd::Finished(Box::new(refused(plan, &reason))));
                }
                Err(PodError::AlreadyRunning(job)) => {
                    return Err(SandboxError::AlreadyRunning(job));
                }
                Err(e) => return Err(SandboxError::Pod(e)),
            }
        } else {
            None
        };
        let deadline = Instant::now() + plan.timeout;
        let deadline_label =
            Utc::now() + chrono::Duration::from_std(plan.timeout).unwrap_or(chrono::Duration::MAX);
        let mut labels = labels;
        labels.push((LABEL_DEADLINE, deadline_label.to_rfc3339()));
        let spec_labels = labels.clone();
        let pod_name = pod.as_ref().map(|p| p.name.as_str());
        let created = self
            .create_sandbox(plan, &workspace, pod_name, labels)
            .await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                if let Some(pod) = pod {
                    pod.remove(&self.podman).await;
                }
                return Err(e);
            }
        };
        let container = self.podman.containers().get(&id);
        tracing::info!(task_id = %plan.task_id, job_id = %plan.job_id, container = %id, inference = plan.use_inference, mcp = plan.mcp.is_some(), "sandbox created");
        let recorded = sandbox_ref(&id, plan.task_id, plan.job_id, &plan.image, &spec_labels);
        self.telemetry
            .container(&recorded, ContainerAction::Create, None, Map::new())
            .await;

        let started_at = Utc::now();
        let collected = match start(&container).await {
            Ok(None) => {
                self.telemetry
                    .container(&recorded, ContainerAction::Start, None, Map::new())
                    .await;
                let cap = plan.max_output_bytes;
                let (ending, output) =
                    run_to_end(&self.podman, &id, deadline, cap, signals, live, plan.job_id).await;
                collect(&container, ending, cap, output).await
            }
            Ok(Some(code)) => Ok(Some(exec_failed(plan, code))),
            Err(e) => Err(e),
        };
        let ended_at = Utc::now();
        self.record_end(&recorded, &collected).await;
        self.remove_recorded(plan.job_id, &recorded).await;
        let run_diagnostics = match pod {
            Some(pod) => Some(serde_json::Value::Object(pod.remove(&self.podman).await)),
            None => None,
        };
        let Some(collected) = collected? else {
            tracing::warn!(task_id = %plan.task_id, job_id = %plan.job_id, "sandbox stopped by the worker's shutdown");
            return Ok(RunEnd::Interrupted);
        };
        tracing::info!(task_id = %plan.task_id, job_id = %plan.job_id, status = ?collected.status, exit_code = collected.exit_code, oom_killed = collected.oom_killed, "sandbox finished");
        let mut result = response(
            plan.task_id,
            plan.job_id,
            collected,
            (started_at, ended_at),
            run_diagnostics,
        );
        result.limits = Some(SandboxLimits {
            user_namespaces_denied: self.seccomp.is_some(),
            ..plan.limits
        });
        Ok(RunEnd::Finished(Box::new(result)))
    }

    /// Creates (does not start) the job's locked-down container ([`container_spec`]).
    async fn create_sandbox(
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

    /// What every sandbox needs before its create: its image on this node and its job
    /// directory. Returns the workspace.
    async fn ready_to_create(&self, plan: &JobPlan) -> Result<PathBuf, SandboxError> {
        // Podman 4.3 answers a create with a missing image with a bare 500; ask first.
        if !self.podman.images().get(&plan.image).exists().await? {
            return Err(SandboxError::ImageMissing(plan.image.clone()));
        }
        let workspace = self.workspace_dir(plan.job_id);
        prepare_job_dir(&workspace)
            .await
            .map_err(|source| SandboxError::Workspace {
                path: workspace.clone(),
                source,
            })?;
        Ok(workspace)
    }

    /// Removes a recorded container and, once it is gone, records its removal.
    async fn remove_recorded(&self, job_id: Uuid, recorded: &ContainerRef) {
        if self.remove_container(job_id, &recorded.id).await {
            self.telemetry
                .container(recorded, ContainerAction::Remove, None, Map::new())
                .await;
        }
    }

    /// Removes a container; false (and an error in the log) if Podman would not.
    async fn remove_container(&self, job_id: Uuid, id: &str) -> bool {
        let container = self.podman.containers().get(id);
        let force = ContainerDeleteOpts::builder().force(true).build();
        match remove_patiently(|| container.delete(&force)).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(%job_id, container = %id, error = %e, "cannot remove sandbox");
                false
            }
        }
    }

    /// Telemetry of a run's end: the `stop` step with how it ended, and what it printed.
    async fn record_end(
        &self,
        recorded: &ContainerRef,
        collected: &Result<Option<Collected>, SandboxError>,
    ) {
        let (exit_code, ending) = match collected {
            Ok(Some(c)) => (
                Some(c.exit_code),
                serde_json::to_value(c.status).unwrap_or_default(),
            ),
            Ok(None) => (None, "interrupted".into()),
            Err(_) => (None, "error".into()),
        };
        let details = Map::from_iter([("ending".to_owned(), ending)]);
        self.telemetry
            .container(recorded, ContainerAction::Stop, exit_code, details)
            .await;
        if let Ok(Some(c)) = collected {
            self.telemetry.output(recorded, &c.stdout, &c.stderr).await;
        }
    }
}

/// A job's sandbox container as telemetry records it.
fn sandbox_ref(
    id: &str,
    task_id: Uuid,
    job_id: Uuid,
    image: &str,
    labels: &[(&'static str, String)],
) -> ContainerRef {
    ContainerRef {
        id: id.to_owned(),
        name: container_name(job_id),
        kind: ContainerKind::Sandbox,
        image_ref: image.to_owned(),
        task_id: Some(task_id),
        job_id: Some(job_id),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}
