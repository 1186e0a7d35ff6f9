//! A real terminal for tests of interactive programs: a private tmux server (its own socket)
//! with one 160x40 UTF-8 session running a shell line; killed on drop.

use std::process::Command;
use std::time::Duration;

/// How long [`Tmux::wait_for`] waits for the screen to show what it expects.
const SCREEN_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (a shell line) in a detached session.
    pub fn start(command: &str) -> Self {
        let tmux = Self {
            socket: format!("cynode-test-{}", uuid::Uuid::new_v4().simple()),
        };
        let status = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "40",
                command,
            ])
            .status()
            .expect("tmux is installed (scripts/bootstrap.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-u", "-L", &self.socket]).env_remove("TMUX");
        cmd
    }

    fn send_keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success(), "tmux send-keys {keys:?} failed");
    }

    /// Types `text` as it is (no key names).
    pub fn send_literal(&self, text: &str) {
        self.send_keys(&["-l", text]);
    }

    pub fn send_enter(&self) {
        self.send_keys(&["Enter"]);
    }

    /// Types `text`, then Enter.
    pub fn type_line(&self, text: &str) {
        self.send_literal(text);
        self.send_enter();
    }

    /// Everything the pane showed, scrolled-off lines included.
    pub fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-S", "-", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `pred` holds; panics with the screen after two minutes.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + SCREEN_LIMIT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saw {what}; screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
