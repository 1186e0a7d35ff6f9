//! The Podman side of a job's run: create its container (or find one an earlier worker left),
//! supervise it until it ends, collect what it printed, and remove it. Which run happens when,
//! and what becomes of its result, is decided by [`super::lifecycle`].
//!
//! One file per step: `sandboxes` (the runner, its settings and its create), `run` (a job's
//! run), `workspace` (the job's host directory), `supervise` (start, wait, end early), `logs`
//! (the output, capped, followed while the job writes), `result` (what the run reports),
//! `record` (telemetry, and removal), `leftover` (what an earlier worker left) and `managed`
//! (the Project Manager's long-lived sandboxes).

mod leftover;
mod logs;
mod managed;
mod record;
mod result;
mod run;
mod sandboxes;
mod supervise;
mod workspace;

pub use leftover::Adoptable;
pub use result::canceled_before_start;
pub use sandboxes::{RunEnd, SandboxError, Sandboxes, Signals, Stop};
