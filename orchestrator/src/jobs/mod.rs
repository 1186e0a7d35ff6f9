//! The job queue: the only writer of the `jobs` table and of `tasks.status`.
//!
//! Everything that happens to a job goes through here: a task is opened with what its
//! [`Planner`] decided; jobs are enqueued, claimed under a lease (`FOR UPDATE SKIP LOCKED`),
//! completed by the lease holder, retried with a backoff, reaped when their lease expires, and
//! canceled with their task. After each of these the task's status is derived again from all
//! its jobs ([`derive`]), so no caller ever writes a status.
//!
//! Lock order, everywhere: the task's jobs (by id), then the task. The claim is the exception
//! that cannot deadlock: it locks the nodes first (no other writer of jobs holds a node while
//! waiting), skips a locked job and holds one job when it locks the task, and anyone holding
//! the task already holds all of its jobs.
//!
//! One file per step of a job's life: `plan` (what a task runs), `open` (tasks and jobs going
//! in, a plan's end), `claim` (leases), `results` (what a delivery recorded), `setbacks`
//! (requeue or give up), `reaper` (expired leases, drain deadlines), `cancel`, `status` (the
//! derived task status and the locks every writer takes) and `query` (reads).

mod cancel;
mod claim;
mod open;
mod plan;
mod query;
mod reaper;
mod results;
mod setbacks;
mod status;

use sqlx::PgConnection;

use crate::error::Result;

pub use cancel::{Canceled, RunningJob, cancel, running_on};
pub use claim::{Claim, claim, recheck_waiting, renew_lease};
pub use open::{Conclusion, conclude, conclude_in, enqueue, enqueue_as, open_task};
pub use plan::{NO_PROMPT_PATH, NewTask, Plan, Planner, ShellPlanner};
pub use query::{JobRecord, job, jobs_of, next_due};
pub use reaper::{reap_expired, requeue_drained};
pub use results::{Recorded, complete, interrupted, judge, retry};
pub use setbacks::{MAX_BACKOFF, backoff};
pub use status::derive;

/// Channel the dispatcher listens on for new work.
pub const JOBS_CHANNEL: &str = "cynode_jobs";

/// Wakes a dispatcher in another process; delivered only if the transaction commits.
async fn notify(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
