//! What a worker on this mount root left on the Podman socket when it crashed or was killed,
//! found by its labels: a run to take over and see to its end, or to remove.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use podman_api::models::ListContainer;
use podman_api::opts::{ContainerListFilter, ContainerListOpts, PodListFilter, PodListOpts};
use tokio::time::Instant;
use uuid::Uuid;

use super::record::sandbox_ref;
use super::result::{Ending, collect, response};
use super::sandboxes::{RunEnd, SandboxError, Sandboxes, Signals};
use super::supervise::run_to_end;
use crate::sandbox::labels::{
    LABEL_DEADLINE, LABEL_JOB_ID, LABEL_MOUNT_ROOT, LABEL_ROLE, LABEL_TASK_ID, ROLE_MANAGED,
    ROLE_SIDECAR,
};
use crate::sandbox::live::LiveOutput;
use crate::sandbox::pod;

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
                let deadline = Instant::now() + left;
                let cap = max_output_bytes;
                run_to_end(
                    &self.podman,
                    &sandbox.id,
                    deadline,
                    cap,
                    signals,
                    live,
                    job_id,
                )
                .await
            }
        };
        let collected = collect(&container, ending, max_output_bytes, output).await;
        let ended_at = sandbox.exited_at.unwrap_or_else(Utc::now);
        let recorded = sandbox_ref(&sandbox.id, task_id, job_id, "", &[]);
        self.record_end(&recorded, &collected).await;
        self.remove_recorded(job_id, &recorded).await;
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
        if let Some(sandbox) = &leftover.sandbox {
            let recorded = sandbox_ref(&sandbox.id, leftover.task_id, leftover.job_id, "", &[]);
            self.remove_recorded(leftover.job_id, &recorded).await;
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
}

/// The job and task a container or pod is labelled with.
pub(super) fn owner(labels: Option<&HashMap<String, String>>) -> Option<(Uuid, Uuid)> {
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
