//! `systemd/units.nix` is the one source of every unit; the files in `systemd/` are its
//! rendering (evaluated with plain `nix-instantiate`, no nixpkgs). Every unit passes
//! `systemd-analyze verify` and scores exposure at most 2.0 in offline `systemd-analyze
//! security`; each check runs on a rendering whose ExecStart is the binary cargo built (verify
//! insists that it exists). `CYNODE_WRITE_UNITS=1` rewrites `systemd/*.service` from the source.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use cynode_e2e::process::binary;
use cynode_e2e::units::{self, nix_str};

fn files_on_disk() -> BTreeMap<String, String> {
    std::fs::read_dir(units::systemd_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn unit_files_are_the_rendering_of_units_nix() {
    let rendered = units::render_all("");
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        [
            "cynode-control-plane.service",
            "cynode-node-manager.service",
            "cynode-user-gateway.service",
            "cynode-worker-api.service"
        ]
    );
    if std::env::var_os("CYNODE_WRITE_UNITS").is_some() {
        for (name, text) in &rendered {
            std::fs::write(units::systemd_dir().join(name), text).unwrap();
        }
    }
    let on_disk = files_on_disk();
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "systemd/ holds exactly the units of units.nix"
    );
    for (name, text) in &rendered {
        assert_eq!(
            &on_disk[name], text,
            "systemd/{name} differs from systemd/units.nix: run `CYNODE_WRITE_UNITS=1 cargo test -p cynode-e2e --test systemd_units`"
        );
    }
}

fn exposure(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("→ Overall exposure level for "))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {report}"))
}

#[test]
fn every_unit_verifies_and_exposure_is_at_most_2() {
    let bindir = binary("cynode-orchestrator").parent().unwrap().to_owned();
    let rendered = units::render_all(&format!("bindir = {};", nix_str(bindir.to_string_lossy())));
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in rendered {
        let copy = dir.path().join(&name);
        std::fs::write(&copy, text).unwrap();

        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success(), "{name}: {stderr}");
        assert!(
            !stderr.contains(&name),
            "verify warned about {name}: {stderr}"
        );

        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(&copy)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&security.stdout);
        let level = exposure(&report);
        eprintln!("{name}: exposure {level}");
        assert!(level <= 2.0, "{name}: exposure {level} above 2.0\n{report}");
        assert!(security.status.success(), "{name}: {report}");
    }
}

/// What a syscall group expands to in this machine's systemd (`systemd-analyze syscall-filter`).
fn expand(item: &str) -> BTreeSet<String> {
    if !item.starts_with('@') {
        return BTreeSet::from([item.to_owned()]);
    }
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", item])
        .output()
        .unwrap();
    assert!(out.status.success(), "syscall-filter {item}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(expand)
        .collect()
}

/// The syscalls a unit's `SystemCallFilter=` lines allow: the first line is the allow list,
/// every `~` line takes groups away again (systemd applies them in order).
fn allowed(unit: &serde_json::Value) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for line in units::values(unit, "Service", "SystemCallFilter") {
        match line.strip_prefix('~') {
            Some(deny) => deny.split_whitespace().flat_map(expand).for_each(|s| {
                allowed.remove(&s);
            }),
            None => allowed.extend(line.split_whitespace().flat_map(expand)),
        }
    }
    allowed
}

/// The agents confine themselves with Landlock; systemd 252's `@system-service` does not list
/// its syscalls, so the filter must name them, and no deny group may take them away again.
#[test]
fn syscall_filters_allow_what_the_binaries_call() {
    let units = units::evaluate("");
    let needs: &[(&str, &[&str])] = &[
        (
            "cynode-node-manager",
            &[
                "landlock_create_ruleset",
                "landlock_add_rule",
                "landlock_restrict_self",
                "prctl",
                "clone3",
                "execve",
                "socket",
                "connect",
            ],
        ),
        (
            "cynode-worker-api",
            &[
                "landlock_create_ruleset",
                "landlock_add_rule",
                "landlock_restrict_self",
                "prctl",
                "bind",
                "listen",
                "accept4",
            ],
        ),
        (
            "cynode-control-plane",
            &["bind", "listen", "accept4", "connect"],
        ),
        ("cynode-user-gateway", &["bind", "listen", "accept4"]),
    ];
    for (name, syscalls) in needs {
        let allowed = allowed(&units[*name]);
        for s in *syscalls {
            assert!(allowed.contains(*s), "{name} does not allow {s}");
        }
        for s in ["mount", "reboot", "init_module", "ptrace", "swapon"] {
            assert!(!allowed.contains(s), "{name} allows {s}");
        }
    }
}

#[test]
fn gateway_orders_like_the_control_plane_and_never_gets_the_psk() {
    let units = units::evaluate("");
    let gateway = &units["cynode-user-gateway"];
    let after = units::values(gateway, "Unit", "After");
    for dep in [
        "network-online.target",
        "postgresql.service",
        "cynode-control-plane.service",
    ] {
        assert!(
            after.iter().any(|a| a == dep),
            "gateway After= lacks {dep}: {after:?}"
        );
    }
    let wants = units::values(gateway, "Unit", "Wants");
    assert!(
        wants.iter().any(|w| w == "network-online.target"),
        "{wants:?}"
    );
    let gateway_creds: Vec<String> = units::credentials(gateway)
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(
        !gateway_creds.iter().any(|c| c == "node-registration-psk"),
        "{gateway_creds:?}"
    );
    let cp_creds: Vec<String> = units::credentials(&units["cynode-control-plane"])
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(
        cp_creds.iter().any(|c| c == "node-registration-psk"),
        "{cp_creds:?}"
    );

    // NixOS passes postgresql.target (reached after the role and database exist) and requires it.
    let nixos =
        units::evaluate(r#"databaseUnits = [ "postgresql.target" ]; databaseRequired = true;"#);
    for name in ["cynode-control-plane", "cynode-user-gateway"] {
        let unit = &nixos[name];
        assert!(units::values(unit, "Unit", "After").contains(&"postgresql.target".to_owned()));
        assert_eq!(
            units::values(unit, "Unit", "Requires"),
            ["postgresql.target"]
        );
    }
}

/// A state directory outside /var/lib becomes writable through ReadWritePaths=.
#[test]
fn a_moved_state_dir_is_writable() {
    let units = units::evaluate(r#"nodeStateDir = "/srv/cynode/state";"#);
    let node = &units["cynode-node-manager"];
    assert_eq!(
        units::values(node, "Service", "ReadWritePaths"),
        ["/srv/cynode/state"]
    );
    assert!(units::values(node, "Service", "StateDirectory").is_empty());
    assert!(
        units::environment(node).contains(&("CYNODE_STATE_DIR".into(), "/srv/cynode/state".into()))
    );
    let default = units::evaluate("");
    assert_eq!(
        units::values(&default["cynode-node-manager"], "Service", "StateDirectory"),
        ["cynode/state"]
    );
}

/// A bad config (78) or a missing credential (243) must not restart in a loop; a new
/// configuration (75) must restart.
#[test]
fn restart_policy_spares_config_errors_and_restarts_reconfiguration() {
    let units = units::evaluate("");
    for (name, unit) in &units {
        let prevented: Vec<String> = units::values(unit, "Service", "RestartPreventExitStatus")
            .iter()
            .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        assert_eq!(prevented, ["78", "243"], "{name}");
        assert_eq!(
            units::values(unit, "Service", "Restart"),
            ["on-failure"],
            "{name}"
        );
        assert!(
            !units::values(unit, "Unit", "StartLimitBurst").is_empty(),
            "{name}"
        );
    }
}
