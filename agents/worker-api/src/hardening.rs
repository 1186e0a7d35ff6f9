//! Self-hardening after start-up (ARCHITECTURE.md §4): Landlock confines the process to the
//! files it needs (the mount root read-write, the Podman socket's directory, /proc and two
//! device nodes read-only), forbids TCP bind/connect, abstract Unix sockets and signals to
//! other processes, and every capability is dropped.
//!
//! Both apply to the calling thread and the threads it starts later, so this runs on the main
//! thread before the async runtime exists.

use std::path::{Path, PathBuf};

use caps::CapSet;
use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, path_beneath_rules,
};

/// The newest Landlock ABI this build knows; the kernel's older ABIs are used best-effort.
const TARGET_ABI: ABI = ABI::V9;

/// What the worker keeps access to.
#[derive(Debug, Clone)]
pub struct Needs {
    /// Read-write: per-job directories are created here.
    pub mount_root: PathBuf,
    /// Its directory stays readable (and connectable where the kernel controls that).
    pub podman_socket: PathBuf,
}

/// What the kernel granted, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub landlock: String,
    pub capabilities_dropped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("Landlock: {0}")]
    Landlock(#[from] RulesetError),
    #[error("dropping capabilities: {0}")]
    Caps(#[from] caps::errors::CapsError),
}

/// Applies both restrictions to the current thread (and its future children).
pub fn apply(needs: &Needs) -> Result<Report, HardeningError> {
    let landlock = restrict_filesystem_and_network(needs)?;
    drop_all_capabilities()?;
    Ok(Report {
        landlock,
        capabilities_dropped: true,
    })
}

fn restrict_filesystem_and_network(needs: &Needs) -> Result<String, HardeningError> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let socket_dir = needs
        .podman_socket
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .handle_access(AccessNet::from_all(TARGET_ABI))?
        // Neither abstract Unix sockets nor signals to other processes are needed.
        .scope(Scope::from_all(TARGET_ABI))?
        .create()?
        .add_rules(path_beneath_rules(
            [&needs.mount_root],
            AccessFs::from_all(TARGET_ABI),
        ))?
        .add_rules(path_beneath_rules(
            [socket_dir.as_path(), Path::new("/run/systemd/journal")],
            read | AccessFs::ResolveUnix,
        ))?
        .add_rules(path_beneath_rules(["/proc"], read))?
        .add_rules(path_beneath_rules(
            ["/dev/null", "/dev/urandom"],
            AccessFs::ReadFile | AccessFs::WriteFile,
        ))?
        // No TCP rules: the listener is bound already and the worker dials only Unix sockets.
        .restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => format!("ABI {}", effective_abi as i32),
        LandlockStatus::NotEnabled => "not enabled in this kernel".to_owned(),
        LandlockStatus::NotImplemented => "not built into this kernel".to_owned(),
    };
    let enforcement = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    };
    Ok(format!("{enforcement} ({abi})"))
}

/// The worker needs no capability: it talks to Podman over a socket it owns and writes below a
/// directory it owns. The bounding set goes first, while CAP_SETPCAP is still held.
fn drop_all_capabilities() -> Result<(), caps::errors::CapsError> {
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)? {
        for cap in caps::read(None, CapSet::Bounding)? {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    // Under systemd's empty CapabilityBoundingSet these sets start empty, and capset(2) is then
    // not needed at all (the unit's syscall filter refuses it).
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        if !caps::read(None, set)?.is_empty() {
            caps::clear(None, set)?;
        }
    }
    Ok(())
}
