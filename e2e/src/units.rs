//! `systemd/units.nix`, the one source of every unit: evaluated with plain `nix-instantiate`
//! (no nixpkgs) and rendered to unit files. `systemd/*.service` are this rendering of the
//! defaults; tests render it again with their own paths (binaries, config, credentials) to run
//! the agents exactly as the units do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository's `systemd/` directory.
pub fn systemd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .canonicalize()
        .expect("systemd/ exists")
}

/// Evaluates `units.nix` with `args` (Nix expressions, e.g. `bindir = "/x";`) and returns
/// unit name -> { comment, Unit, Service, Install }.
pub fn evaluate(args: &str) -> BTreeMap<String, Value> {
    let source = systemd_dir().join("units.nix");
    let expr = format!("import {} {{ {args} }}", source.display());
    let out = Command::new("nix-instantiate")
        .args(["--option", "build-users-group", ""])
        .args(["--eval", "--strict", "--json", "-E"])
        .arg(&expr)
        .output()
        .expect("nix-instantiate (Debian package nix-bin; scripts/bootstrap.sh installs it)");
    assert!(
        out.status.success(),
        "nix-instantiate {expr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("units.nix evaluates to JSON")
}

/// A Nix string literal.
pub fn nix_str(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref())
        .unwrap()
        .replace("${", "\\${")
}

/// The lines one directive renders to.
fn lines(key: &str, value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| lines(key, v, out)),
        Value::Object(env) => {
            for (k, v) in env {
                out.push_str(&format!("{key}={k}={}\n", scalar(v)));
            }
        }
        v => out.push_str(&format!("{key}={}\n", scalar(v))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("units.nix: unexpected value {other}"),
    }
}

/// The unit file text of one evaluated unit.
pub fn render(unit: &Value) -> String {
    let mut out = String::from(
        "# Generated from systemd/units.nix; edit that file, then regenerate with\n\
         # `CYNODE_WRITE_UNITS=1 cargo test -p cynode-e2e --test systemd_units`.\n#\n",
    );
    for line in unit["comment"].as_str().unwrap_or_default().lines() {
        out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
    }
    for section in ["Unit", "Service", "Install"] {
        let Some(Value::Object(directives)) = unit.get(section) else {
            continue;
        };
        out.push_str(&format!("\n[{section}]\n"));
        for (key, value) in directives {
            lines(key, value, &mut out);
        }
    }
    out
}

/// Every unit rendered: file name (`cynode-x.service`) -> text.
pub fn render_all(args: &str) -> BTreeMap<String, String> {
    evaluate(args)
        .iter()
        .map(|(name, unit)| (format!("{name}.service"), render(unit)))
        .collect()
}

/// The values of `key` in `section` of an evaluated unit, one per rendered line.
pub fn values(unit: &Value, section: &str, key: &str) -> Vec<String> {
    let mut text = String::new();
    if let Some(v) = unit.get(section).and_then(|s| s.get(key)) {
        lines(key, v, &mut text);
    }
    text.lines()
        .map(|l| l[key.len() + 1..].to_owned())
        .collect()
}

/// `Environment=` of an evaluated unit as (name, value) pairs.
pub fn environment(unit: &Value) -> Vec<(String, String)> {
    values(unit, "Service", "Environment")
        .into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("K=V");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// `LoadCredential=` of an evaluated unit as (credential name, source file) pairs.
pub fn credentials(unit: &Value) -> Vec<(String, PathBuf)> {
    values(unit, "Service", "LoadCredential")
        .into_iter()
        .map(|kv| {
            let (k, v) = kv.split_once(':').expect("name:path");
            (k.to_owned(), PathBuf::from(v))
        })
        .collect()
}

/// Copies every credential of `unit` into `dir` (what systemd's `LoadCredential=` does) and
/// returns `dir` for `CREDENTIALS_DIRECTORY`.
pub fn load_credentials(unit: &Value, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, source) in credentials(unit) {
        std::fs::copy(&source, dir.join(&name))
            .unwrap_or_else(|e| panic!("credential {name} from {}: {e}", source.display()));
    }
    dir.to_owned()
}

/// `ExecStart=` split into program and arguments (the units quote nothing).
pub fn exec_start(unit: &Value) -> (PathBuf, Vec<String>) {
    let line = unit["Service"]["ExecStart"].as_str().expect("ExecStart");
    let mut words = line.split_whitespace().map(str::to_owned);
    let program = PathBuf::from(words.next().expect("program"));
    (program, words.collect())
}
