//! A stand-in for systemd's notification socket: the process under test gets `NOTIFY_SOCKET`
//! pointing here, and the test reads what it announced (`READY=1`, `STATUS=...`) in order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixDatagram;

#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
    received: Vec<String>,
}

impl NotifySocket {
    pub fn bind() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self {
            socket,
            path,
            _dir: dir,
            received: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every `KEY=VALUE` line received so far, in order.
    pub fn received(&self) -> &[String] {
        &self.received
    }

    /// Waits up to `limit` for a line equal to `line`; returns whether it came.
    pub async fn wait_for(&mut self, line: &str, limit: Duration) -> bool {
        if self.received.iter().any(|l| l == line) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut hit = false;
                    for l in text.lines() {
                        hit |= l == line;
                        self.received.push(l.to_owned());
                    }
                    if hit {
                        return true;
                    }
                }
                Ok(Err(e)) => panic!("notify socket: {e}"),
                Err(_) => return false,
            }
        }
    }

    /// Collects whatever arrives within `limit`.
    pub async fn drain(&mut self, limit: Duration) {
        let _ = self.wait_for("\u{0}never", limit).await;
    }
}
