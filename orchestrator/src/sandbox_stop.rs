//! Telling nodes to stop the sandboxes of jobs that were canceled, or requeued from a drained
//! node: what the dispatcher, a task cancel and the MCP cancel tool share.

use std::time::Duration;

use cynode_contracts::routes;

use crate::jobs::RunningJob;
use crate::web::error_chain;

/// How long a stop waits for a node. Stopping kills the container, so a healthy node answers
/// well within it; a silent one must not hold the cancel up.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the dispatcher stops a job on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its task was canceled: the node keeps the `canceled` result.
    Cancel,
    /// It runs again elsewhere: the node keeps nothing, so a later delivery there runs it.
    Requeue,
}

/// Asks each node to stop the sandbox of a job that was just canceled, or requeued from a
/// drained node, all at once and each within [`STOP_TIMEOUT`]. Best effort: the change has
/// already been recorded and stands; a node that cannot be told is logged, and its sandbox ends
/// at its timeout.
pub async fn stop_sandboxes(http: &reqwest::Client, running: &[RunningJob], why: Stop) {
    let stops = running.iter().map(|job| async move {
        let path = match why {
            Stop::Cancel => routes::worker::job_stop(job.job_id),
            Stop::Requeue => routes::worker::job_requeue(job.job_id),
        };
        let url = format!("{}{path}", job.url.trim_end_matches('/'));
        let sent = http
            .post(&url)
            .bearer_auth(job.token.expose())
            .timeout(STOP_TIMEOUT)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 404 => {
                // 404: the node never got the job (the dispatch was still on its way); nothing runs.
                tracing::info!(job_id = %job.job_id, node_slug = %job.node_slug, status = %resp.status(), "asked the node to stop the job's sandbox");
            }
            Ok(resp) => {
                tracing::warn!(job_id = %job.job_id, node_slug = %job.node_slug, status = %resp.status(), "the node did not stop the job's sandbox; it ends at its timeout");
            }
            Err(e) => {
                tracing::warn!(job_id = %job.job_id, node_slug = %job.node_slug, error = %error_chain(&e), "cannot reach the node to stop the job's sandbox; it ends at its timeout");
            }
        }
    });
    futures::future::join_all(stops).await;
}
