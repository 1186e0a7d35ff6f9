//! The job's directory on the host: private before a run, emptied after one by a container of
//! the job's user namespace.

use std::path::{Path, PathBuf};

use cynode_contracts::worker_cli::SANDBOX_USERNS_SIZE;
use podman_api::opts::ContainerDeleteOpts;
use serde_json::json;
use uuid::Uuid;

use super::sandboxes::{SandboxError, Sandboxes};
use super::supervise::wait_opts;
use crate::sandbox::create::create_container;
use crate::sandbox::labels::LABEL_MOUNT_ROOT;
use crate::sandbox::plan::JobPlan;

/// Creates `<job dir>/workspace` with the job directory private to the host's root (0700):
/// other host users cannot read what a job wrote. Podman hands the workspace itself to the
/// sandbox's mapped root (the `U` mount option) when it starts the container.
pub(super) async fn prepare_job_dir(workspace: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(workspace).await?;
    if let Some(job_dir) = workspace.parent() {
        tokio::fs::set_permissions(job_dir, std::fs::Permissions::from_mode(0o700)).await?;
    }
    Ok(())
}

impl Sandboxes {
    /// What every sandbox needs before its create: its image on this node and its job
    /// directory. Returns the workspace.
    pub(super) async fn ready_to_create(&self, plan: &JobPlan) -> Result<PathBuf, SandboxError> {
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
}
