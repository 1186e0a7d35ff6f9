//! The bootstrap is idempotent and fails loudly with one clear line.

use std::path::PathBuf;
use std::process::Command;

fn bootstrap() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/bootstrap.sh")
}

#[test]
fn a_rerun_finds_everything_in_place_and_rebuilds_nothing() {
    let out = Command::new(bootstrap()).output().expect("run bootstrap");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for line in [
        "packages present",
        "sandbox image present",
        "llama-server present",
        "model present",
        "inference image present",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(
        !log.contains("building"),
        "a rerun rebuilt something:\n{log}"
    );
}

#[test]
fn without_root_it_stops_with_one_line_and_touches_nothing() {
    use std::os::unix::fs::PermissionsExt;
    // A copy nobody can read: the checkout may sit under a directory only root may enter.
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = home.path().join("bootstrap.sh");
    std::fs::copy(bootstrap(), &script).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dev_home = home.path().join("devenv");
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&script)
        .env("CYNODE_DEV_HOME", &dev_home)
        .output()
        .expect("run bootstrap as nobody");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("bootstrap: error: must run as root"),
        "{err}"
    );
    assert!(!dev_home.exists(), "it created {}", dev_home.display());
}
