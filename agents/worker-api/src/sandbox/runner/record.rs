//! What telemetry records of a sandbox container: which one it is, how its run ended and what
//! it printed, and its removal once Podman has removed it.

use cynode_contracts::telemetry::{ContainerAction, ContainerKind};
use podman_api::opts::ContainerDeleteOpts;
use serde_json::Map;
use uuid::Uuid;

use super::result::Collected;
use super::sandboxes::{SandboxError, Sandboxes};
use crate::sandbox::removal::remove_patiently;
use crate::sandbox::spec::container_name;
use crate::telemetry::ContainerRef;

impl Sandboxes {
    /// Removes a recorded container and, once it is gone, records its removal.
    pub(super) async fn remove_recorded(&self, job_id: Uuid, recorded: &ContainerRef) {
        if self.remove_container(job_id, &recorded.id).await {
            self.telemetry
                .container(recorded, ContainerAction::Remove, None, Map::new())
                .await;
        }
    }

    /// Removes a container; false (and an error in the log) if Podman would not.
    pub(super) async fn remove_container(&self, job_id: Uuid, id: &str) -> bool {
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
    pub(super) async fn record_end(
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
pub(super) fn sandbox_ref(
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
