//! The sandbox's seccomp profile: the node's default container profile (containers-common's
//! `seccomp.json`, `--seccomp-base-profile`) with new user namespaces refused. Without it a job could `unshare -U` (Podman's default allows `unshare`, `clone` and
//! `setns` for everyone) and gain every capability inside a namespace of its own, which widens
//! the kernel surface it can reach. The worker writes the profile into its mount root at
//! start-up and names it in every sandbox's spec (`seccomp_profile_path`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
/// `CLONE_NEWUSER` from `<linux/sched.h>`.
const CLONE_NEWUSER: u64 = 0x1000_0000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
/// The profile's file in the mount root (not a job id, so the retention sweep leaves it).
pub const PROFILE_FILE: &str = ".sandbox-seccomp.json";

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot read the base seccomp profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the base seccomp profile {path} is not a profile: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write the sandbox seccomp profile {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The profile: `base` (Podman's default), except that `clone` and `unshare` fail with `EPERM` when
/// asked for a new user namespace, `setns` always fails with `EPERM`, and `clone3` (whose flags
/// live in memory, out of seccomp's sight) fails with `ENOSYS`, so that libc falls back to
/// `clone`. The flags are the first argument on x86_64 and aarch64, the architectures we run.
pub fn profile(mut profile: Value) -> Result<Value, String> {
    let guarded = ["clone", "clone3", "unshare", "setns"];
    let rules = profile
        .get_mut("syscalls")
        .and_then(Value::as_array_mut)
        .ok_or("it has no `syscalls` list")?;
    for rule in rules.iter_mut() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !n.as_str().is_some_and(|n| guarded.contains(&n)));
        }
    }
    rules.retain(|rule| rule["names"].as_array().is_some_and(|n| !n.is_empty()));
    let newuser = |datum: u64| json!([{"index": 0, "value": CLONE_NEWUSER, "valueTwo": datum, "op": "SCMP_CMP_MASKED_EQ"}]);
    rules.extend([
        json!({"names": ["clone", "unshare"], "action": "SCMP_ACT_ALLOW", "args": newuser(0),
               "comment": "cynodeai: no new user namespaces"}),
        json!({"names": ["clone", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
               "args": newuser(CLONE_NEWUSER), "comment": "cynodeai: no new user namespaces"}),
        json!({"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
               "comment": "cynodeai: no joining namespaces"}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
               "comment": "cynodeai: flags not inspectable; libc falls back to clone"}),
    ]);
    Ok(profile)
}

/// Reads the node's base profile, writes the sandbox profile made from it to
/// `<mount_root>/.sandbox-seccomp.json` (0600; Podman reads it as root) and returns its path.
pub fn write(base: &Path, mount_root: &Path) -> Result<PathBuf, SeccompError> {
    let text = std::fs::read(base).map_err(|source| SeccompError::Read {
        path: base.to_owned(),
        source,
    })?;
    let invalid = |reason: String| SeccompError::Invalid {
        path: base.to_owned(),
        reason,
    };
    let base_profile = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    let profile = profile(base_profile).map_err(invalid)?;
    let path = mount_root.join(PROFILE_FILE);
    let written = write_private(mount_root, &path, &profile);
    written.map_err(|source| SeccompError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn write_private(mount_root: &Path, path: &Path, profile: &Value) -> std::io::Result<()> {
    let tmp = mount_root.join(format!("{PROFILE_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(profile).expect("JSON"))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_for(profile: &Value, name: &str) -> Vec<Value> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    /// The node's own default profile: the bootstrap installs Podman, and with it
    /// containers-common's `seccomp.json`.
    fn node_default() -> Value {
        let base = cynode_contracts::worker_cli::DEFAULT_SECCOMP_BASE;
        serde_json::from_slice(&std::fs::read(base).unwrap()).unwrap()
    }

    #[test]
    fn user_namespaces_are_refused_and_the_rest_of_the_default_is_kept() {
        let p = profile(node_default()).unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        for name in ["clone", "unshare"] {
            let rules = rules_for(&p, name);
            assert_eq!(rules.len(), 2, "{name}: {rules:?}");
            assert!(rules.iter().all(|r| r["args"][0]["value"] == CLONE_NEWUSER));
        }
        let setns = rules_for(&p, "setns");
        assert_eq!(setns.len(), 1);
        assert_eq!(setns[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(rules_for(&p, "clone3")[0]["errnoRet"], ENOSYS);
        // Ordinary calls stay allowed.
        assert!(
            rules_for(&p, "read")
                .iter()
                .any(|r| r["action"] == "SCMP_ACT_ALLOW")
        );
    }

    #[test]
    fn written_profile_is_private_and_parses() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = std::path::Path::new(cynode_contracts::worker_cli::DEFAULT_SECCOMP_BASE);
        let path = write(base, dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, profile(node_default()).unwrap());
    }

    #[test]
    fn a_missing_or_foreign_base_profile_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        let err = write(&missing, dir.path()).unwrap_err().to_string();
        assert!(err.contains("none.json"), "{err}");
        let foreign = dir.path().join("foreign.json");
        std::fs::write(&foreign, br#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let err = write(&foreign, dir.path()).unwrap_err().to_string();
        assert!(err.contains("syscalls"), "{err}");
        assert!(!dir.path().join(PROFILE_FILE).exists());
    }
}
