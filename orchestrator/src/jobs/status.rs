//! A task's status, derived from all its jobs after every change, and the locks every writer
//! takes first.

use cynode_contracts::user::{JobStatus, TaskStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A task's status from its current one, whether its plan is open, and all its jobs. Terminal
/// states are never left; a failed step fails the task; a canceled step cancels it; otherwise
/// the task runs while any job runs (or once any has completed), waits while all are queued,
/// and completes when every job completed and the plan is closed.
pub fn derive(current: TaskStatus, plan_open: bool, jobs: &[JobStatus]) -> TaskStatus {
    let any = |s: JobStatus| jobs.contains(&s);
    if current.is_terminal() {
        current
    } else if any(JobStatus::Failed) {
        TaskStatus::Failed
    } else if any(JobStatus::Canceled) {
        TaskStatus::Canceled
    } else if any(JobStatus::Running)
        || (any(JobStatus::Completed) && (plan_open || any(JobStatus::Queued)))
    {
        TaskStatus::Running
    } else if any(JobStatus::Queued) || plan_open {
        TaskStatus::Queued
    } else {
        TaskStatus::Completed
    }
}

pub(super) fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|e| Error::internal(format!("bad status in database: {e}")))
}

/// What the task's summary becomes when its status changes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Note<'a> {
    Keep,
    Clear,
    Set(&'a str),
}

/// Locks the task's jobs in id order, as every writer must before it locks the task.
pub(super) async fn lock_jobs(tx: &mut PgConnection, task_id: Uuid) -> Result<()> {
    sqlx::query("SELECT id FROM jobs WHERE task_id = $1 ORDER BY id FOR UPDATE")
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Derives the task's status from all its jobs and stores it; `note` becomes the summary if the
/// status changed. A task that reaches a terminal state takes its unfinished jobs with it
/// (their leases cleared, so a delivery in flight cannot record anything).
pub(super) async fn settle(
    tx: &mut PgConnection,
    task_id: Uuid,
    note: Note<'_>,
) -> Result<TaskStatus> {
    let (status, plan_open): (String, bool) =
        sqlx::query_as("SELECT status, plan_open FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await?;
    let current: TaskStatus = parse(&status)?;
    if current.is_terminal() {
        return Ok(current);
    }
    let jobs = sqlx::query_scalar::<_, String>("SELECT status FROM jobs WHERE task_id = $1")
        .bind(task_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|s| parse(s))
        .collect::<Result<Vec<JobStatus>>>()?;
    let next = derive(current, plan_open, &jobs);
    if next != current {
        set_task_status(tx, task_id, next, note).await?;
    }
    Ok(next)
}

pub(super) async fn set_task_status(
    tx: &mut PgConnection,
    task_id: Uuid,
    status: TaskStatus,
    note: Note<'_>,
) -> Result<()> {
    let (keep, summary) = match note {
        Note::Keep => (true, None),
        Note::Clear => (false, None),
        Note::Set(text) => (false, Some(text)),
    };
    sqlx::query(
        "UPDATE tasks SET status = $2, closed = $3,
            summary = CASE WHEN $4 THEN summary ELSE $5 END
         WHERE id = $1",
    )
    .bind(task_id)
    .bind(status.as_str())
    .bind(status.is_terminal())
    .bind(keep)
    .bind(summary)
    .execute(&mut *tx)
    .await?;
    if status.is_terminal() {
        sqlx::query(
            "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL,
                ended_at = coalesce(ended_at, now())
             WHERE task_id = $1 AND status IN ($3, $4)",
        )
        .bind(task_id)
        .bind(JobStatus::Canceled.as_str())
        .bind(JobStatus::Queued.as_str())
        .bind(JobStatus::Running.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus as J;
    use TaskStatus as T;

    #[test]
    fn a_task_follows_all_its_jobs() {
        assert_eq!(derive(T::Queued, false, &[J::Queued]), T::Queued);
        assert_eq!(derive(T::Queued, false, &[J::Running]), T::Running);
        assert_eq!(
            derive(T::Running, false, &[J::Queued]),
            T::Queued,
            "a retry waits again"
        );
        assert_eq!(derive(T::Running, false, &[J::Completed]), T::Completed);
        assert_eq!(
            derive(T::Running, false, &[J::Completed, J::Queued]),
            T::Running
        );
        assert_eq!(
            derive(T::Running, false, &[J::Completed, J::Running]),
            T::Running
        );
        assert_eq!(
            derive(T::Running, false, &[J::Completed, J::Failed]),
            T::Failed
        );
        assert_eq!(
            derive(T::Running, false, &[J::Running, J::Failed]),
            T::Failed
        );
        assert_eq!(
            derive(T::Running, false, &[J::Running, J::Canceled]),
            T::Canceled
        );
        assert_eq!(derive(T::Queued, false, &[]), T::Completed);
    }

    #[test]
    fn an_open_plan_keeps_the_task_from_completing() {
        assert_eq!(derive(T::Queued, true, &[]), T::Queued);
        assert_eq!(derive(T::Running, true, &[J::Completed]), T::Running);
        assert_eq!(
            derive(T::Running, true, &[J::Completed, J::Failed]),
            T::Failed
        );
    }

    #[test]
    fn terminal_states_are_never_left() {
        for t in [T::Completed, T::Failed, T::Canceled, T::Superseded] {
            assert_eq!(derive(t, false, &[J::Queued, J::Running]), t);
        }
    }
}
