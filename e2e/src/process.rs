//! Running the project's real binaries from tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Path of a workspace binary in the same target directory as the running test
/// (`target/<profile>/deps/test-xxxx` → `target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (the test recipes do)",
        path.display()
    );
    path
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> Self {
        command.kill_on_drop(true).stdin(Stdio::null());
        Self(command.spawn().expect("spawn child process"))
    }

    /// Sends SIGTERM and waits up to `grace` for the exit status.
    pub async fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(grace, self.0.wait()).await.ok()?.ok()
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.0.wait()).await.ok()?.ok()
    }
}

/// Polls `url` until it answers with `expected` status or `limit` passes.
pub async fn wait_http(url: &str, expected: u16, limit: Duration) -> bool {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Ok(resp) = client.get(url).send().await
            && resp.status().as_u16() == expected
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
