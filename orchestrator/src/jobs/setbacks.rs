//! A job that did not get a result: back to the queue after a backoff, or failed when its
//! attempts are used up, each time with a setback its owner can read.

use std::time::Duration;

use cynode_contracts::user::{JobFailure, JobStatus, TaskStatus};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::status::{Note, settle};
use crate::error::Result;

/// Cap of every backoff: job retries and node pauses.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The one shape of a job that did not run (`contracts::user::JobFailure`), as its `result`.
pub(super) fn failure(error: &str) -> Value {
    serde_json::to_value(JobFailure::new(error)).expect("a JobFailure is JSON")
}

/// The delay before the `attempts + 1`-th try: `base` doubled per attempt, capped at
/// [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 16) as u32;
    base.saturating_mul(2u32.saturating_pow(exp))
        .min(MAX_BACKOFF)
}

/// A job that did not get a result, and what to say about it.
pub(super) struct Setback<'a> {
    pub(super) job_id: Uuid,
    pub(super) task_id: Uuid,
    /// Whether its attempts are used up.
    pub(super) give_up: bool,
    pub(super) delay: Duration,
    /// For operators (worker URLs, error chains): `jobs.last_error` and the log.
    pub(super) last_error: &'a str,
    /// What the task's owner reads when the job waits again, or when it failed for good.
    pub(super) queued_note: &'a str,
    pub(super) gave_up: &'a str,
}

/// Puts a job back in the queue after a delay, or fails it when its attempts are used up. Runs
/// with the task's jobs locked.
pub(super) async fn requeue_or_fail(
    tx: &mut PgConnection,
    s: Setback<'_>,
) -> Result<(JobStatus, TaskStatus)> {
    let Setback {
        job_id,
        task_id,
        give_up,
        delay,
        last_error,
        queued_note,
        gave_up,
    } = s;
    let status = if give_up {
        JobStatus::Failed
    } else {
        JobStatus::Queued
    };
    let note = if give_up { gave_up } else { queued_note };
    sqlx::query(&format!(
        "UPDATE jobs SET status = $2, lease_id = NULL, lease_expires_at = NULL, last_error = $3,
            next_attempt_at = now() + make_interval(secs => $4),
            result = $5, ended_at = CASE WHEN $6 THEN now() END, {}
         WHERE id = $1",
        push_setback(7)
    ))
    .bind(job_id)
    .bind(status.as_str())
    .bind(last_error)
    .bind(delay.as_secs_f64())
    .bind(give_up.then(|| failure(gave_up)))
    .bind(give_up)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    let task_status = settle(tx, task_id, Note::Set(note)).await?;
    Ok((status, task_status))
}

/// SQL that appends a setback (`why` bound as `$n`) to `jobs.setbacks`, naming the node the job
/// was sent to.
pub(super) fn push_setback(why_param: u8) -> String {
    format!(
        "setbacks = setbacks || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'at', now(), 'why', ${why_param}::text,
            'node', (SELECT n.node_slug FROM nodes n WHERE n.id = jobs.node_id))))"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1), Duration::from_secs(1));
        assert_eq!(backoff(base, 3), Duration::from_secs(4));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }

    #[test]
    fn failures_have_one_shape() {
        assert_eq!(
            failure("x"),
            json!({"version": 1, "status": "failed", "error": "x"})
        );
    }
}
