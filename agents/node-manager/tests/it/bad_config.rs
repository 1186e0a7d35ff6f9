//! Bad input: a missing or malformed node.yaml yields one clear error naming the key and a
//! non-zero exit (78, `EX_CONFIG`), and the orchestrator is never contacted.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const EX_CONFIG: i32 = 78;

/// Runs the real binary with an orchestrator URL pointing at a listener we own, and returns
/// its output plus whether anything connected to that listener.
fn run(config: &Path, yaml: Option<&str>, env: &[(&str, &str)]) -> (Output, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    if let Some(yaml) = yaml {
        std::fs::write(config, yaml.replace("ORCH", &url)).unwrap();
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_cynode-node-manager"));
    command
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "info");
    for (k, v) in env {
        command.env(k, v.replace("ORCH", &url));
    }
    let output = command.output().unwrap();
    let contacted = listener.accept().is_ok();
    (output, contacted)
}

fn error_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_owned)
        .collect()
}

fn assert_config_error(output: &Output, contacted: bool, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(EX_CONFIG), "{output:?}");
    assert!(!contacted, "the orchestrator was contacted");
    let errors = error_lines(output);
    assert_eq!(errors.len(), 1, "exactly one error: {errors:?}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "{needle:?} missing in {:?}",
            errors[0]
        );
    }
}

#[test]
fn a_missing_file_names_the_path_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let (output, contacted) = run(&path, None, &[]);
    assert_config_error(
        &output,
        contacted,
        &[path.to_str().unwrap(), "--config", "No such file"],
    );
}

#[test]
fn a_missing_key_is_named_with_its_env_override() {
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, "secret-psk").unwrap();
    let yaml = format!(
        "orchestrator:\n  url: ORCH\n  registration_psk_file: {}\nworker_api:\n  public_base_url: http://127.0.0.1:1\n",
        psk.display()
    );
    let (output, contacted) = run(&dir.path().join("node.yaml"), Some(&yaml), &[]);
    assert_config_error(&output, contacted, &["`node.id`", "NODE_SLUG"]);
}

#[test]
fn a_value_of_the_wrong_type_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "orchestrator:\n  url: ORCH\nnode:\n  id: n1\n  labels: 7\n";
    let (output, contacted) = run(&dir.path().join("node.yaml"), Some(yaml), &[]);
    assert_config_error(&output, contacted, &["node.labels", "invalid type"]);
}

#[test]
fn an_inline_psk_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "orchestrator:\n  url: ORCH\n  registration_psk: hunter2-inline\n";
    let (output, contacted) = run(&dir.path().join("node.yaml"), Some(yaml), &[]);
    assert_config_error(&output, contacted, &["registration_psk"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2-inline"));
}

#[test]
fn a_missing_psk_names_every_way_to_provide_it() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "orchestrator:\n  url: ORCH\nnode:\n  id: n1\nworker_api:\n  public_base_url: http://127.0.0.1:1\n";
    let (output, contacted) = run(&dir.path().join("node.yaml"), Some(yaml), &[]);
    assert_config_error(
        &output,
        contacted,
        &[
            "NODE_REGISTRATION_PSK",
            "NODE_REGISTRATION_PSK_FILE",
            "node-registration-psk",
        ],
    );
}

#[test]
fn a_bad_env_override_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "orchestrator:\n  url: ORCH\nnode:\n  id: n1\nworker_api:\n  public_base_url: http://127.0.0.1:1\n";
    let (output, contacted) = run(
        &dir.path().join("node.yaml"),
        Some(yaml),
        &[
            ("NODE_REGISTRATION_PSK", "secret-psk"),
            ("CAPABILITY_REPORT_INTERVAL", "soon"),
        ],
    );
    assert_config_error(&output, contacted, &["CAPABILITY_REPORT_INTERVAL"]);
}
