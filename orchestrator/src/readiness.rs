//! Readiness: the orchestrator is ready when its database answers and an inference path exists
//! (a dispatchable node). `/readyz` says why not; `STATUS=` follows the same state.

use std::time::Duration;

use crate::AppState;
use crate::nodes;

pub const NO_INFERENCE_PATH: &str = "no inference path available (no dispatchable worker node: register and configure a worker node, and have it acknowledge its configuration as applied)";

/// `Ok(n)` with the number of dispatchable nodes, or the reason the service is not ready.
pub async fn check(state: &AppState) -> Result<i64, String> {
    match nodes::dispatchable_count(&state.db, state.config.node_stale_after).await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err("readiness check failed (database error)".to_owned())
        }
        Ok(0) => Err(NO_INFERENCE_PATH.to_owned()),
        Ok(n) => Ok(n),
    }
}

fn status_line(result: &Result<i64, String>) -> String {
    match result {
        Ok(n) => format!("ready: {n} dispatchable node(s)"),
        Err(reason) => format!("not ready: {reason}"),
    }
}

/// Keeps systemd's `STATUS=` in step with readiness: re-checked on every node change and at
/// least every few seconds, sent only when it changes.
pub async fn track_status(state: AppState) {
    let mut last = String::new();
    loop {
        let line = status_line(&check(&state).await);
        if line != last {
            cynode_service_kit::notify::status(&line);
            last = line;
        }
        tokio::select! {
            () = state.node_change.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
