//! Files in and out of a managed sandbox's `/workspace` through Podman's archive API. Podman
//! resolves the path inside the container's own root, so a symlink the sandbox made can point
//! only within the sandbox; the worker never opens the workspace on the host.

use std::io::Read;

use cynode_contracts::worker::MAX_SANDBOX_FILE_BYTES;
use futures::StreamExt;
use podman_api::api::Container;

use crate::sandbox::WORKSPACE_DIR;

/// Room for the tar headers around a file of the largest size.
const TAR_OVERHEAD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("path must be relative to /workspace, without `..` and NUL (got `{0}`)")]
    BadPath(String),
    #[error("path must name a file under /workspace, not /workspace itself")]
    NoFile,
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("{0} is larger than {MAX_SANDBOX_FILE_BYTES} bytes")]
    TooLarge(String),
    #[error("cannot write {path}: {message}")]
    Refused { path: String, message: String },
    #[error("Podman failed: {0}")]
    Podman(#[from] podman_api::Error),
    #[error("unreadable archive from Podman: {0}")]
    Archive(#[from] std::io::Error),
}

/// `rel` as an absolute path under `/workspace` (`/workspace` itself for an empty or `.`
/// path); refused if absolute, with a `..` component or a NUL byte.
pub fn workspace_path(rel: &str) -> Result<String, FileError> {
    if rel.starts_with('/') || rel.contains('\0') {
        return Err(FileError::BadPath(rel.escape_default().to_string()));
    }
    let mut path = WORKSPACE_DIR.to_owned();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(FileError::BadPath(rel.to_owned())),
            part => {
                path.push('/');
                path.push_str(part);
            }
        }
    }
    Ok(path)
}

/// The part of `path` under `/workspace`, for the tar entry; `NoFile` for `/workspace` itself.
fn relative(path: &str) -> Result<&str, FileError> {
    path.strip_prefix(WORKSPACE_DIR)
        .and_then(|p| p.strip_prefix('/'))
        .filter(|p| !p.is_empty())
        .ok_or(FileError::NoFile)
}

/// Writes `bytes` (at most [`MAX_SANDBOX_FILE_BYTES`]) to `path`, making parent directories.
pub async fn put(container: &Container, path: &str, bytes: &[u8]) -> Result<(), FileError> {
    let rel = relative(path)?;
    if bytes.len() > MAX_SANDBOX_FILE_BYTES {
        return Err(FileError::TooLarge(path.to_owned()));
    }
    let mut archive = tar::Builder::new(Vec::with_capacity(bytes.len() + TAR_OVERHEAD));
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    archive.append_data(&mut header, rel, bytes)?;
    let body = archive.into_inner()?;
    match container.copy_to(WORKSPACE_DIR, body.into()).await {
        Ok(()) => Ok(()),
        Err(podman_api::Error::Fault { code, message })
            if code.is_client_error() || code == 500 =>
        {
            Err(FileError::Refused {
                path: path.to_owned(),
                message,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The bytes of the regular file at `path`.
pub async fn get(container: &Container, path: &str) -> Result<Vec<u8>, FileError> {
    relative(path)?;
    let mut stream = std::pin::pin!(container.copy_from(path));
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(podman_api::Error::Fault { code, .. }) if code.as_u16() == 404 => {
                return Err(FileError::Missing(path.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        archive.extend_from_slice(&chunk);
        if archive.len() > MAX_SANDBOX_FILE_BYTES + TAR_OVERHEAD {
            return Err(FileError::TooLarge(path.to_owned()));
        }
    }
    let mut entries = tar::Archive::new(archive.as_slice());
    let mut entries = entries.entries()?;
    let Some(entry) = entries.next() else {
        return Err(FileError::Missing(path.to_owned()));
    };
    let mut entry = entry?;
    // A symlink comes as the link itself, not what it points at.
    if entry.header().entry_type() != tar::EntryType::Regular {
        return Err(FileError::NotAFile(path.to_owned()));
    }
    if entry.size() > MAX_SANDBOX_FILE_BYTES as u64 {
        return Err(FileError::TooLarge(path.to_owned()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or_default());
    entry.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_workspace() {
        assert_eq!(workspace_path("a/b.txt").unwrap(), "/workspace/a/b.txt");
        assert_eq!(workspace_path("./a//b").unwrap(), "/workspace/a/b");
        assert_eq!(workspace_path("").unwrap(), "/workspace");
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "a\0b"] {
            assert!(
                matches!(workspace_path(bad), Err(FileError::BadPath(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(relative("/workspace"), Err(FileError::NoFile)));
        assert_eq!(relative("/workspace/a/b").unwrap(), "a/b");
    }
}
