//! A job's log as server-sent events (`GET /v1/worker/jobs/{job_id}/logs`, framing in
//! `cynode_contracts::logs`), from what the lifecycle says of the job: a live run's lines as
//! its output ([`super::live`]) gets them, or a finished job's stored output.

use cynode_contracts::logs;
use uuid::Uuid;

use super::lifecycle::Followed;
use super::live::stored_lines;

/// Writes the job's log events (`GET /v1/worker/jobs/{job_id}/logs`) to `tx`: a live run's
/// lines from its start as they come, a finished job's stored output, then `end`; stops early
/// when the reader has gone.
pub async fn send_log(job_id: Uuid, followed: Followed, tx: tokio::sync::mpsc::Sender<String>) {
    let line = |(stream, line): (logs::OutputStream, String)| {
        logs::event(logs::EVENT_LINE, &logs::JobLogLine { stream, line })
    };
    let end = match followed {
        Followed::Finished(result) => {
            for event in stored_lines(&result).into_iter().map(line) {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            logs::JobLogEnd {
                job_id,
                status: Some(result.status),
                truncated: result.truncated,
            }
        }
        Followed::Live {
            mut lines,
            mut outcome,
        } => {
            let mut keep_alive =
                tokio::time::interval(std::time::Duration::from_secs(logs::KEEP_ALIVE_SECS));
            keep_alive.reset();
            let mut next = 0;
            let truncated = loop {
                let (batch, closed, truncated) = {
                    let lines = lines.borrow_and_update();
                    let batch: Vec<_> = (next..lines.len())
                        .map(|i| {
                            let (stream, text) = lines.line(i);
                            (stream, text.to_owned())
                        })
                        .collect();
                    (batch, lines.is_closed(), lines.truncated())
                };
                next += batch.len();
                for event in batch.into_iter().map(line) {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                if closed {
                    break truncated;
                }
                tokio::select! {
                    changed = lines.changed() => if changed.is_err() {
                        // The run is gone without closing its output (it cannot, but then
                        // there is nothing more to send).
                        break truncated;
                    },
                    _ = keep_alive.tick() => if tx.send(logs::KEEP_ALIVE.to_owned()).await.is_err() {
                        return;
                    },
                    () = tx.closed() => return,
                }
            };
            let status = match outcome.wait_for(Option::is_some).await {
                Ok(ended) => ended
                    .as_ref()
                    .and_then(|o| o.as_ref().ok())
                    .map(|r| r.status),
                Err(_) => None,
            };
            logs::JobLogEnd {
                job_id,
                status,
                truncated,
            }
        }
    };
    let _ = tx.send(logs::event(logs::EVENT_END, &end)).await;
}
