//! Every unit file in `systemd/` passes `systemd-analyze verify` and scores as well hardened
//! (offline `systemd-analyze security` exposure at most 3.0 of 10). verify insists that the
//! ExecStart binary exists, so each check runs on a copy pointing at the binary cargo built.

use std::path::PathBuf;
use std::process::Command;

use cynode_e2e::process::binary;

fn units() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    units
}

#[test]
fn every_unit_verifies_and_is_hardened() {
    let units = units();
    assert_eq!(units.len(), 4, "{units:?}");
    let dir = tempfile::tempdir().unwrap();
    for unit in units {
        let name = unit.file_name().unwrap().to_owned();
        let mut text = std::fs::read_to_string(&unit).unwrap();
        for bin in [
            "cynode-orchestrator",
            "cynode-node-manager",
            "cynode-worker-api",
        ] {
            text = text.replace(&format!("/usr/bin/{bin}"), binary(bin).to_str().unwrap());
        }
        let copy = dir.path().join(&name);
        std::fs::write(&copy, text).unwrap();

        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success(), "{name:?}: {stderr}");
        assert!(
            !stderr.contains(name.to_str().unwrap()),
            "verify warned about {name:?}: {stderr}"
        );

        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=30"])
            .arg(&copy)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&security.stdout);
        assert!(
            security.status.success(),
            "{name:?} exposure above 3.0: {}",
            report.lines().last().unwrap_or_default()
        );
    }
}
