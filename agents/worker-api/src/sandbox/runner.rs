//! The Podman side of a job's run: create its container (or find one an earlier worker left),
//! supervise it until it ends, collect what it printed, and remove it. Which run happens when,
//! and what becomes of its result, is decided by [`super::lifecycle`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_contracts::worker::{RunJobResponse, RunStatus, SandboxLimits, Truncated};
use futures::StreamExt;
use podman_api::Podman;
use podman_api::api::Container;
use podman_api::conn::TtyChunk;
use podman_api::models::{ContainerMount, ListContainer, Namespace};
use podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ContainerLogsOpts, ContainerWaitOpts, PodListFilter, PodListOpts,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::create::{CreateError, create_body_with, create_container};
use super::live::LiveOutput;
use super::output::CappedStream;
use super::pod::{self, LABEL_ROLE, PodError, PodSetup, ROLE_MANAGED, ROLE_SIDECAR};
use super::{
    JobPlan, LABEL_DEADLINE, LABEL_JOB_ID, LABEL_MOUNT_ROOT, LABEL_TASK_ID, WORKSPACE_DIR,
    auto_userns,
};
use crate::telemetry::{ContainerRef, Telemetry};
use cynode_contracts::telemetry::{ContainerAction, ContainerKind};
use cynode_contracts::worker_cli::SANDBOX_USERNS_SIZE;
use serde_json::{Map, json};

/// Exit codes a shell gives for a command it cannot find or cannot execute; we report the same
/// when the OCI runtime fails to exec the argv, so callers see one convention.
const EXIT_NOT_FOUND: i32 = 127;
const EXIT_NOT_EXECUTABLE: i32 = 126;

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

/// How the container's process ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Exited,
    TimedOut,
    Canceled,
    Interrupted,
}

/// What a finished container left: its status, exit code and capped output.
struct Collected {
    status: RunStatus,
    exit_code: i32,
    stdout: String,
    stderr: String,
    truncated: Truncated,
    oom_killed: bool,
}

/// A job's container and pod that a worker on this mount root left on the Podman socket
/// without a live run of this worker to go with them (it crashed, or was killed).
#[derive(Debug)]
pub struct Leftover {
    pub job_id: Uuid,
    pub task_id: Uuid,
    /// The job's own container, unless the worker died before creating it.
    sandbox: Option<LeftSandbox>,
    /// The job's pod (jobs with inference or MCP); it goes with everything in it, the sidecar
    /// included.
    pod: Option<String>,
}

#[derive(Debug)]
struct LeftSandbox {
    id: String,
    state: LeftState,
    started_at: Option<DateTime<Utc>>,
    exited_at: Option<DateTime<Utc>>,
    deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeftState {
    /// Created but never started: the job did not run.
    NeverStarted,
    Running,
    Exited,
}

/// A leftover this worker can see to its end: its container already exited, or it runs on its
/// own (outside a pod) with a known deadline.
#[derive(Debug)]
pub struct Adoptable {
    pub job_id: Uuid,
    pub task_id: Uuid,
    sandbox: LeftSandbox,
    pod: Option<String>,
}

impl Leftover {
    fn empty(job_id: Uuid, task_id: Uuid) -> Self {
        Self {
            job_id,
            task_id,
            sandbox: None,
            pod: None,
        }
    }

    /// The leftover as one to take over, or back as it was when it cannot be: never started,
    /// or a running job with a pod, whose sockets were served by the worker that died.
    pub fn adoptable(self) -> Result<Adoptable, Leftover> {
        let can = self.sandbox.as_ref().is_some_and(|s| match s.state {
            LeftState::Exited => true,
            LeftState::Running => self.pod.is_none() && s.deadline.is_some(),
            LeftState::NeverStarted => false,
        });
        match self {
            Leftover {
                job_id,
                task_id,
                sandbox: Some(sandbox),
                pod,
            } if can => Ok(Adoptable {
                job_id,
                task_id,
                sandbox,
                pod,
            }),
            other => Err(other),
        }
    }
}

impl From<Adoptable> for Leftover {
    fn from(adoptable: Adoptable) -> Self {
        Self {
            job_id: adoptable.job_id,
            task_id: adoptable.task_id,
            sandbox: Some(adoptable.sandbox),
            pod: adoptable.pod,
        }
    }
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
                // Read the output while it is written: the log file on the host is capped and
                // starts afresh when full, so after the exit it may no longer hold the start.
                let (follower, cap) = (self.podman.containers().get(&id), plan.max_output_bytes);
                let live = live.clone();
                let reader =
                    tokio::spawn(async move { read_output(&follower, cap, Some(&live)).await });
                let ending = supervise(&container, deadline, signals).await;
                let output = match ending {
                    Ok(Ending::Interrupted) | Err(_) => {
                        reader.abort();
                        None
                    }
                    Ok(_) => followed(reader, plan.job_id).await,
                };
                collect(&container, ending, plan.max_output_bytes, output).await
            }
            Ok(Some(code)) => Ok(Some(exec_failed(plan, code))),
            Err(e) => Err(e),
        };
        let ended_at = Utc::now();
        self.record_end(&recorded, &collected).await;
        if self.remove_container(plan.job_id, &id).await {
            self.telemetry
                .container(&recorded, ContainerAction::Remove, None, Map::new())
                .await;
        }
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

    /// Creates and starts a managed sandbox (`crate::managed`): the container a job with
    /// `plan` would get (same hardening, limits, labels and `/workspace`), running the plan's
    /// idle command, without a deadline, marked [`ROLE_MANAGED`] so that the jobs' start-up
    /// sweep leaves it to the managed sandboxes' own. Returns the container id.
    pub async fn start_managed(&self, plan: &JobPlan) -> Result<String, SandboxError> {
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
        let mut labels = self.owner_labels(plan.task_id, plan.job_id);
        labels.push((LABEL_ROLE, ROLE_MANAGED.to_owned()));
        let recorded = sandbox_ref("", plan.task_id, plan.job_id, &plan.image, &labels);
        let id = self.create_sandbox(plan, &workspace, None, labels).await?;
        let recorded = ContainerRef {
            id: id.clone(),
            ..recorded
        };
        self.telemetry
            .container(&recorded, ContainerAction::Create, None, Map::new())
            .await;
        if let Err(e) = self.podman.containers().get(&id).start(None).await {
            self.remove_container(plan.job_id, &id).await;
            return Err(e.into());
        }
        self.telemetry
            .container(&recorded, ContainerAction::Start, None, Map::new())
            .await;
        Ok(id)
    }

    /// Removes a managed sandbox's container (recorded in telemetry) and then its directory,
    /// whose workspace files belong to the sandbox's user namespace (`empty` removes them).
    /// Its absence is not an error: removal is idempotent.
    pub async fn remove_managed(
        &self,
        task_id: Uuid,
        sandbox_id: Uuid,
        container: &str,
        empty: &crate::retention::EmptyWorkspace,
    ) {
        // The idle command is the namespace's init, which ignores the SIGTERM of a removal:
        // killed first, it does not hold the removal for Podman's stop timeout. An error
        // means it no longer runs.
        let _ = self.podman.containers().get(container).kill().await;
        if self.remove_container(sandbox_id, container).await {
            let recorded = sandbox_ref(container, task_id, sandbox_id, "", &[]);
            self.telemetry
                .container(&recorded, ContainerAction::Remove, None, Map::new())
                .await;
        }
        let (dir, empty) = (
            self.mount_root.join(sandbox_id.to_string()),
            std::sync::Arc::clone(empty),
        );
        let removed = tokio::task::spawn_blocking(move || {
            crate::retention::remove(&dir, sandbox_id, &*empty)
        })
        .await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(Err(e)) => {
                tracing::warn!(%sandbox_id, error = %e, "cannot remove a managed sandbox's directory")
            }
            Err(e) => {
                tracing::error!(%sandbox_id, error = %e, "removing a managed sandbox's directory panicked")
            }
        }
    }

    /// Managed sandboxes a worker on this mount root made, as `(task, sandbox, container)`.
    pub async fn managed_leftovers(&self) -> Result<Vec<(Uuid, Uuid, String)>, podman_api::Error> {
        let containers = self
            .podman
            .containers()
            .list(
                &ContainerListOpts::builder()
                    .all(true)
                    .filter([
                        ContainerListFilter::LabelKeyVal(
                            LABEL_MOUNT_ROOT.into(),
                            self.mount_root.display().to_string(),
                        ),
                        ContainerListFilter::LabelKeyVal(LABEL_ROLE.into(), ROLE_MANAGED.into()),
                    ])
                    .build(),
            )
            .await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let (sandbox_id, task_id) = owner(c.labels.as_ref())?;
                Some((task_id, sandbox_id, c.id?))
            })
            .collect())
    }

    /// Sees a run an earlier worker started to its end: waits for it, up to its deadline,
    /// unless stopped or shut down; collects it and removes it. While it runs, its output is
    /// followed into `live` too.
    pub async fn resume(
        &self,
        adoptable: Adoptable,
        max_output_bytes: usize,
        signals: &mut Signals,
        live: &LiveOutput,
    ) -> Result<RunEnd, SandboxError> {
        let Adoptable {
            job_id,
            task_id,
            sandbox,
            pod,
        } = adoptable;
        let container = self.podman.containers().get(&sandbox.id);
        let (ending, output) = match sandbox.state {
            LeftState::Exited => (Ok(Ending::Exited), None),
            LeftState::Running | LeftState::NeverStarted => {
                let left = sandbox
                    .deadline
                    .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(Duration::ZERO);
                // As for a fresh run: follow the log while the job writes (for the live log
                // stream, and so the result keeps the start of each stream).
                let (follower, live) = (self.podman.containers().get(&sandbox.id), live.clone());
                let reader = tokio::spawn(async move {
                    read_output(&follower, max_output_bytes, Some(&live)).await
                });
                let ending = supervise(&container, Instant::now() + left, signals).await;
                let output = match ending {
                    Ok(Ending::Interrupted) | Err(_) => {
                        reader.abort();
                        None
                    }
                    Ok(_) => followed(reader, job_id).await,
                };
                (ending, output)
            }
        };
        let collected = collect(&container, ending, max_output_bytes, output).await;
        let ended_at = sandbox.exited_at.unwrap_or_else(Utc::now);
        let recorded = sandbox_ref(&sandbox.id, task_id, job_id, "", &[]);
        self.record_end(&recorded, &collected).await;
        if self.remove_container(job_id, &sandbox.id).await {
            self.telemetry
                .container(&recorded, ContainerAction::Remove, None, Map::new())
                .await;
        }
        if let Some(pod) = &pod {
            pod::remove(&self.podman, pod).await;
        }
        let Some(collected) = collected? else {
            tracing::warn!(%task_id, %job_id, "adopted sandbox stopped by the worker's shutdown");
            return Ok(RunEnd::Interrupted);
        };
        tracing::info!(%task_id, %job_id, status = ?collected.status, exit_code = collected.exit_code, "adopted sandbox finished");
        Ok(RunEnd::Finished(Box::new(response(
            task_id,
            job_id,
            collected,
            (sandbox.started_at.unwrap_or(ended_at), ended_at),
            // Its inference and MCP usage, if any, was counted by the worker that died.
            Some(serde_json::json!({ "adopted": true })),
        ))))
    }

    /// Removes what is left of a job without collecting anything: it did not run, or cannot be
    /// seen to its end.
    pub async fn discard(&self, leftover: &Leftover) {
        if let Some(sandbox) = &leftover.sandbox
            && self.remove_container(leftover.job_id, &sandbox.id).await
        {
            let recorded = sandbox_ref(&sandbox.id, leftover.task_id, leftover.job_id, "", &[]);
            self.telemetry
                .container(&recorded, ContainerAction::Remove, None, Map::new())
                .await;
        }
        if let Some(pod) = &leftover.pod {
            pod::remove(&self.podman, pod).await;
        }
    }

    /// Containers and pods a worker on this mount root made (its labels say so), by job; only
    /// `job`'s if given. Nothing else on the Podman socket is ever listed, let alone touched.
    pub async fn leftovers(&self, job: Option<Uuid>) -> Result<Vec<Leftover>, podman_api::Error> {
        let root = self.mount_root.display().to_string();
        let mut container_filters = vec![ContainerListFilter::LabelKeyVal(
            LABEL_MOUNT_ROOT.into(),
            root.clone(),
        )];
        let mut pod_filters = vec![PodListFilter::LabelKeyVal(LABEL_MOUNT_ROOT.into(), root)];
        if let Some(job) = job {
            container_filters.push(ContainerListFilter::LabelKeyVal(
                LABEL_JOB_ID.into(),
                job.to_string(),
            ));
            pod_filters.push(PodListFilter::LabelKeyVal(
                LABEL_JOB_ID.into(),
                job.to_string(),
            ));
        }
        let containers = self
            .podman
            .containers()
            .list(
                &ContainerListOpts::builder()
                    .all(true)
                    .filter(container_filters)
                    .build(),
            )
            .await?;
        let pods = self
            .podman
            .pods()
            .list(&PodListOpts::builder().filter(pod_filters).build())
            .await?;
        let mut by_job: BTreeMap<Uuid, Leftover> = BTreeMap::new();
        for pod in pods {
            if let (Some((job_id, task_id)), Some(name)) = (owner(pod.labels.as_ref()), pod.name) {
                by_job
                    .entry(job_id)
                    .or_insert_with(|| Leftover::empty(job_id, task_id))
                    .pod = Some(name);
            }
        }
        for container in containers {
            let labels = container.labels.as_ref();
            // A sidecar goes with its pod; a managed sandbox is not a job's run (see
            // `managed_leftovers`).
            let not_a_run = labels
                .and_then(|l| l.get(LABEL_ROLE))
                .is_some_and(|role| role == ROLE_SIDECAR || role == ROLE_MANAGED);
            let Some((job_id, task_id)) = owner(labels).filter(|_| !not_a_run) else {
                continue;
            };
            by_job
                .entry(job_id)
                .or_insert_with(|| Leftover::empty(job_id, task_id))
                .sandbox = left_sandbox(container);
        }
        Ok(by_job.into_values().collect())
    }

    /// Empties a finished job's workspace, whose files belong to the uids of the job's user
    /// namespace: this worker, uid 0 without capabilities, may not remove them (it is "other"
    /// to them). A short container whose user namespace maps the same host ids (its root is the
    /// workspace's owner) removes them instead, with only `DAC_OVERRIDE` and `FOWNER` inside
    /// that namespace, no network and the node's seccomp profile. A workspace owned by root
    /// (none is, since user namespaces) needs nothing.
    pub async fn empty_workspace(
        &self,
        job_id: Uuid,
        workspace: &Path,
        image: &str,
    ) -> Result<(), SandboxError> {
        use std::os::unix::fs::MetadataExt;
        let meta = tokio::fs::symlink_metadata(workspace)
            .await
            .map_err(|source| SandboxError::Workspace {
                path: workspace.to_owned(),
                source,
            })?;
        if meta.uid() == 0 || !meta.is_dir() {
            return Ok(());
        }
        let map =
            |host: u32| json!([{"container_id": 0, "host_id": host, "size": SANDBOX_USERNS_SIZE}]);
        let name = format!("cynodeai-cleanup-{job_id}");
        let mut spec = json!({
            "name": &name,
            "image": image,
            "entrypoint": ["sh"],
            "command": ["-c", "chmod 0755 /w && rm -rf /w/* /w/.[!.]* /w/..?*"],
            "labels": {LABEL_MOUNT_ROOT: self.mount_root.display().to_string()},
            "cap_drop": ["ALL"],
            "cap_add": ["DAC_OVERRIDE", "FOWNER"],
            "no_new_privileges": true,
            "read_only_filesystem": true,
            "netns": {"nsmode": "none"},
            "userns": {"nsmode": "private"},
            "idmappings": {"UIDMap": map(meta.uid()), "GIDMap": map(meta.gid())},
            "mounts": [{"destination": "/w", "source": workspace.display().to_string(),
                        "type": "bind", "options": ["rbind", "rw", "nosuid", "nodev"]}],
        });
        if let Some(profile) = &self.seccomp {
            spec["seccomp_profile_path"] = profile.display().to_string().into();
        }
        let body = serde_json::to_vec(&spec).expect("JSON");
        // One an earlier sweep left when its worker died would hold the name.
        let _ = self
            .podman
            .containers()
            .get(&name)
            .delete(&ContainerDeleteOpts::builder().force(true).build())
            .await;
        let id = create_container(&self.socket, body)
            .await
            .map_err(SandboxError::Create)?;
        let container = self.podman.containers().get(&id);
        let ran = async {
            container.start(None).await?;
            container.wait(&wait_opts()).await?;
            let code = container.inspect().await?.state.and_then(|s| s.exit_code);
            Ok::<_, podman_api::Error>(code)
        }
        .await;
        self.remove_container(job_id, &id).await;
        match ran? {
            Some(0) => Ok(()),
            code => Err(SandboxError::Cleanup(format!(
                "the cleanup container exited with {code:?}"
            ))),
        }
    }

    /// Removes a container; false (and an error in the log) if Podman would not.
    async fn remove_container(&self, job_id: Uuid, id: &str) -> bool {
        let container = self.podman.containers().get(id);
        let force = ContainerDeleteOpts::builder().force(true).build();
        match super::remove_patiently(|| container.delete(&force)).await {
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

/// The name of a job's sandbox container.
fn container_name(job_id: Uuid) -> String {
    format!("cynodeai-job-{job_id}")
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

/// The job and task a container or pod is labelled with.
fn owner(labels: Option<&HashMap<String, String>>) -> Option<(Uuid, Uuid)> {
    let id = |key: &str| {
        labels
            .and_then(|l| l.get(key))
            .and_then(|v| Uuid::parse_str(v).ok())
    };
    Some((id(LABEL_JOB_ID)?, id(LABEL_TASK_ID)?))
}

fn left_sandbox(container: ListContainer) -> Option<LeftSandbox> {
    let time = |secs: Option<i64>| {
        secs.filter(|s| *s > 0)
            .and_then(|s| DateTime::from_timestamp(s, 0))
    };
    let state = match container.state.as_deref() {
        Some("running" | "paused" | "stopping") => LeftState::Running,
        Some("exited" | "stopped") => LeftState::Exited,
        _ => LeftState::NeverStarted,
    };
    let deadline = container
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_DEADLINE))
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc));
    Some(LeftSandbox {
        id: container.id?,
        state,
        started_at: time(container.started_at),
        exited_at: time(container.exited_at),
        deadline,
    })
}

fn response(
    task_id: Uuid,
    job_id: Uuid,
    collected: Collected,
    (started_at, ended_at): (DateTime<Utc>, DateTime<Utc>),
    run_diagnostics: Option<serde_json::Value>,
) -> RunJobResponse {
    RunJobResponse {
        version: cynode_contracts::PAYLOAD_VERSION,
        task_id,
        job_id,
        status: collected.status,
        exit_code: collected.exit_code,
        stdout: collected.stdout,
        stderr: collected.stderr,
        started_at,
        ended_at,
        truncated: collected.truncated,
        sba_result: None,
        artifacts: None,
        run_diagnostics,
        // Known only to the run that created the sandbox, which adds them.
        limits: None,
        oom_killed: collected.oom_killed,
    }
}

/// The result of a job that could not start for a reason of this node, not of the job: it fails
/// with that reason, and nothing was left running.
fn refused(plan: &JobPlan, reason: &str) -> RunJobResponse {
    let now = Utc::now();
    RunJobResponse {
        version: cynode_contracts::PAYLOAD_VERSION,
        task_id: plan.task_id,
        job_id: plan.job_id,
        status: RunStatus::Failed,
        exit_code: -1,
        stdout: String::new(),
        stderr: format!("{reason}\n"),
        started_at: now,
        ended_at: now,
        truncated: Truncated::default(),
        sba_result: None,
        artifacts: None,
        run_diagnostics: None,
        limits: None,
        oom_killed: false,
    }
}

/// The result of a job stopped before its container started: canceled, and nothing ran.
pub fn canceled_before_start(task_id: Uuid, job_id: Uuid) -> RunJobResponse {
    let now = Utc::now();
    RunJobResponse {
        version: cynode_contracts::PAYLOAD_VERSION,
        task_id,
        job_id,
        status: RunStatus::Canceled,
        exit_code: -1,
        stdout: String::new(),
        stderr: String::new(),
        started_at: now,
        ended_at: now,
        truncated: Truncated::default(),
        sba_result: None,
        artifacts: None,
        run_diagnostics: None,
        limits: None,
        oom_killed: false,
    }
}

/// The locked-down container for one job (ARCHITECTURE.md §4 "Sandboxes").
/// In a pod (jobs with inference or MCP), the container shares the pod's loopback-only network namespace;
/// otherwise it has none at all.
///
/// Limits (all from the plan, see `SandboxLimits`): memory with swap equal to it (no extra
/// swap), a CFS CPU quota, a pids limit, a sized `/tmp`, a capped k8s-file log, and the
/// node's seccomp profile. The extra map holds what the builder cannot express for libpod.
fn container_spec(
    plan: &JobPlan,
    workspace: &Path,
    pod: Option<&str>,
    labels: Vec<(&'static str, String)>,
    seccomp: Option<&Path>,
) -> (
    ContainerCreateOpts,
    serde_json::Map<String, serde_json::Value>,
) {
    let limits = &plan.limits;
    let mut extra = serde_json::Map::new();
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    extra.insert(
        "resource_limits".into(),
        serde_json::json!({
            "memory": {"limit": signed(limits.memory_bytes), "swap": signed(limits.memory_bytes)},
            "cpu": {"quota": signed(limits.cpu_millis.saturating_mul(CPU_PERIOD_US) / 1000), "period": CPU_PERIOD_US},
            "pids": {"limit": signed(limits.pids)},
        }),
    );
    extra.insert(
        "log_configuration".into(),
        serde_json::json!({"driver": "k8s-file", "size": signed(limits.log_bytes)}),
    );
    if let Some(profile) = seccomp {
        extra.insert(
            "seccomp_profile_path".into(),
            profile.display().to_string().into(),
        );
    }
    // A container in a pod shares the pod's user namespace (see `pod`); one on its own gets
    // its own.
    if pod.is_none() {
        extra.extend(auto_userns());
    }
    let (program, args) = plan
        .command
        .split_first()
        .expect("plan has a non-empty argv");
    let builder = ContainerCreateOpts::builder();
    let builder = match pod {
        Some(pod) => builder.pod(pod),
        // `restricted` and `none` both mean no network at all in Phase 1.
        None => builder.net_namespace(Namespace {
            nsmode: Some("none".into()),
            value: None,
        }),
    };
    let opts = builder
        .name(container_name(plan.job_id))
        .image(&plan.image)
        // Our argv replaces the image's entrypoint and command, so it runs exactly as given.
        .entrypoint([program])
        .command(args)
        .env(plan.env.iter())
        .labels(labels)
        .drop_capabilities(["ALL"])
        .no_new_privilages(true)
        .read_only_fs(true)
        .work_dir(WORKSPACE_DIR)
        .mounts([
            workspace_mount(workspace, limits.workspace_bytes),
            tmpfs_mount("/tmp", "1777", limits.tmp_bytes),
        ])
        .build();
    (opts, extra)
}

/// `/workspace`: with a size limit, a tmpfs of that size (the host's filesystems here have no
/// per-directory quota, see ARCHITECTURE.md); without one, the job's directory on the host.
fn workspace_mount(host_dir: &Path, size: Option<u64>) -> ContainerMount {
    match size {
        Some(bytes) => tmpfs_mount(WORKSPACE_DIR, "0755", bytes),
        None => ContainerMount {
            destination: Some(WORKSPACE_DIR.into()),
            source: Some(host_dir.display().to_string()),
            _type: Some("bind".into()),
            // `U`: Podman chowns the (fresh, empty) workspace to the user namespace's root
            // before the start, so the job can write it; on the host its files belong to that
            // unprivileged uid.
            options: Some(vec![
                "rbind".into(),
                "rw".into(),
                "nosuid".into(),
                "nodev".into(),
                "U".into(),
            ]),
            uid_mappings: None,
            gid_mappings: None,
        },
    }
}

/// A tmpfs of `bytes` at `destination`; its pages count against the sandbox's memory limit.
fn tmpfs_mount(destination: &str, mode: &str, bytes: u64) -> ContainerMount {
    ContainerMount {
        destination: Some(destination.into()),
        source: Some("tmpfs".into()),
        _type: Some("tmpfs".into()),
        options: Some(vec![
            "rw".into(),
            "nosuid".into(),
            "nodev".into(),
            format!("mode={mode}"),
            format!("size={bytes}"),
        ]),
        uid_mappings: None,
        gid_mappings: None,
    }
}

/// The CFS period of the CPU limit (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;
/// How long the output reader may take to reach the end of the log after the container ended.
const FOLLOW_GRACE: Duration = Duration::from_secs(10);

/// Creates `<job dir>/workspace` with the job directory private to the host's root (0700):
/// other host users cannot read what a job wrote. Podman hands the workspace itself to the
/// sandbox's mapped root (the `U` mount option) when it starts the container.
async fn prepare_job_dir(workspace: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(workspace).await?;
    if let Some(job_dir) = workspace.parent() {
        tokio::fs::set_permissions(job_dir, std::fs::Permissions::from_mode(0o700)).await?;
    }
    Ok(())
}

/// Starts the container; `Some(code)` when the runtime could not exec the argv.
async fn start(container: &Container) -> Result<Option<i32>, SandboxError> {
    match container.start(None).await {
        Ok(()) => Ok(None),
        Err(e) => exec_failure(&e).map(Some).ok_or(e.into()),
    }
}

/// Waits for the started container's end, its deadline, a stop, or shutdown.
async fn supervise(
    container: &Container,
    deadline: Instant,
    signals: &mut Signals,
) -> Result<Ending, SandboxError> {
    // Without conditions libpod waits for the container to stop. (podman-api 0.10 serialises
    // explicit conditions in a form Podman 4.3 rejects.) Podman polls the state at this
    // interval; its default of 250 ms would add up to that much to every job.
    let exited = wait_opts();
    // Signals first: when one comes together with the exit, `end_early` sees the exit and keeps
    // the run's own result, so the outcome does not depend on which future was polled first.
    tokio::select! {
        biased;
        () = raised(&mut signals.shutdown) => end_early(container, Ending::Interrupted).await,
        stop = stopped(&mut signals.stop) => end_early(container, match stop {
            Stop::Cancel => Ending::Canceled,
            Stop::Requeue => Ending::Interrupted,
        }).await,
        () = tokio::time::sleep_until(deadline) => end_early(container, Ending::TimedOut).await,
        waited = container.wait(&exited) => {
            waited?;
            Ok(Ending::Exited)
        }
    }
}

fn wait_opts() -> ContainerWaitOpts {
    ContainerWaitOpts::builder().interval("50ms").build()
}

/// Kills the container for `reason`, unless its process has already ended by itself: then it
/// ran to its end and its own result stands (a shutdown or stop that comes as a job exits must
/// not throw the finished run away).
async fn end_early(container: &Container, reason: Ending) -> Result<Ending, SandboxError> {
    if let Err(e) = container.kill().await {
        // Podman refuses to kill a container that is no longer running.
        let running = container
            .inspect()
            .await?
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        return if running {
            Err(e.into())
        } else {
            Ok(Ending::Exited)
        };
    }
    container.wait(&wait_opts()).await?;
    Ok(reason)
}

/// Resolves once `flag` is true. A sender that is gone counts as raised: the shutdown sender
/// goes only at exit.
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// Resolves with the stop once one is asked for. The stop sender lives as long as its run; one
/// that is gone counts as a cancel.
async fn stopped(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(asked) => asked.unwrap_or(Stop::Cancel),
        Err(_) => Stop::Cancel,
    }
}

/// Podman reports an exec failure of the OCI runtime as an error of the start call; a shell
/// would have said 127 (not found) or 126 (not executable).
fn exec_failure(error: &podman_api::Error) -> Option<i32> {
    let podman_api::Error::Fault { message, .. } = error else {
        return None;
    };
    // Podman's own causes: `define.ErrOCIRuntimeNotFound` and `ErrOCIRuntimePermissionDenied`.
    if message.contains("OCI runtime attempted to invoke a command that was not found") {
        Some(EXIT_NOT_FOUND)
    } else if message.contains("OCI permission denied") {
        Some(EXIT_NOT_EXECUTABLE)
    } else {
        None
    }
}

/// What a job whose argv could not be executed reports, as a shell would have.
fn exec_failed(plan: &JobPlan, code: i32) -> Collected {
    let reason = if code == EXIT_NOT_FOUND {
        "command not found"
    } else {
        "permission denied"
    };
    let mut stderr = CappedStream::new(plan.max_output_bytes);
    stderr.push(format!("{}: {reason}\n", plan.command[0]).as_bytes());
    let (stderr, cut) = stderr.finish();
    Collected {
        status: RunStatus::Completed,
        exit_code: code,
        stdout: String::new(),
        stderr,
        truncated: Truncated {
            stdout: false,
            stderr: cut,
        },
        oom_killed: false,
    }
}

/// Reads the exit code and the capped output of an ended container; `None` for a run the
/// shutdown interrupted, which keeps nothing.
async fn collect(
    container: &Container,
    ending: Result<Ending, SandboxError>,
    cap: usize,
    output: Option<Output>,
) -> Result<Option<Collected>, SandboxError> {
    let ending = ending?;
    if let Ending::Interrupted = ending {
        return Ok(None);
    }
    let (stdout, stderr) = match output {
        Some(output) => output,
        None => read_output(container, cap, None).await?,
    };
    let state = container.inspect().await?.state;
    let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
    let (status, exit_code) = match ending {
        Ending::TimedOut => (RunStatus::Timeout, -1),
        Ending::Canceled => (RunStatus::Canceled, -1),
        Ending::Exited | Ending::Interrupted => {
            let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
            (RunStatus::Completed, code)
        }
    };
    let (stdout, stdout_cut) = stdout.finish();
    let (stderr, stderr_cut) = stderr.finish();
    Ok(Some(Collected {
        status,
        exit_code,
        stdout,
        stderr,
        truncated: Truncated {
            stdout: stdout_cut,
            stderr: stderr_cut,
        },
        oom_killed,
    }))
}

/// What the output reader of a run got once its container ended; `None` (and a warning) when
/// it failed or did not reach the end in time: the caller then reads the log file instead.
async fn followed(mut reader: JoinHandle<OutputRead>, job_id: Uuid) -> Option<Output> {
    let why = match tokio::time::timeout(FOLLOW_GRACE, &mut reader).await {
        Ok(Ok(Ok(output))) => return Some(output),
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => {
            reader.abort();
            format!("no end within {}s of the exit", FOLLOW_GRACE.as_secs())
        }
    };
    tracing::warn!(%job_id, %why, "following the output failed; reading the log file instead");
    None
}

/// stdout and stderr, each capped.
type Output = (CappedStream, CappedStream);
type OutputRead = Result<Output, podman_api::Error>;

/// The container's output, each stream capped; with `live`, followed as it is written until the
/// container ends, each chunk also going to `live`. Stops early once both streams are full.
async fn read_output(container: &Container, cap: usize, live: Option<&LiveOutput>) -> OutputRead {
    use cynode_contracts::logs::OutputStream;
    let mut stdout = CappedStream::new(cap);
    let mut stderr = CappedStream::new(cap);
    let mut logs = container.logs(
        &ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .follow(live.is_some())
            .build(),
    );
    while let Some(chunk) = logs.next().await {
        match chunk? {
            TtyChunk::StdOut(bytes) => {
                stdout.push(&bytes);
                if let Some(live) = live {
                    live.push(OutputStream::Stdout, &bytes);
                }
            }
            TtyChunk::StdErr(bytes) => {
                stderr.push(&bytes);
                if let Some(live) = live {
                    live.push(OutputStream::Stderr, &bytes);
                }
            }
            TtyChunk::StdIn(_) => {}
        }
        if stdout.is_full() && stderr.is_full() {
            break;
        }
    }
    Ok((stdout, stderr))
}
