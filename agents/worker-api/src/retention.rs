//! Removes finished jobs' directories (`<mount_root>/<job_id>/`: the workspace and
//! `result.json`) once they are older than the retention, so the mount root does not grow
//! forever.
//!
//! A job's age is the time since its result was written, or, for a job that never finished (the
//! worker stopped mid-run), since its directory last changed. A job a delivery is handling right
//! now is never touched: the sweep takes the job's turn in the [`JobLedger`] first, so a repeated
//! delivery either finds the whole result or waits until the directory is gone. The retention
//! must outlast the orchestrator's dispatch lease, or a repeated delivery after a lease expiry
//! would find no result and run the job again.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use uuid::Uuid;

use crate::ledger::JobLedger;

/// How often to sweep: a tenth of the retention, and at least once a minute.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Empties a job's workspace (by job id and workspace path) when this process may not: its
/// files belong to the job's user namespace (see `Sandboxes::empty_workspace`). Called from
/// the sweep's blocking thread.
pub type EmptyWorkspace = Arc<EmptyFn>;
pub type EmptyFn = dyn Fn(Uuid, &Path) -> Result<(), String> + Send + Sync;

/// Sweeps at start-up and then every [`sweep_interval`] until `shutdown` turns true.
pub async fn run(
    ledger: JobLedger,
    retention: Duration,
    empty: EmptyWorkspace,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(sweep_interval(retention));
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let (ledger, empty) = (ledger.clone(), Arc::clone(&empty));
                match tokio::task::spawn_blocking(move || sweep(&ledger, retention, &*empty)).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "removed expired job directories"),
                    Err(e) => tracing::error!(error = %e, "the retention sweep panicked"),
                }
            }
            () = async { drop(shutdown.wait_for(|stop| *stop).await) } => return,
        }
    }
}

/// One pass over the mount root; returns how many job directories it removed.
pub fn sweep(ledger: &JobLedger, retention: Duration, empty: &EmptyFn) -> usize {
    let root = ledger.mount_root();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, root = %root.display(), "cannot list the mount root");
            return 0;
        }
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        // Only job directories: nothing else in the mount root is ours to delete.
        let Some(job_id) = entry
            .file_name()
            .to_str()
            .and_then(|name| Uuid::parse_str(name).ok())
        else {
            continue;
        };
        let dir = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Some(turn) = ledger.try_turn(job_id) else {
            continue;
        };
        let finished = std::fs::metadata(ledger.result_path(job_id))
            .or_else(|_| std::fs::metadata(&dir))
            .and_then(|m| m.modified());
        let expired =
            finished.is_ok_and(|at| now.duration_since(at).unwrap_or_default() > retention);
        if expired {
            match remove(&dir, job_id, empty) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot remove an expired job directory");
                }
            }
        }
        drop(turn);
    }
    removed
}

/// `remove_dir_all`; if a job left a directory without owner permissions (this process has
/// no CAP_DAC_OVERRIDE), gives them back and tries again; if the workspace's files belong to the
/// job's user namespace, has them removed by `empty` first.
pub(crate) fn remove(dir: &Path, job_id: Uuid, empty: &EmptyFn) -> std::io::Result<()> {
    if std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    restore_owner_access(dir);
    if std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    let workspace = dir.join("workspace");
    if let Err(e) = empty(job_id, &workspace) {
        tracing::warn!(%job_id, error = %e, "cannot empty an expired job's workspace");
    }
    std::fs::remove_dir_all(dir)
}

fn restore_owner_access(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            restore_owner_access(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_tenth_of_the_retention_but_at_most_a_minute() {
        assert_eq!(
            sweep_interval(Duration::from_secs(86400)),
            Duration::from_secs(60)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
    }

    #[tokio::test]
    async fn only_expired_jobs_nobody_holds_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let ledger = JobLedger::new(root.path().to_owned());
        let job = |id: Uuid| {
            let dir = root.path().join(id.to_string());
            std::fs::create_dir_all(dir.join("workspace/locked")).unwrap();
            std::fs::write(dir.join("result.json"), "{}").unwrap();
            // A job may leave a directory its owner cannot enter.
            std::fs::set_permissions(
                dir.join("workspace/locked"),
                std::fs::Permissions::from_mode(0o000),
            )
            .unwrap();
            dir
        };
        let (done, running) = (Uuid::new_v4(), Uuid::new_v4());
        let (done_dir, running_dir) = (job(done), job(running));
        let other = root.path().join("not-a-job");
        std::fs::create_dir(&other).unwrap();

        assert_eq!(
            sweep(&ledger, Duration::from_secs(3600), &|_, _| Ok(())),
            0,
            "nothing is old yet"
        );
        let held = ledger.turn(running).await;
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sweep(&ledger, Duration::from_millis(10), &|_, _| Ok(())), 1);
        assert!(!done_dir.exists());
        assert!(running_dir.exists(), "a held job is kept");
        assert!(other.exists(), "only job directories are swept");
        drop(held);
        assert_eq!(sweep(&ledger, Duration::from_millis(10), &|_, _| Ok(())), 1);
        assert!(!running_dir.exists());
    }
}
