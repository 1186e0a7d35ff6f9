//! `systemd/cynode-node-manager.service` keeps its readiness, fail-fast and hardening settings.
//! (The unit is rendered from `systemd/units.nix`; `e2e/tests/systemd_units.rs` proves the file
//! equals that source and runs `systemd-analyze verify` and `security` on every unit.)

use std::path::Path;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../systemd/cynode-node-manager.service"
);

fn unit_text() -> String {
    std::fs::read_to_string(UNIT).expect("the unit file exists")
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

/// A node that exits because the orchestrator issued a new configuration must be restarted.
#[test]
fn the_config_changed_exit_code_is_restarted() {
    let text = unit_text();
    let prevented: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .flat_map(str::split_whitespace)
        .collect();
    // 78: a bad node.yaml; 243: systemd could not load the PSK credential. Neither heals itself.
    assert_eq!(prevented, ["78", "243"]);
    assert!(
        !prevented.contains(
            &cynode_node_manager::EXIT_CONFIG_CHANGED
                .to_string()
                .as_str()
        ),
        "{prevented:?}"
    );
}
