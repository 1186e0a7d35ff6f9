//! Self-confinement once a daemon has started: Landlock limits the filesystem (and, if asked, TCP
//! and IPC scopes) to what the running process still needs, and every capability is dropped.
//!
//! A [`Policy`] is either [`Enforcement::Strict`] (any failure is an error the caller treats as
//! fatal: the worker API) or [`Enforcement::BestEffort`] (failures are logged and the process
//! continues: the node manager). Either way an older kernel enforces what it knows, and the
//! [`Report`] says what it granted.
//!
//! Landlock and capabilities apply to the calling thread and to the threads and processes it
//! starts afterwards, so a daemon applies its policy on the main thread before it starts its
//! async runtime or any child it must not confine.

use std::path::PathBuf;

use caps::CapSet;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
    path_beneath_rules,
};

/// The newest Landlock ABI this build knows; older kernels' ABIs are used best-effort.
const TARGET_ABI: ABI = ABI::V9;

/// What happens when the kernel refuses part of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Every failure is returned as an error.
    Strict,
    /// Failures are logged; the process continues with what could be applied.
    BestEffort,
}

/// What a path (and everything beneath it, for a directory) stays open for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAccess {
    /// Read files and list directories.
    Read,
    /// [`PathAccess::Read`] plus executing files (libraries, helpers).
    ReadExecute,
    /// Everything: create, write, remove (for a file: everything a file allows).
    ReadWrite,
    /// Read and write existing files only (device nodes such as `/dev/null`).
    ReadWriteFiles,
    /// [`PathAccess::Read`] plus connecting to the Unix sockets inside.
    ConnectUnix,
}

impl PathAccess {
    fn rights(self) -> BitFlags<AccessFs> {
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        match self {
            Self::Read => read,
            Self::ReadExecute => AccessFs::from_read(TARGET_ABI),
            Self::ReadWrite => AccessFs::from_all(TARGET_ABI),
            Self::ReadWriteFiles => AccessFs::ReadFile | AccessFs::WriteFile,
            Self::ConnectUnix => read | AccessFs::ResolveUnix,
        }
    }
}

/// What the process may still do once confined. Paths that do not exist are skipped.
#[derive(Debug, Clone)]
pub struct Policy {
    pub enforcement: Enforcement,
    pub paths: Vec<(PathBuf, PathAccess)>,
    /// `None`: TCP is not restricted. `Some(ports)`: no TCP bind at all, and TCP connect only to
    /// these ports (any host). Listeners bound before [`Policy::apply`] keep working.
    pub tcp_connect_ports: Option<Vec<u16>>,
    /// Whether connecting to Unix sockets is restricted to [`PathAccess::ConnectUnix`] paths.
    /// Without it, Unix sockets stay reachable wherever a path is readable.
    pub restrict_unix_connect: bool,
    /// Forbid abstract Unix sockets and signals to processes outside this one's Landlock domain
    /// (not for a supervisor that must signal children it started before hardening).
    pub scoped: bool,
}

impl Policy {
    /// Nothing allowed yet; failures are errors.
    pub fn strict() -> Self {
        Self::new(Enforcement::Strict)
    }

    /// Nothing allowed yet; failures are logged.
    pub fn best_effort() -> Self {
        Self::new(Enforcement::BestEffort)
    }

    fn new(enforcement: Enforcement) -> Self {
        Self {
            enforcement,
            paths: Vec::new(),
            tcp_connect_ports: None,
            restrict_unix_connect: false,
            scoped: false,
        }
    }

    /// Keeps `paths` open for `access`.
    pub fn allow<P: Into<PathBuf>>(
        mut self,
        access: PathAccess,
        paths: impl IntoIterator<Item = P>,
    ) -> Self {
        self.paths
            .extend(paths.into_iter().map(|p| (p.into(), access)));
        if access == PathAccess::ConnectUnix {
            self.restrict_unix_connect = true;
        }
        self
    }

    /// Forbids TCP bind, and TCP connect except to `ports`.
    pub fn tcp_connect_only(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.tcp_connect_ports = Some(ports.into_iter().collect());
        self
    }

    /// Restricts Unix socket connects to [`PathAccess::ConnectUnix`] paths (even if none).
    pub fn restrict_unix_connect(mut self) -> Self {
        self.restrict_unix_connect = true;
        self
    }

    /// See [`Policy::scoped`](struct.Policy.html#structfield.scoped).
    pub fn scoped(mut self) -> Self {
        self.scoped = true;
        self
    }

    /// Confines the calling thread (and what it starts later): Landlock, then the capability
    /// drop. Under [`Enforcement::BestEffort`] this never fails.
    pub fn apply(&self) -> Result<Report, HardeningError> {
        let strict = self.enforcement == Enforcement::Strict;
        let (landlock_abi, landlock) = match self.restrict() {
            Ok(granted) => granted,
            Err(e) if strict => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "Landlock confinement failed; continuing without it");
                (0, "failed".to_owned())
            }
        };
        let capabilities_dropped = drop_all_capabilities(strict)?;
        let report = Report {
            landlock_abi,
            landlock,
            capabilities_dropped,
        };
        tracing::info!(
            landlock_abi = report.landlock_abi,
            landlock = %report.landlock,
            capabilities_dropped = report.capabilities_dropped,
            "self-hardening applied"
        );
        Ok(report)
    }

    fn restrict(&self) -> Result<(i32, String), RulesetError> {
        let mut handled = AccessFs::from_all(TARGET_ABI);
        if !self.restrict_unix_connect {
            handled.remove(AccessFs::ResolveUnix);
        }
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(handled)?;
        if self.tcp_connect_ports.is_some() {
            ruleset = ruleset.handle_access(AccessNet::from_all(TARGET_ABI))?;
        }
        if self.scoped {
            ruleset = ruleset.scope(Scope::from_all(TARGET_ABI))?;
        }
        let mut created = ruleset.create()?;
        for (path, access) in &self.paths {
            // Skips a path that cannot be opened; keeps only file rights for a file.
            created = created.add_rules(path_beneath_rules([path], access.rights() & handled))?;
        }
        for port in self.tcp_connect_ports.iter().flatten() {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
        let status = created.restrict_self()?;
        let abi = match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => effective_abi as i32,
            LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => 0,
        };
        let enforced = match status.ruleset {
            RulesetStatus::FullyEnforced => "fully enforced",
            RulesetStatus::PartiallyEnforced => "partially enforced",
            RulesetStatus::NotEnforced => "not enforced (kernel without Landlock)",
        };
        Ok((abi, format!("{enforced} (ABI {abi})")))
    }
}

/// What the kernel granted, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Landlock ABI in effect (0 = unsupported, disabled or failed).
    pub landlock_abi: i32,
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

/// Clears the bounding, ambient, inheritable, effective and permitted sets; returns whether the
/// effective set is now empty. The bounding set goes first, while CAP_SETPCAP is still held.
/// Under systemd's empty CapabilityBoundingSet the other sets start empty and capset(2) is not
/// called at all (such units' syscall filter refuses it).
fn drop_all_capabilities(strict: bool) -> Result<bool, HardeningError> {
    let mut failure: Option<caps::errors::CapsError> = None;
    let mut step = |result: Result<(), caps::errors::CapsError>, what: &str| {
        if let Err(e) = result {
            if !strict {
                tracing::warn!(error = %e, what, "cannot drop a capability set");
            }
            failure.get_or_insert(e);
        }
    };
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        match caps::read(None, CapSet::Bounding) {
            Ok(bounding) => {
                for cap in bounding {
                    step(caps::drop(None, CapSet::Bounding, cap), "bounding");
                }
            }
            Err(e) => step(Err(e), "bounding"),
        }
    }
    step(caps::clear(None, CapSet::Ambient), "ambient");
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        match caps::read(None, set) {
            Ok(current) if current.is_empty() => {}
            Ok(_) => step(caps::clear(None, set), "inheritable/effective/permitted"),
            Err(e) => step(Err(e), "inheritable/effective/permitted"),
        }
    }
    match failure {
        Some(e) if strict => Err(e.into()),
        _ => Ok(caps::read(None, CapSet::Effective).is_ok_and(|s| s.is_empty())),
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// Landlock and capabilities are per thread: the policy confines a fresh thread only, and
    /// the test checks from inside it that what was allowed works and the rest stays closed.
    #[test]
    fn only_the_allowed_port_and_paths_stay_open() {
        let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let allowed_port = allowed.local_addr().unwrap().port();
        let other_port = other.local_addr().unwrap().port();
        let open = tempfile::tempdir().unwrap();
        let closed = tempfile::tempdir().unwrap();
        std::fs::write(closed.path().join("secret"), "s").unwrap();
        std::fs::write(open.path().join("visible"), "v").unwrap();
        let (open_dir, closed_file) = (open.path().to_owned(), closed.path().join("secret"));

        let outcome = std::thread::spawn(move || {
            let report = Policy::strict()
                .allow(PathAccess::ReadWrite, [&open_dir])
                .allow(PathAccess::ReadWriteFiles, ["/dev/null"])
                .tcp_connect_only([allowed_port])
                .restrict_unix_connect()
                .scoped()
                .apply()
                .expect("the strict policy applies on this kernel");
            let connect = |port: u16| TcpStream::connect(("127.0.0.1", port)).map(drop);
            (
                report,
                connect(allowed_port),
                connect(other_port),
                TcpListener::bind("127.0.0.1:0").map(drop),
                std::fs::read_to_string(&closed_file),
                std::fs::read_to_string(open_dir.join("visible")),
                std::fs::write(open_dir.join("new"), "n"),
                std::fs::read_to_string("/etc/hostname"),
            )
        })
        .join()
        .unwrap();
        let (report, to_allowed, to_other, bind, closed_read, open_read, open_write, etc) = outcome;

        assert!(
            report.landlock_abi >= 4,
            "network rules need ABI 4: {report:?}"
        );
        // ABI 7 kernels enforce all but the newest rights (Unix socket connects): "partially".
        assert!(
            ["fully", "partially"]
                .iter()
                .any(|p| report.landlock.starts_with(p)),
            "{report:?}"
        );
        assert!(report.capabilities_dropped);
        to_allowed.expect("the allowed port is reachable");
        assert_eq!(to_other.unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_eq!(bind.unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_eq!(closed_read.unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_eq!(etc.unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_eq!(open_read.unwrap(), "v");
        open_write.expect("the read-write directory stays writable");

        // This thread was never confined: the other port and the closed file are fine here.
        TcpStream::connect(("127.0.0.1", other_port)).expect("unconfined thread connects");
        assert_eq!(
            std::fs::read_to_string(closed.path().join("secret")).unwrap(),
            "s"
        );
    }

    /// Without TCP rules (the node manager's policy) TCP stays open; reading outside the
    /// allowed paths is still refused.
    #[test]
    fn best_effort_without_tcp_rules_leaves_tcp_open() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().to_owned();
        let (report, connect, outside) = std::thread::spawn(move || {
            let report = Policy::best_effort()
                .allow(PathAccess::ReadWrite, [&inside])
                .allow(PathAccess::ReadExecute, ["/no/such/path"])
                .apply()
                .unwrap();
            (
                report,
                TcpStream::connect(("127.0.0.1", port)).map(drop),
                std::fs::read_dir("/etc").map(drop),
            )
        })
        .join()
        .unwrap();
        assert!(report.landlock_abi > 0, "{report:?}");
        connect.expect("TCP is not restricted");
        assert_eq!(outside.unwrap_err().kind(), ErrorKind::PermissionDenied);
    }
}
