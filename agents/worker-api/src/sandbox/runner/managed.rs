//! The Project Manager's long-lived sandboxes (`crate::managed`) on the Podman side: made by
//! the jobs' container spec, removed with their directory, found again at start-up.

use cynode_contracts::telemetry::ContainerAction;
use podman_api::opts::{ContainerListFilter, ContainerListOpts};
use serde_json::Map;
use uuid::Uuid;

use super::leftover::owner;
use super::record::sandbox_ref;
use super::sandboxes::{SandboxError, Sandboxes};
use crate::retention::EmptyWorkspace;
use crate::sandbox::labels::{LABEL_MOUNT_ROOT, LABEL_ROLE, ROLE_MANAGED};
use crate::sandbox::plan::JobPlan;
use crate::telemetry::ContainerRef;

impl Sandboxes {
    /// Creates and starts a managed sandbox (`crate::managed`): the container a job with
    /// `plan` would get (same hardening, limits, labels and `/workspace`), running the plan's
    /// idle command, without a deadline, marked [`ROLE_MANAGED`] so that the jobs' start-up
    /// sweep leaves it to the managed sandboxes' own. Returns the container id.
    pub async fn start_managed(&self, plan: &JobPlan) -> Result<String, SandboxError> {
        let workspace = self.ready_to_create(plan).await?;
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
        empty: &EmptyWorkspace,
    ) {
        // The idle command is the namespace's init, which ignores the SIGTERM of a removal:
        // killed first, it does not hold the removal for Podman's stop timeout. An error
        // means it no longer runs.
        let _ = self.podman.containers().get(container).kill().await;
        let recorded = sandbox_ref(container, task_id, sandbox_id, "", &[]);
        self.remove_recorded(sandbox_id, &recorded).await;
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
}
