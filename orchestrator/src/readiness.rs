//! Readiness: the orchestrator is ready when its database answers, a node is dispatchable and
//! (with `PM_REQUIRED`, the default) the Project Manager model was selected and answered its
//! warm-up (`pm`). `/readyz` says which step is missing: `no dispatchable node`,
//! `project manager model <m> not available on any node` or `warming up <m> on <node>`;
//! `STATUS=` follows the same state.

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::nodes;
use crate::pm::{self, ProjectManager};

/// The reason without `PM_REQUIRED`: only a dispatchable node is needed.
pub const NO_INFERENCE_PATH: &str = "no inference path available (no dispatchable worker node: register and configure a worker node, and have it acknowledge its configuration as applied)";

/// How long `/readyz` waits for a selection and warm-up it started itself.
const INLINE_REFRESH: Duration = Duration::from_secs(3);

/// How long readiness waits for the database: a probe must get its answer well before the
/// pool's own acquire timeout when the database is away.
const DATABASE_PROBE: Duration = Duration::from_secs(2);

/// `Ok(n)` with the number of dispatchable nodes, or the reason the service is not ready.
pub async fn check(state: &ProjectManager) -> Result<i64, String> {
    let counted = tokio::time::timeout(
        DATABASE_PROBE,
        nodes::dispatchable_count(&state.db, state.config.node_stale_after),
    )
    .await;
    let count = match counted {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            return Err("database unavailable".to_owned());
        }
        Err(_) => {
            tracing::warn!(timeout = ?DATABASE_PROBE, "readiness check: the database did not answer");
            return Err("database unavailable".to_owned());
        }
    };
    if !state.config.pm_required {
        return if count == 0 {
            Err(NO_INFERENCE_PATH.to_owned())
        } else {
            Ok(count)
        };
    }
    if count == 0 {
        return Err(pm::PmStatus::NoNode.reason().expect("a reason"));
    }
    if state.pm.reason().is_some() {
        // Nodes changed since the tracker last looked, or nobody looked yet: look now, briefly.
        let _ = tokio::time::timeout(INLINE_REFRESH, pm::refresh(state)).await;
    }
    match state.pm.reason() {
        Some(reason) => Err(reason),
        None => Ok(count),
    }
}

fn status_line(result: &Result<i64, String>) -> String {
    match result {
        Ok(n) => format!("ready: {n} dispatchable node(s)"),
        Err(reason) => format!("not ready: {reason}"),
    }
}

/// Keeps the PM selection current and systemd's `STATUS=` in step with readiness: re-checked
/// on every node change and at least every few seconds, sent only when it changes. Ends at
/// `stop`, wherever it is (a warm-up in flight is abandoned).
pub async fn track_status(
    state: ProjectManager,
    node_change: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut last = String::new();
    stop.run_until_cancelled(async {
        loop {
            if state.config.pm_required {
                pm::refresh(&state).await;
            }
            let line = status_line(&check(&state).await);
            if line != last {
                cynode_service_kit::notify::status(&line);
                last = line;
            }
            tokio::select! {
                () = node_change.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    })
    .await;
}
