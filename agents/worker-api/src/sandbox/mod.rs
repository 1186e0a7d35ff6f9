//! Sandboxed job runs: what a request may ask for ([`Limits::plan`]), the one lifecycle every
//! run goes through ([`Lifecycle`]: deliveries, stop, shutdown, leftovers of an earlier worker)
//! and the Podman work of a run ([`Sandboxes`]).

mod create;
mod invalid;
mod labels;
mod lifecycle;
mod limits;
mod live;
mod log_stream;
mod output;
mod plan;
mod pod;
mod removal;
mod runner;
mod seccomp;
mod spec;

pub use invalid::InvalidJob;
pub use labels::{
    LABEL_DEADLINE, LABEL_JOB_ID, LABEL_MOUNT_ROOT, LABEL_ROLE, LABEL_TASK_ID, ROLE_MANAGED,
};
pub use lifecycle::{Followed, Lifecycle, RunError};
pub use limits::{Limits, Resources};
pub use live::Lines;
pub use log_stream::send_log;
pub use output::CappedStream;
pub use plan::{INFERENCE_ENV, JobPlan, WORKSPACE_DIR};
pub use pod::{PodSetup, pod_name};
pub use runner::{SandboxError, Sandboxes, Stop};
pub use seccomp::{SeccompError, write as write_seccomp_profile};
