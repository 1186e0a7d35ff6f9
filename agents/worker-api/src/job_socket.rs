//! One Unix socket per job and purpose (inference, MCP): `<mount_root>/<job_id>/<purpose>/<name>`,
//! in a directory (inside the 0700 job directory) that is mounted into that job's sidecar and
//! nowhere else. Whatever comes in through it is that job's, by construction: the job's identity
//! is the socket, never a header. The socket and its directory go when the job ends (also when
//! this value is dropped on an error path).

use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::Router;
use tokio::net::UnixListener;

/// The socket directory: root's, `wx` for others, sticky (see [`JobSocket::open`]).
const DIR_MODE: u32 = 0o1733;
/// Connecting needs write permission on the socket; its directory is the access control.
const SOCKET_MODE: u32 = 0o666;

#[derive(Debug)]
pub struct JobSocket {
    dir: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl JobSocket {
    /// Binds `<dir>/<name>` in a fresh `dir` and serves `app` on it until dropped.
    pub fn open(dir: PathBuf, name: &str, app: Router) -> std::io::Result<Self> {
        // Left over by a run that crashed: nothing in it is worth keeping.
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        // The sidecar runs as its pod's mapped root, an unprivileged host uid that is "other"
        // here, and this worker has no capabilities to chown for it: others may enter the
        // directory and create files (the ready file) but not list it, and the sticky bit
        // keeps the worker, its owner, able to remove all of it. The job directory above is
        // 0700 and root's, so no host user reaches this one; only the sidecar has it mounted.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        // A socket address holds at most 107 bytes of path, and a deep mount root plus a job id
        // can be longer; binding through the directory's descriptor keeps the address short.
        let handle = std::fs::File::open(&dir)?;
        let listener = UnixListener::bind(format!("/proc/self/fd/{}/{name}", handle.as_raw_fd()))?;
        drop(handle);
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(SOCKET_MODE))?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "a job's socket stopped serving");
            }
        });
        Ok(Self { dir, server })
    }

    /// The directory to mount into the sidecar.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for JobSocket {
    fn drop(&mut self) {
        self.server.abort();
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a job's socket directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_in_a_directory_too_deep_for_a_socket_address_still_binds() {
        let root = tempfile::tempdir().unwrap();
        let job_dir = root
            .path()
            .join("d".repeat(60))
            .join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&job_dir).unwrap();
        let dir = job_dir.join("inference");
        assert!(dir.join("inference.sock").as_os_str().len() > 108);
        let socket = JobSocket::open(dir.clone(), "inference.sock", Router::new()).unwrap();
        let meta = std::fs::metadata(dir.join("inference.sock")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
        assert_eq!(meta.permissions().mode() & 0o777, SOCKET_MODE);
        let dir_meta = std::fs::metadata(socket.dir()).unwrap();
        assert_eq!(dir_meta.permissions().mode() & 0o7777, DIR_MODE);
        drop(socket);
        assert!(!dir.exists(), "the socket directory goes with the job");
    }
}
