//! A job's run from its create to its removal: pod, container, start, supervision, result.

use chrono::Utc;
use cynode_contracts::telemetry::ContainerAction;
use cynode_contracts::worker::SandboxLimits;
use serde_json::Map;
use tokio::time::Instant;

use super::record::sandbox_ref;
use super::result::{collect, exec_failed, refused, response};
use super::sandboxes::{RunEnd, SandboxError, Sandboxes, Signals};
use super::supervise::{run_to_end, start};
use crate::sandbox::labels::LABEL_DEADLINE;
use crate::sandbox::live::LiveOutput;
use crate::sandbox::plan::JobPlan;
use crate::sandbox::pod::{self, PodError};

impl Sandboxes {
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
}
