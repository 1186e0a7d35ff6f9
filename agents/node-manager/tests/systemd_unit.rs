//! `systemd/cynode-node-manager.service` passes `systemd-analyze verify` and keeps its
//! readiness and hardening settings. verify insists that ExecStart's binary exists, so the check
//! runs on a copy pointing at the binary cargo just built; nothing else is changed.

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../systemd/cynode-node-manager.service"
);

fn unit_text() -> String {
    std::fs::read_to_string(UNIT).expect("the unit file exists")
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("cynode-node-manager.service");
    let text = unit_text().replace(
        "/usr/bin/cynode-node-manager",
        env!("CARGO_BIN_EXE_cynode-node-manager"),
    );
    std::fs::write(&copy, text).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze is installed (Debian package `systemd`)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed: {stderr}");
    assert!(
        !stderr.contains("cynode-node-manager.service:"),
        "verify warned about the unit: {stderr}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=30"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 3.0 (threshold 30 of 100):\n{}",
        text.lines().last().unwrap_or_default()
    );
}

#[test]
fn the_unit_is_type_notify_with_fail_fast_and_hardening() {
    let text = unit_text();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "KillMode=mixed",
        "LoadCredential=node-registration-psk:",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ] {
        assert!(text.contains(line), "missing {line:?}");
    }
    assert!(Path::new(UNIT).exists());
}
