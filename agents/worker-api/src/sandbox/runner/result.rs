//! What a run reports: its status, exit code and capped output assembled into the job's
//! result, and the results of jobs that never ran.

use chrono::{DateTime, Utc};
use cynode_contracts::worker::{RunJobResponse, RunStatus, Truncated};
use podman_api::api::Container;
use uuid::Uuid;

use super::logs::{Output, read_output};
use super::sandboxes::SandboxError;
use crate::sandbox::output::CappedStream;
use crate::sandbox::plan::JobPlan;

/// Exit codes a shell gives for a command it cannot find or cannot execute; we report the same
/// when the OCI runtime fails to exec the argv, so callers see one convention.
pub(super) const EXIT_NOT_FOUND: i32 = 127;
pub(super) const EXIT_NOT_EXECUTABLE: i32 = 126;

/// How the container's process ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ending {
    Exited,
    TimedOut,
    Canceled,
    Interrupted,
}

/// What a finished container left: its status, exit code and capped output.
pub(super) struct Collected {
    pub(super) status: RunStatus,
    pub(super) exit_code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) truncated: Truncated,
    pub(super) oom_killed: bool,
}

/// What a job whose argv could not be executed reports, as a shell would have.
pub(super) fn exec_failed(plan: &JobPlan, code: i32) -> Collected {
    let reason = if code == EXIT_NOT_FOUND {
        "command not found"
    } else {
        "permission denied"
    };
    let mut stderr = CappedStream::new(plan.max_output_bytes);
    stderr.push(format!("{}: {reason}\n", plan.command[0]).as_bytes());
    let (stderr, cut) = stderr.finish();
    Collected {
        status: RunStatus::Completed,
        exit_code: code,
        stdout: String::new(),
        stderr,
        truncated: Truncated {
            stdout: false,
            stderr: cut,
        },
        oom_killed: false,
    }
}

/// Reads the exit code and the capped output of an ended container; `None` for a run the
/// shutdown interrupted, which keeps nothing.
pub(super) async fn collect(
    container: &Container,
    ending: Result<Ending, SandboxError>,
    cap: usize,
    output: Option<Output>,
) -> Result<Option<Collected>, SandboxError> {
    let ending = ending?;
    if let Ending::Interrupted = ending {
        return Ok(None);
    }
    let (stdout, stderr) = match output {
        Some(output) => output,
        None => read_output(container, cap, None).await?,
    };
    let state = container.inspect().await?.state;
    let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
    let (status, exit_code) = match ending {
        Ending::TimedOut => (RunStatus::Timeout, -1),
        Ending::Canceled => (RunStatus::Canceled, -1),
        Ending::Exited | Ending::Interrupted => {
            let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
            (RunStatus::Completed, code)
        }
    };
    let (stdout, stdout_cut) = stdout.finish();
    let (stderr, stderr_cut) = stderr.finish();
    Ok(Some(Collected {
        status,
        exit_code,
        stdout,
        stderr,
        truncated: Truncated {
            stdout: stdout_cut,
            stderr: stderr_cut,
        },
        oom_killed,
    }))
}

/// The job's result from what its container left and when it ran.
pub(super) fn response(
    task_id: Uuid,
    job_id: Uuid,
    collected: Collected,
    (started_at, ended_at): (DateTime<Utc>, DateTime<Utc>),
    run_diagnostics: Option<serde_json::Value>,
) -> RunJobResponse {
    RunJobResponse {
        version: cynode_contracts::PAYLOAD_VERSION,
        task_id,
        job_id,
        status: collected.status,
        exit_code: collected.exit_code,
        stdout: collected.stdout,
        stderr: collected.stderr,
        started_at,
        ended_at,
        truncated: collected.truncated,
        sba_result: None,
        artifacts: None,
        run_diagnostics,
        // Known only to the run that created the sandbox, which adds them.
        limits: None,
        oom_killed: collected.oom_killed,
    }
}

/// The result of a job that could not start for a reason of this node, not of the job: it fails
/// with that reason, and nothing was left running.
pub(super) fn refused(plan: &JobPlan, reason: &str) -> RunJobResponse {
    never_ran(
        plan.task_id,
        plan.job_id,
        RunStatus::Failed,
        format!("{reason}\n"),
    )
}

/// The result of a job stopped before its container started: canceled, and nothing ran.
pub fn canceled_before_start(task_id: Uuid, job_id: Uuid) -> RunJobResponse {
    never_ran(task_id, job_id, RunStatus::Canceled, String::new())
}

/// The result of a job whose container never ran: no exit code (-1), and `stderr` its only
/// output.
fn never_ran(task_id: Uuid, job_id: Uuid, status: RunStatus, stderr: String) -> RunJobResponse {
    let now = Utc::now();
    let collected = Collected {
        status,
        exit_code: -1,
        stdout: String::new(),
        stderr,
        truncated: Truncated::default(),
        oom_killed: false,
    };
    response(task_id, job_id, collected, (now, now), None)
}
