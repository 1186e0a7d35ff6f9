//! A started container's run: start it, wait for its end, its deadline, a stop or the
//! shutdown, and end it early when one of those comes first.

use podman_api::Podman;
use podman_api::api::Container;
use podman_api::opts::ContainerWaitOpts;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::logs::{Output, followed, read_output};
use super::result::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, Ending};
use super::sandboxes::{SandboxError, Signals, Stop};
use crate::sandbox::live::LiveOutput;

/// Supervises a started container (see [`supervise`]) while its output is followed into
/// `live`. The output is `None` when the run was interrupted (it keeps nothing) or the reader
/// failed (the caller then reads the log file).
pub(super) async fn run_to_end(
    podman: &Podman,
    id: &str,
    deadline: Instant,
    cap: usize,
    signals: &mut Signals,
    live: &LiveOutput,
    job_id: Uuid,
) -> (Result<Ending, SandboxError>, Option<Output>) {
    // Read the output while it is written: the log file on the host is capped and starts
    // afresh when full, so after the exit it may no longer hold the start.
    let (follower, live) = (podman.containers().get(id), live.clone());
    let reader = tokio::spawn(async move { read_output(&follower, cap, Some(&live)).await });
    let ending = supervise(&podman.containers().get(id), deadline, signals).await;
    let output = match ending {
        Ok(Ending::Interrupted) | Err(_) => {
            reader.abort();
            None
        }
        Ok(_) => followed(reader, job_id).await,
    };
    (ending, output)
}

/// Starts the container; `Some(code)` when the runtime could not exec the argv.
pub(super) async fn start(container: &Container) -> Result<Option<i32>, SandboxError> {
    match container.start(None).await {
        Ok(()) => Ok(None),
        Err(e) => exec_failure(&e).map(Some).ok_or(e.into()),
    }
}

/// Waits for the started container's end, its deadline, a stop, or shutdown.
async fn supervise(
    container: &Container,
    deadline: Instant,
    signals: &mut Signals,
) -> Result<Ending, SandboxError> {
    // Without conditions libpod waits for the container to stop. (podman-api 0.10 serialises
    // explicit conditions in a form Podman 4.3 rejects.) Podman polls the state at this
    // interval; its default of 250 ms would add up to that much to every job.
    let exited = wait_opts();
    // Signals first: when one comes together with the exit, `end_early` sees the exit and keeps
    // the run's own result, so the outcome does not depend on which future was polled first.
    tokio::select! {
        biased;
        () = raised(&mut signals.shutdown) => end_early(container, Ending::Interrupted).await,
        stop = stopped(&mut signals.stop) => end_early(container, match stop {
            Stop::Cancel => Ending::Canceled,
            Stop::Requeue => Ending::Interrupted,
        }).await,
        () = tokio::time::sleep_until(deadline) => end_early(container, Ending::TimedOut).await,
        waited = container.wait(&exited) => {
            waited?;
            Ok(Ending::Exited)
        }
    }
}

pub(super) fn wait_opts() -> ContainerWaitOpts {
    ContainerWaitOpts::builder().interval("50ms").build()
}

/// Kills the container for `reason`, unless its process has already ended by itself: then it
/// ran to its end and its own result stands (a shutdown or stop that comes as a job exits must
/// not throw the finished run away).
async fn end_early(container: &Container, reason: Ending) -> Result<Ending, SandboxError> {
    if let Err(e) = container.kill().await {
        // Podman refuses to kill a container that is no longer running.
        let running = container
            .inspect()
            .await?
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        return if running {
            Err(e.into())
        } else {
            Ok(Ending::Exited)
        };
    }
    container.wait(&wait_opts()).await?;
    Ok(reason)
}

/// Resolves once `flag` is true. A sender that is gone counts as raised: the shutdown sender
/// goes only at exit.
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// Resolves with the stop once one is asked for. The stop sender lives as long as its run; one
/// that is gone counts as a cancel.
async fn stopped(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(asked) => asked.unwrap_or(Stop::Cancel),
        Err(_) => Stop::Cancel,
    }
}

/// Podman reports an exec failure of the OCI runtime as an error of the start call; a shell
/// would have said 127 (not found) or 126 (not executable).
fn exec_failure(error: &podman_api::Error) -> Option<i32> {
    let podman_api::Error::Fault { message, .. } = error else {
        return None;
    };
    // Podman's own causes: `define.ErrOCIRuntimeNotFound` and `ErrOCIRuntimePermissionDenied`.
    if message.contains("OCI runtime attempted to invoke a command that was not found") {
        Some(EXIT_NOT_FOUND)
    } else if message.contains("OCI permission denied") {
        Some(EXIT_NOT_EXECUTABLE)
    } else {
        None
    }
}
