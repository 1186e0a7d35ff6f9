//! `/readyz`: ready only when a job could run now.

use std::path::Path;

use crate::sandbox::Sandboxes;

/// `Ok` when Podman answers, the default image is present (nothing can be pulled on demand) and
/// the mount root takes a new file; otherwise the first reason it is not.
pub async fn check(sandboxes: &Sandboxes, default_image: &str) -> Result<(), String> {
    sandboxes
        .podman()
        .ping()
        .await
        .map_err(|e| format!("container runtime unreachable: {e}"))?;
    let present = sandboxes
        .podman()
        .images()
        .get(default_image)
        .exists()
        .await
        .map_err(|e| format!("cannot query image {default_image}: {e}"))?;
    if !present {
        return Err(format!("sandbox image {default_image} is not present"));
    }
    probe_writable(sandboxes.mount_root()).await
}

async fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".readyz-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&probe, b"")
        .await
        .map_err(|e| format!("mount root {} is not writable: {e}", dir.display()))?;
    let _ = tokio::fs::remove_file(&probe).await;
    Ok(())
}
