//! The NixOS VM test cannot run here (no Nix store, no VM), but every `cynork ...` command its
//! test script runs can: each one is parsed by the real cynork. A wrong flag (e.g. the old
//! `auth login --handle`) is a usage error (exit 2); a command that parsed goes on to the
//! gateway, which here is a closed loopback port (exit 7, network) or finds no session (3).

use std::process::{Command, Stdio};

use cynode_e2e::process::binary;

const SCRIPT: &str = include_str!("../../../vm-tests/happy-path.nix");

/// The shell command lines of `succeed("...")` / `fail("...")` calls that start with `cynork`.
fn cynork_commands() -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = SCRIPT;
    while let Some(i) = rest.find("\"cynork ") {
        let tail = &rest[i + 1..];
        let end = tail.find('"').expect("closing quote");
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_cynork_command_of_the_vm_test_parses() {
    let commands = cynork_commands();
    assert!(commands.len() >= 3, "{commands:?}");
    assert!(
        commands.iter().any(|c| c.contains("auth login")),
        "{commands:?}"
    );
    let home = tempfile::tempdir().unwrap();
    let password = home.path().join("password");
    std::fs::write(&password, "x\n").unwrap();
    // The gateway: a loopback port nothing listens on.
    let port = cynode_e2e::free_port();
    for line in commands {
        // Only cynork's own exit status counts, not a pipe into grep.
        let line = line.split(" | ").next().unwrap();
        let line = line.replace("${adminPassword}", password.to_str().unwrap());
        let script = format!(
            "{} {}",
            binary("cynork").display(),
            line.strip_prefix("cynork ").unwrap().replace(
                "http://localhost:12080",
                &format!("http://127.0.0.1:{port}")
            )
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path())
            .env("CYNORK_GATEWAY_URL", format!("http://127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            matches!(code, Some(3 | 7)),
            "{line:?} exited {code:?} (2 = usage error): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
