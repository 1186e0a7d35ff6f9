//! Running one job in a Podman sandbox and always removing the container afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use cynode_contracts::worker::{RunJobResponse, RunStatus, Truncated};
use futures::StreamExt;
use podman_api::Podman;
use podman_api::api::Container;
use podman_api::conn::TtyChunk;
use podman_api::models::{ContainerMount, Namespace};
use podman_api::opts::{
    ContainerCreateOpts, ContainerDeleteOpts, ContainerLogsOpts, ContainerWaitOpts,
};
use tokio::sync::watch;

use super::create::{CreateError, create_body, create_container};
use super::output::CappedStream;
use super::pod::{self, InferenceSetup, PodError};
use super::{JobPlan, LABEL_JOB_ID, LABEL_TASK_ID, WORKSPACE_DIR};

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
    /// Set when the node serves inference to sandboxes.
    inference: Option<InferenceSetup>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("job {0} is already running on this node")]
    AlreadyRunning(uuid::Uuid),
    #[error("image `{0}` is allowed but not present on this node")]
    ImageMissing(String),
    #[error("the worker is shutting down; the job was stopped")]
    ShuttingDown,
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
}

/// How the container's process ended.
enum Ending {
    Exited,
    TimedOut,
    /// The runtime could not exec the argv: 127 or 126, as a shell would say.
    ExecFailed(i32),
}

impl Sandboxes {
    pub fn new(socket: &Path, mount_root: &Path) -> Self {
        Self {
            podman: Podman::unix(socket),
            socket: socket.to_owned(),
            mount_root: mount_root.to_owned(),
            inference: None,
        }
    }

    /// Lets inference jobs run: each in a pod with the sidecar (see `pod`).
    pub fn with_inference(mut self, setup: InferenceSetup) -> Self {
        self.inference = Some(setup);
        self
    }

    pub fn inference(&self) -> Option<&InferenceSetup> {
        self.inference.as_ref()
    }

    pub fn podman(&self) -> &Podman {
        &self.podman
    }

    pub fn mount_root(&self) -> &Path {
        &self.mount_root
    }

    /// `<mount_root>/<job_id>/workspace`, mounted at `/workspace`.
    pub fn workspace_dir(&self, job_id: uuid::Uuid) -> PathBuf {
        self.mount_root.join(job_id.to_string()).join("workspace")
    }

    /// Runs the job to its end, its timeout, or worker shutdown. The container is removed in
    /// every case; the workspace directory stays for the caller to collect.
    pub async fn run(
        &self,
        plan: JobPlan,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<RunJobResponse, SandboxError> {
        // Podman 4.3 answers a create with a missing image with a bare 500; ask first.
        if !self.podman.images().get(&plan.image).exists().await? {
            return Err(SandboxError::ImageMissing(plan.image));
        }
        let workspace = self.workspace_dir(plan.job_id);
        tokio::fs::create_dir_all(&workspace)
            .await
            .map_err(|source| SandboxError::Workspace {
                path: workspace.clone(),
                source,
            })?;
        let pod = if plan.use_inference {
            let setup = self.inference.as_ref().ok_or_else(|| {
                SandboxError::Pod(PodError::Unavailable(
                    "inference is disabled on this node".into(),
                ))
            })?;
            let job_dir = self.mount_root.join(plan.job_id.to_string());
            match pod::start(&self.podman, &self.socket, &plan, &job_dir, setup).await {
                Ok(pod) => Some(pod),
                Err(PodError::Unavailable(reason)) => {
                    tracing::error!(task_id = %plan.task_id, job_id = %plan.job_id, %reason, "inference job cannot run");
                    return Ok(refused(
                        &plan,
                        &format!("inference for sandboxes is unavailable on this node: {reason}"),
                    ));
                }
                Err(PodError::AlreadyRunning(job)) => {
                    return Err(SandboxError::AlreadyRunning(job));
                }
                Err(e) => return Err(SandboxError::Pod(e)),
            }
        } else {
            None
        };
        let pod_name = pod.as_ref().map(|p| p.name.as_str());
        let body =
            create_body(&container_spec(&plan, &workspace, pod_name)).map_err(SandboxError::Create);
        let created = match body {
            Ok(body) => create_container(&self.socket, body)
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
                }),
            Err(e) => Err(e),
        };
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
        tracing::info!(task_id = %plan.task_id, job_id = %plan.job_id, container = %id, inference = plan.use_inference, "sandbox created");

        let started_at = Utc::now();
        let ending = execute(&container, plan.timeout, &mut shutdown).await;
        let ended_at = Utc::now();
        let result = match ending {
            Ok(ending) => collect(&container, &plan, ending).await,
            Err(e) => Err(e),
        };
        if let Err(e) = container
            .delete(&ContainerDeleteOpts::builder().force(true).build())
            .await
        {
            tracing::error!(job_id = %plan.job_id, container = %id, error = %e, "cannot remove sandbox");
        }
        let run_diagnostics = match pod {
            Some(pod) => Some(serde_json::json!({ "inference": pod.remove(&self.podman).await })),
            None => None,
        };
        let (status, exit_code, stdout, stderr, truncated) = result?;
        tracing::info!(task_id = %plan.task_id, job_id = %plan.job_id, ?status, exit_code, "sandbox finished");
        Ok(RunJobResponse {
            version: cynode_contracts::PAYLOAD_VERSION,
            task_id: plan.task_id,
            job_id: plan.job_id,
            status,
            exit_code,
            stdout,
            stderr,
            started_at,
            ended_at,
            truncated,
            sba_result: None,
            artifacts: None,
            run_diagnostics,
        })
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
    }
}

/// The locked-down container for one job (ARCHITECTURE.md §4 "Sandboxes").
/// In a pod (inference jobs), the container shares the pod's loopback-only network namespace;
/// otherwise it has none at all.
fn container_spec(plan: &JobPlan, workspace: &Path, pod: Option<&str>) -> ContainerCreateOpts {
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
    builder
        .name(format!("cynodeai-job-{}", plan.job_id))
        .image(&plan.image)
        // Our argv replaces the image's entrypoint and command, so it runs exactly as given.
        .entrypoint([program])
        .command(args)
        .env(plan.env.iter())
        .labels([
            (LABEL_TASK_ID, plan.task_id.to_string()),
            (LABEL_JOB_ID, plan.job_id.to_string()),
        ])
        .drop_capabilities(["ALL"])
        .no_new_privilages(true)
        .read_only_fs(true)
        .work_dir(WORKSPACE_DIR)
        .mounts([
            ContainerMount {
                destination: Some(WORKSPACE_DIR.into()),
                source: Some(workspace.display().to_string()),
                _type: Some("bind".into()),
                options: Some(vec![
                    "rbind".into(),
                    "rw".into(),
                    "nosuid".into(),
                    "nodev".into(),
                ]),
                uid_mappings: None,
                gid_mappings: None,
            },
            ContainerMount {
                destination: Some("/tmp".into()),
                source: Some("tmpfs".into()),
                _type: Some("tmpfs".into()),
                options: Some(vec!["rw".into(), "nosuid".into(), "nodev".into()]),
                uid_mappings: None,
                gid_mappings: None,
            },
        ])
        .build()
}

/// Starts the container and waits for its end, the timeout, or shutdown.
async fn execute(
    container: &Container,
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Ending, SandboxError> {
    if let Err(e) = container.start(None).await {
        return match exec_failure(&e) {
            Some(code) => Ok(Ending::ExecFailed(code)),
            None => Err(e.into()),
        };
    }
    // Without conditions libpod waits for the container to stop. (podman-api 0.10 serialises
    // explicit conditions in a form Podman 4.3 rejects.) Podman polls the state at this
    // interval; its default of 250 ms would add up to that much to every job.
    let exited = ContainerWaitOpts::builder().interval("50ms").build();
    tokio::select! {
        waited = container.wait(&exited) => {
            waited?;
            Ok(Ending::Exited)
        }
        () = tokio::time::sleep(timeout) => {
            container.kill().await?;
            container.wait(&exited).await?;
            Ok(Ending::TimedOut)
        }
        () = stopping(shutdown) => {
            let _ = container.kill().await;
            Err(SandboxError::ShuttingDown)
        }
    }
}

async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens at exit: treat it as shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
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

type Collected = (RunStatus, i32, String, String, Truncated);

/// Reads the exit code and the capped output of a finished container.
async fn collect(
    container: &Container,
    plan: &JobPlan,
    ending: Ending,
) -> Result<Collected, SandboxError> {
    let cap = plan.max_output_bytes;
    if let Ending::ExecFailed(code) = ending {
        let reason = if code == EXIT_NOT_FOUND {
            "command not found"
        } else {
            "permission denied"
        };
        let mut stderr = CappedStream::new(cap);
        stderr.push(format!("{}: {reason}\n", plan.command[0]).as_bytes());
        let (stderr, cut) = stderr.finish();
        let truncated = Truncated {
            stdout: false,
            stderr: cut,
        };
        return Ok((RunStatus::Completed, code, String::new(), stderr, truncated));
    }
    let mut stdout = CappedStream::new(cap);
    let mut stderr = CappedStream::new(cap);
    {
        let mut logs = container.logs(
            &ContainerLogsOpts::builder()
                .stdout(true)
                .stderr(true)
                .build(),
        );
        while let Some(chunk) = logs.next().await {
            match chunk? {
                TtyChunk::StdOut(bytes) => stdout.push(&bytes),
                TtyChunk::StdErr(bytes) => stderr.push(&bytes),
                TtyChunk::StdIn(_) => {}
            }
            if stdout.is_full() && stderr.is_full() {
                break;
            }
        }
    }
    let (status, exit_code) = match ending {
        Ending::TimedOut => (RunStatus::Timeout, -1),
        _ => {
            let state = container.inspect().await?.state;
            let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
            (RunStatus::Completed, code)
        }
    };
    let (stdout, stdout_cut) = stdout.finish();
    let (stderr, stderr_cut) = stderr.finish();
    let truncated = Truncated {
        stdout: stdout_cut,
        stderr: stderr_cut,
    };
    Ok((status, exit_code, stdout, stderr, truncated))
}
