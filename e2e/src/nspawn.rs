//! Real systemd without a VM: Debian 12 booted by `systemd-nspawn` from the rootfs
//! `scripts/bootstrap.sh` caches (read-only base, a throwaway overlay on top), inside a network
//! namespace the test created. Commands run in it through `nsenter` into its PID 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::ChildGuard;

/// The cached rootfs: `CYNODE_TEST_NSPAWN_ROOTFS`, else `rootfs-bookworm` beside devenv.env.
pub fn rootfs() -> PathBuf {
    let from_file = std::fs::read_to_string(crate::devenv_file())
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("CYNODE_TEST_NSPAWN_ROOTFS="))
                .map(|v| PathBuf::from(v.trim()))
        });
    let path = std::env::var_os("CYNODE_TEST_NSPAWN_ROOTFS")
        .map(PathBuf::from)
        .or(from_file)
        .unwrap_or_else(|| crate::devenv_file().with_file_name("rootfs-bookworm"));
    assert!(
        path.join("lib/systemd/systemd").exists(),
        "no Debian rootfs with systemd at {}: run `scripts/bootstrap.sh` (it runs debootstrap once)",
        path.display()
    );
    path
}

/// A booted container; powered off (then killed) when dropped.
#[derive(Debug)]
pub struct Container {
    nspawn: ChildGuard,
    leader: u32,
    pub console: PathBuf,
}

impl Container {
    /// Boots `rootfs` in network namespace `netns` with `binds` (`host:container`, read-write)
    /// and `ro_binds` (read-only), and waits until systemd reports the system running.
    pub async fn boot(
        rootfs: &Path,
        netns: &str,
        binds: &[(PathBuf, &str)],
        ro_binds: &[(PathBuf, &str)],
        console: PathBuf,
    ) -> Self {
        let log = std::fs::File::create(&console).unwrap();
        let mut cmd = tokio::process::Command::new("systemd-nspawn");
        cmd.arg("-q")
            .arg("-D")
            .arg(rootfs)
            .args(["--volatile=overlay", "--register=no", "--keep-unit"])
            .arg(format!("--network-namespace-path=/run/netns/{netns}"))
            .arg(format!("--machine=cynode-{}", std::process::id()));
        for (host, inside) in binds {
            cmd.arg(format!("--bind={}:{inside}", host.display()));
        }
        for (host, inside) in ro_binds {
            cmd.arg(format!("--bind-ro={}:{inside}", host.display()));
        }
        cmd.arg("-b")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let nspawn = ChildGuard::spawn(&mut cmd);
        let pid = nspawn.0.id().expect("systemd-nspawn running");
        // nspawn's child becomes the container's PID 1 (systemd).
        let mut leader = None;
        for _ in 0..200 {
            leader = children(pid).into_iter().find(|c| {
                std::fs::read_to_string(format!("/proc/{c}/comm"))
                    .is_ok_and(|comm| comm.trim() == "systemd")
            });
            if leader.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let leader = leader.unwrap_or_else(|| {
            panic!(
                "systemd-nspawn did not boot systemd:\n{}",
                std::fs::read_to_string(&console).unwrap_or_default()
            )
        });
        let container = Self {
            nspawn,
            leader,
            console,
        };
        // Until systemd listens on its private socket, systemctl says it is not running at all.
        let mut state = (String::new(), String::new());
        for _ in 0..300 {
            let (_, out, err) = container.exec(&["systemctl", "is-system-running", "--wait"]);
            state = (out.trim().to_owned(), err);
            if matches!(state.0.as_str(), "running" | "degraded") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            matches!(state.0.as_str(), "running" | "degraded"),
            "the container did not finish booting ({state:?}): {}",
            container.exec(&["systemctl", "--failed", "--no-pager"]).1
        );
        container
    }

    /// Runs a command inside the container; returns (exit code, stdout, stderr).
    pub fn exec(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SYSTEMD_COLORS", "0")
            .output()
            .expect("nsenter (Debian package util-linux)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `systemctl show -p NAME --value UNIT`.
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.exec(&["systemctl", "show", "-p", name, "--value", unit])
            .1
            .trim()
            .to_owned()
    }

    /// The unit's journal (this boot), without the pager.
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "-b", "-u", unit, "--no-pager", "-o", "cat"])
            .1
    }

    /// Powers the container off and waits for nspawn to exit.
    pub async fn poweroff(mut self) {
        let _ = self.exec(&["systemctl", "poweroff"]);
        if self
            .nspawn
            .wait_exit(Duration::from_secs(60))
            .await
            .is_none()
        {
            let _ = self.nspawn.0.start_kill();
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}
