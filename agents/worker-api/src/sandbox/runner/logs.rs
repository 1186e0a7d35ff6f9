//! A container's output from its log, each stream capped; followed while the job writes, so
//! that the result keeps the start of each stream and the live log gets every line.

use std::time::Duration;

use cynode_contracts::logs::OutputStream;
use futures::StreamExt;
use podman_api::api::Container;
use podman_api::conn::TtyChunk;
use podman_api::opts::ContainerLogsOpts;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::sandbox::live::LiveOutput;
use crate::sandbox::output::CappedStream;

/// How long the output reader may take to reach the end of the log after the container ended.
const FOLLOW_GRACE: Duration = Duration::from_secs(10);

/// stdout and stderr, each capped.
pub(super) type Output = (CappedStream, CappedStream);
pub(super) type OutputRead = Result<Output, podman_api::Error>;

/// What the output reader of a run got once its container ended; `None` (and a warning) when
/// it failed or did not reach the end in time: the caller then reads the log file instead.
pub(super) async fn followed(mut reader: JoinHandle<OutputRead>, job_id: Uuid) -> Option<Output> {
    let why = match tokio::time::timeout(FOLLOW_GRACE, &mut reader).await {
        Ok(Ok(Ok(output))) => return Some(output),
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => {
            reader.abort();
            format!("no end within {}s of the exit", FOLLOW_GRACE.as_secs())
        }
    };
    tracing::warn!(%job_id, %why, "following the output failed; reading the log file instead");
    None
}

/// The container's output, each stream capped; with `live`, followed as it is written until the
/// container ends, each chunk also going to `live`. Stops early once both streams are full.
pub(super) async fn read_output(
    container: &Container,
    cap: usize,
    live: Option<&LiveOutput>,
) -> OutputRead {
    let mut stdout = CappedStream::new(cap);
    let mut stderr = CappedStream::new(cap);
    let mut logs = container.logs(
        &ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .follow(live.is_some())
            .build(),
    );
    while let Some(chunk) = logs.next().await {
        match chunk? {
            TtyChunk::StdOut(bytes) => {
                stdout.push(&bytes);
                if let Some(live) = live {
                    live.push(OutputStream::Stdout, &bytes);
                }
            }
            TtyChunk::StdErr(bytes) => {
                stderr.push(&bytes);
                if let Some(live) = live {
                    live.push(OutputStream::Stderr, &bytes);
                }
            }
            TtyChunk::StdIn(_) => {}
        }
        if stdout.is_full() && stderr.is_full() {
            break;
        }
    }
    Ok((stdout, stderr))
}
