//! The labels every sandbox container and pod carries: whose job it is, which worker made it,
//! when its run must end, and what role a container plays among a job's containers.

/// Label keys every sandbox carries, so that operators (and tests) can find a job's container.
pub const LABEL_TASK_ID: &str = "cynodeai.task_id";
pub const LABEL_JOB_ID: &str = "cynodeai.job_id";
/// The mount root of the worker that made a container or pod: a worker starting on the same
/// mount root takes over exactly these, and never anything else on the Podman socket.
pub const LABEL_MOUNT_ROOT: &str = "cynodeai.mount_root";
/// When the job's timeout ends (RFC 3339), so that a worker taking the run over still ends it
/// in time.
pub const LABEL_DEADLINE: &str = "cynodeai.deadline";

/// Marks the pod's sidecar among a job's containers.
pub const LABEL_ROLE: &str = "cynodeai.role";
pub const ROLE_SIDECAR: &str = "inference-proxy";
/// A managed sandbox of the Project Manager (`crate::managed`), not a job's run.
pub const ROLE_MANAGED: &str = "managed";
