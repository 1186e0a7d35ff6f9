//! What this node lets a job ask for: its images, timeouts, output cap and the kernel-enforced
//! limits of every sandbox.

use cynode_contracts::worker::SandboxResources;
use cynode_contracts::worker_cli;

use super::invalid::InvalidJob;
use crate::mcp::McpGateway;

/// What this node allows a job to ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub(super) default_image: String,
    allowed_images: Vec<String>,
    default_timeout_secs: u64,
    max_timeout_secs: u64,
    pub(super) max_output_bytes: usize,
    /// Whether this node serves inference to sandboxes (`--inference-url` is set).
    pub(super) inference: bool,
    /// The orchestrator's MCP gateway, which jobs' grants must point at
    /// (`--mcp-gateway-url`); without it no job may ask for MCP.
    pub(super) mcp: Option<McpGateway>,
    pub(super) resources: Resources,
}

/// The kernel-enforced limits of every sandbox on this node. Jobs cannot ask for more (or
/// less): requests carry no resource fields yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub memory_bytes: u64,
    pub cpu_millis: u64,
    pub pids: u64,
    pub tmp_bytes: u64,
    /// `Some`: `/workspace` is a tmpfs of this size; `None`: a host directory, not limited.
    pub workspace_bytes: Option<u64>,
    pub log_bytes: u64,
}

impl Resources {
    /// These limits, tightened to what a job asked for.
    pub(super) fn narrowed(self, request: SandboxResources) -> Result<Self, InvalidJob> {
        const MIB: u64 = 1024 * 1024;
        // The request is in the field's unit (`unit` bytes, or 1), the node's limit in bytes.
        let pick = |field: &'static str, requested: Option<u64>, (min, unit): (u64, u64), limit| {
            let max = limit / unit;
            match requested {
                None => Ok(limit),
                Some(r) if r < min => Err(InvalidJob::BelowMinimum {
                    field,
                    requested: r,
                    min,
                }),
                Some(r) if r > max => Err(InvalidJob::OverLimit {
                    field,
                    requested: r,
                    max,
                }),
                Some(r) => Ok(r * unit),
            }
        };
        Ok(Self {
            memory_bytes: pick(
                "memory_mib",
                request.memory_mib,
                (worker_cli::MIN_SANDBOX_MEMORY_MIB, MIB),
                self.memory_bytes,
            )?,
            cpu_millis: pick(
                "cpu_millis",
                request.cpu_millis,
                (worker_cli::MIN_SANDBOX_CPU_MILLIS, 1),
                self.cpu_millis,
            )?,
            pids: pick(
                "pids",
                request.pids,
                (worker_cli::MIN_SANDBOX_PIDS, 1),
                self.pids,
            )?,
            tmp_bytes: pick("tmp_mib", request.tmp_mib, (1, MIB), self.tmp_bytes)?,
            workspace_bytes: match (request.workspace_mib, self.workspace_bytes) {
                (None, own) => own,
                (Some(_), None) => return Err(InvalidJob::WorkspaceNotLimited),
                (requested, Some(limit)) => {
                    Some(pick("workspace_mib", requested, (1, MIB), limit)?)
                }
            },
            log_bytes: self.log_bytes,
        })
    }
}

impl Default for Resources {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Self {
            memory_bytes: worker_cli::DEFAULT_SANDBOX_MEMORY_MIB * MIB,
            cpu_millis: worker_cli::DEFAULT_SANDBOX_CPU_MILLIS,
            pids: worker_cli::DEFAULT_SANDBOX_PIDS_LIMIT,
            tmp_bytes: worker_cli::DEFAULT_SANDBOX_TMP_MIB * MIB,
            workspace_bytes: None,
            log_bytes: worker_cli::DEFAULT_SANDBOX_LOG_MAX_BYTES,
        }
    }
}

impl Limits {
    pub fn new(
        default_image: String,
        allowed_images: Vec<String>,
        default_timeout_secs: u64,
        max_timeout_secs: u64,
        max_output_bytes: usize,
    ) -> Self {
        Self {
            default_image,
            allowed_images,
            default_timeout_secs,
            max_timeout_secs,
            max_output_bytes,
            inference: false,
            mcp: None,
            resources: Resources::default(),
        }
    }

    /// Sets the sandboxes' memory, CPU, pids, `/tmp` and log limits.
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }

    pub fn resources(&self) -> Resources {
        self.resources
    }

    /// Lets jobs ask for inference (`use_inference`).
    pub fn with_inference(mut self, enabled: bool) -> Self {
        self.inference = enabled;
        self
    }

    /// Lets jobs ask for MCP (`use_mcp`) through `gateway`.
    pub fn with_mcp(mut self, gateway: Option<McpGateway>) -> Self {
        self.mcp = gateway;
        self
    }

    pub fn default_image(&self) -> &str {
        &self.default_image
    }

    /// The per-stream output cap, also for runs taken over from an earlier worker.
    pub fn max_output_bytes(&self) -> usize {
        self.max_output_bytes
    }

    /// Whether `image` is on the allowlist. `name` and `name:latest` are the same image.
    pub fn allows(&self, image: &str) -> bool {
        let wanted = with_default_tag(image);
        self.allowed_images
            .iter()
            .any(|allowed| with_default_tag(allowed) == wanted)
    }

    /// A run's timeout: absent or 0 means the default (itself capped by the maximum); a
    /// negative value or one above the maximum is refused.
    pub fn timeout_secs(&self, requested: Option<i64>) -> Result<u64, InvalidJob> {
        match requested {
            None | Some(0) => Ok(self.default_timeout_secs.min(self.max_timeout_secs)),
            Some(t) if t < 0 => Err(InvalidJob::NegativeTimeout(t)),
            Some(t) if t.unsigned_abs() > self.max_timeout_secs => {
                Err(InvalidJob::TimeoutTooLong {
                    requested: t,
                    max: self.max_timeout_secs,
                })
            }
            Some(t) => Ok(t.unsigned_abs()),
        }
    }
}

/// `repo/name` means `repo/name:latest`; a tag or digest is kept as given.
fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}
