//! Self-confinement once start-up is done: Landlock limits the filesystem to what the running
//! node manager still touches (its state directory, the read-only system files name resolution
//! and `/proc` reads need), and every capability is dropped. Both are best effort: an older
//! kernel enforces less, and we log exactly what it granted.
//!
//! Landlock and an empty bounding set are inherited by children, so this runs only after the
//! worker API child has been spawned.

use std::path::{Path, PathBuf};

use caps::CapSet;
use landlock::{
    ABI, Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};

/// The newest ABI this build knows; the crate downgrades to what the kernel offers.
const TARGET_ABI: ABI = ABI::V5;

/// What the kernel granted, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Landlock ABI in effect (0 = unsupported or disabled).
    pub landlock_abi: i32,
    pub landlock: &'static str,
    pub capabilities_dropped: bool,
}

/// Paths the node manager needs after start-up.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    pub read_write: Vec<PathBuf>,
    pub read_only: Vec<PathBuf>,
}

impl Paths {
    /// The state directory read-write; system libraries, config, TLS roots, `/proc` and the
    /// Podman socket's directory read-only.
    pub fn for_node_manager(state_dir: &Path, podman_socket: &Path) -> Self {
        let mut read_only: Vec<PathBuf> = [
            "/etc",
            "/usr",
            "/lib",
            "/lib64",
            "/bin",
            "/proc",
            "/sys",
            "/nix/store",
            "/run",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if let Some(dir) = podman_socket.parent() {
            read_only.push(dir.to_owned());
        }
        Self {
            read_write: vec![state_dir.to_owned(), PathBuf::from("/dev/null")],
            read_only,
        }
    }
}

pub fn harden(paths: &Paths) -> Report {
    let (landlock_abi, landlock) = match restrict_filesystem(paths) {
        Ok(granted) => granted,
        Err(e) => {
            tracing::warn!(error = %e, "Landlock confinement failed; continuing without it");
            (0, "failed")
        }
    };
    let capabilities_dropped = drop_capabilities();
    let report = Report {
        landlock_abi,
        landlock,
        capabilities_dropped,
    };
    tracing::info!(
        landlock_abi = report.landlock_abi,
        landlock = report.landlock,
        capabilities_dropped = report.capabilities_dropped,
        "self-hardening applied"
    );
    report
}

fn restrict_filesystem(paths: &Paths) -> Result<(i32, &'static str), landlock::RulesetError> {
    let existing = |list: &[PathBuf]| -> Vec<PathBuf> {
        list.iter().filter(|p| p.exists()).cloned().collect()
    };
    let (dirs_rw, files_rw): (Vec<PathBuf>, Vec<PathBuf>) = existing(&paths.read_write)
        .into_iter()
        .partition(|p| p.is_dir());
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .create()?
        .add_rules(path_beneath_rules(
            existing(&paths.read_only),
            AccessFs::from_read(TARGET_ABI),
        ))?
        .add_rules(path_beneath_rules(dirs_rw, AccessFs::from_all(TARGET_ABI)))?
        .add_rules(path_beneath_rules(
            files_rw,
            AccessFs::from_file(TARGET_ABI),
        ))?
        .restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as i32,
        LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => 0,
    };
    let enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced (kernel without Landlock)",
    };
    Ok((abi, enforced))
}

/// Clears the bounding, inheritable, ambient, effective and permitted sets. The node manager
/// needs no privilege after start-up: the Podman socket and the state directory belong to its
/// own user. Returns whether the effective set is now empty.
fn drop_capabilities() -> bool {
    // The bounding set can only shrink while CAP_SETPCAP is still effective: do it first.
    if let Ok(bounding) = caps::read(None, CapSet::Bounding) {
        for cap in bounding {
            let _ = caps::drop(None, CapSet::Bounding, cap);
        }
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        if let Err(e) = caps::clear(None, set) {
            tracing::warn!(error = %e, ?set, "cannot clear a capability set");
        }
    }
    caps::read(None, CapSet::Effective).is_ok_and(|s| s.is_empty())
}
