//! Managed sandboxes: long-lived sandboxes the Project Manager drives through the orchestrator's
//! `sandbox.*` MCP tools (`workflow_mcp_agents.md` §3) with exec and file calls, until it
//! deletes them or they idle out.
//!
//! A managed sandbox is a job's container in all but its command: [`Limits::plan`] checks the
//! request and [`Sandboxes::start_managed`] creates it with the jobs' container spec (hardening,
//! limits, no network, labels, mount root, `/workspace`), running an idle command instead of a
//! job. It holds its id's [`JobTurn`] for its whole life, so no job of that id runs meanwhile
//! and the retention sweep leaves its directory alone. Commands run as Podman execs, one at a
//! time per sandbox; files go in and out through Podman's archive API, which resolves paths
//! inside the container, so a symlink in the workspace cannot lead to the host.

mod files;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cynode_contracts::worker::{
    ManagedSandbox, ManagedSandboxRequest, RunJobRequest, SandboxExecRequest, SandboxExecResponse,
    SandboxLimits, SandboxSpec, Truncated,
};
use futures::StreamExt;
use podman_api::conn::TtyChunk;
use podman_api::opts::{ExecCreateOpts, ExecStartOpts};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::ledger::{JobLedger, JobTurn};
use crate::retention::EmptyWorkspace;
use crate::sandbox::{CappedStream, InvalidJob, Limits, SandboxError, Sandboxes, WORKSPACE_DIR};

pub use files::{FileError, workspace_path};

/// Most managed sandboxes a worker keeps at once.
pub const MAX_MANAGED_SANDBOXES: usize = 4;
/// Idle timeout when the request names none, and the longest one may ask for.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// How often idle sandboxes are looked for.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// What the sandbox runs between execs: nothing, for as long as it lives (its container is
/// removed on delete or idle timeout, never by a deadline).
const IDLE_COMMAND: [&str; 2] = ["sleep", "2147483647"];

/// Why a managed sandbox call was refused or failed; the routes turn each into its status.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    #[error("{0}")]
    BadRequest(String),
    #[error("sandbox {0} already exists on this node (or a job of that id does)")]
    Exists(Uuid),
    #[error("this node already has {MAX_MANAGED_SANDBOXES} managed sandboxes; delete one first")]
    TooMany,
    #[error("sandbox {0} does not exist on this node")]
    Unknown(Uuid),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("Podman failed: {0}")]
    Podman(#[from] podman_api::Error),
}

/// One live managed sandbox.
#[derive(Debug)]
struct Managed {
    task_id: Uuid,
    container: String,
    idle_timeout: Duration,
    last_used: Mutex<Instant>,
    /// Execs run one at a time: a timed-out one is ended by killing every process of the
    /// sandbox but its idle command (see [`Self::kill_execs`]).
    exec_turn: tokio::sync::Mutex<()>,
    /// Held for the sandbox's life: no job of this id runs, the retention sweep skips it.
    _turn: JobTurn,
}

impl Managed {
    fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_since(&self, now: Instant) -> Duration {
        now.saturating_duration_since(
            *self
                .last_used
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// A slot is reserved (`None`) while its container is being created, so that the cap and the
/// id's uniqueness hold for concurrent creates.
type Registry = HashMap<Uuid, Option<Arc<Managed>>>;

/// This worker's managed sandboxes.
#[derive(Clone)]
pub struct ManagedSandboxes {
    sandboxes: Sandboxes,
    limits: Arc<Limits>,
    ledger: JobLedger,
    empty: EmptyWorkspace,
    live: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for ManagedSandboxes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedSandboxes")
            .field("live", &self.registry().len())
            .finish_non_exhaustive()
    }
}

impl ManagedSandboxes {
    pub fn new(
        sandboxes: Sandboxes,
        limits: Arc<Limits>,
        ledger: JobLedger,
        empty: EmptyWorkspace,
    ) -> Self {
        Self {
            sandboxes,
            limits,
            ledger,
            empty,
            live: Arc::default(),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates and starts the sandbox; its `/workspace` is the one a job of that id would get.
    pub async fn create(
        &self,
        request: ManagedSandboxRequest,
    ) -> Result<ManagedSandbox, ManagedError> {
        let idle_timeout = match request.idle_timeout_seconds {
            None => DEFAULT_IDLE_TIMEOUT,
            Some(0) => {
                return Err(ManagedError::BadRequest(
                    "idle_timeout_seconds must be positive".into(),
                ));
            }
            Some(secs) if Duration::from_secs(secs) > MAX_IDLE_TIMEOUT => {
                return Err(ManagedError::BadRequest(format!(
                    "idle_timeout_seconds {secs} exceeds the maximum of {}",
                    MAX_IDLE_TIMEOUT.as_secs()
                )));
            }
            Some(secs) => Duration::from_secs(secs),
        };
        // The jobs' own checks (version, image allowlist, limits) on the idle command.
        let plan = self.limits.plan(RunJobRequest {
            version: request.version,
            task_id: request.task_id,
            job_id: request.sandbox_id,
            sandbox: SandboxSpec {
                image: request.image.unwrap_or_default(),
                command: IDLE_COMMAND.map(str::to_owned).to_vec(),
                env: Default::default(),
                timeout_seconds: None,
                network_policy: None,
                use_inference: false,
                use_mcp: false,
                job_spec_json: None,
                resources: None,
            },
            mcp: None,
        })?;
        let id = request.sandbox_id;
        {
            let mut live = self.registry();
            if live.contains_key(&id) {
                return Err(ManagedError::Exists(id));
            }
            if live.len() >= MAX_MANAGED_SANDBOXES {
                return Err(ManagedError::TooMany);
            }
            live.insert(id, None);
        }
        let managed = match self.start(&plan, idle_timeout).await {
            Ok(managed) => managed,
            Err(e) => {
                self.registry().remove(&id);
                return Err(e);
            }
        };
        // A delete that came while it was being created took its slot: it goes at once.
        let kept = match self.registry().get_mut(&id) {
            Some(slot) => {
                *slot = Some(Arc::clone(&managed));
                true
            }
            None => false,
        };
        if !kept {
            self.remove(id, &managed).await;
            return Err(ManagedError::Unknown(id));
        }
        tracing::info!(task_id = %plan.task_id, sandbox_id = %id, container = %managed.container, "managed sandbox started");
        Ok(ManagedSandbox {
            task_id: plan.task_id,
            sandbox_id: id,
            image: plan.image,
            idle_timeout_seconds: idle_timeout.as_secs(),
            limits: SandboxLimits {
                user_namespaces_denied: self.sandboxes.denies_user_namespaces(),
                ..plan.limits
            },
        })
    }

    async fn start(
        &self,
        plan: &crate::sandbox::JobPlan,
        idle_timeout: Duration,
    ) -> Result<Arc<Managed>, ManagedError> {
        let id = plan.job_id;
        // A job of this id that ran here (its directory) or runs now makes the id taken.
        let turn = self.ledger.try_turn(id).ok_or(ManagedError::Exists(id))?;
        if tokio::fs::try_exists(self.sandboxes.mount_root().join(id.to_string()))
            .await
            .unwrap_or(true)
        {
            return Err(ManagedError::Exists(id));
        }
        let container = match self.sandboxes.start_managed(plan).await {
            Ok(container) => container,
            Err(SandboxError::AlreadyRunning(_)) => return Err(ManagedError::Exists(id)),
            Err(e) => {
                // Its directory may have been made before the failure.
                let _ = tokio::fs::remove_dir_all(self.sandboxes.mount_root().join(id.to_string()))
                    .await;
                return Err(e.into());
            }
        };
        Ok(Arc::new(Managed {
            task_id: plan.task_id,
            container,
            idle_timeout,
            last_used: Mutex::new(Instant::now()),
            exec_turn: tokio::sync::Mutex::new(()),
            _turn: turn,
        }))
    }

    fn get(&self, id: Uuid) -> Result<Arc<Managed>, ManagedError> {
        let managed = self
            .registry()
            .get(&id)
            .cloned()
            .flatten()
            .ok_or(ManagedError::Unknown(id))?;
        managed.touch();
        Ok(managed)
    }

    /// Runs `argv` in the sandbox, output capped like a job's; at its timeout the exec is
    /// killed and `timed_out` set.
    pub async fn exec(
        &self,
        id: Uuid,
        request: SandboxExecRequest,
    ) -> Result<SandboxExecResponse, ManagedError> {
        if request.argv.first().is_none_or(String::is_empty) {
            return Err(ManagedError::BadRequest(
                "argv must be a non-empty argv".into(),
            ));
        }
        if request.argv.iter().any(|a| a.contains('\0')) {
            return Err(ManagedError::BadRequest("argv contains a NUL byte".into()));
        }
        let requested = request
            .timeout_seconds
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        let timeout = match self.limits.timeout_secs(requested) {
            Ok(secs) => Duration::from_secs(secs),
            Err(InvalidJob::TimeoutTooLong { requested, max }) => {
                return Err(ManagedError::BadRequest(format!(
                    "timeout_seconds {requested} exceeds this node's maximum of {max} seconds"
                )));
            }
            Err(other) => return Err(other.into()),
        };
        let cwd = match &request.cwd {
            Some(cwd) => {
                workspace_path(cwd).map_err(|e| ManagedError::BadRequest(format!("cwd: {e}")))?
            }
            None => WORKSPACE_DIR.to_owned(),
        };
        let managed = self.get(id)?;
        let _turn = managed.exec_turn.lock().await;
        let container = self.sandboxes.podman().containers().get(&managed.container);
        let exec = container
            .create_exec(
                &ExecCreateOpts::builder()
                    .command(&request.argv)
                    .attach_stdout(true)
                    .attach_stderr(true)
                    .working_dir(&cwd)
                    .build(),
            )
            .await?;
        let cap = self.limits.max_output_bytes();
        let (mut stdout, mut stderr) = (CappedStream::new(cap), CappedStream::new(cap));
        let read = async {
            let opts = ExecStartOpts::builder().build();
            let Some(mut stream) = exec.start(&opts).await? else {
                return Ok::<_, podman_api::Error>(());
            };
            while let Some(chunk) = stream.next().await {
                match chunk? {
                    TtyChunk::StdOut(bytes) => stdout.push(&bytes),
                    TtyChunk::StdErr(bytes) => stderr.push(&bytes),
                    TtyChunk::StdIn(_) => {}
                }
            }
            Ok(())
        };
        let timed_out = match tokio::time::timeout(timeout, read).await {
            Ok(read) => {
                read?;
                false
            }
            Err(_) => {
                self.kill_execs(&managed).await;
                true
            }
        };
        let exit_code = if timed_out {
            -1
        } else {
            exit_code(&exec).await?
        };
        managed.touch();
        let (stdout, stdout_cut) = stdout.finish();
        let (stderr, stderr_cut) = stderr.finish();
        Ok(SandboxExecResponse {
            exit_code,
            stdout,
            stderr,
            truncated: Truncated {
                stdout: stdout_cut,
                stderr: stderr_cut,
            },
            timed_out,
        })
    }

    /// Ends a timed-out exec. Podman has no call that kills an exec, and this worker has no
    /// capability to signal the sandbox's processes from the host; so a second exec sends
    /// SIGKILL to every process of the sandbox that it may signal, which `kill(-1, …)` takes to
    /// mean all but itself and the namespace's init (the idle command). Execs of a sandbox run
    /// one at a time, so this ends exactly the one that timed out, with its children.
    async fn kill_execs(&self, managed: &Managed) {
        let container = self.sandboxes.podman().containers().get(&managed.container);
        let killed = async {
            let exec = container
                .create_exec(
                    &ExecCreateOpts::builder()
                        .command(["sh", "-c", "kill -KILL -1"])
                        .attach_stdout(true)
                        .attach_stderr(true)
                        .build(),
                )
                .await?;
            if let Some(mut stream) = exec.start(&ExecStartOpts::builder().build()).await? {
                while stream.next().await.is_some() {}
            }
            Ok::<_, podman_api::Error>(())
        };
        if let Err(e) = killed.await {
            tracing::error!(container = %managed.container, error = %e, "cannot kill a timed-out exec");
        }
    }

    /// Writes `bytes` to `path` under `/workspace` (parent directories made as needed).
    pub async fn put_file(&self, id: Uuid, path: &str, bytes: &[u8]) -> Result<(), ManagedError> {
        let path = workspace_path(path)?;
        let managed = self.get(id)?;
        let container = self.sandboxes.podman().containers().get(&managed.container);
        files::put(&container, &path, bytes).await?;
        Ok(())
    }

    /// The bytes of the regular file `path` under `/workspace`.
    pub async fn get_file(&self, id: Uuid, path: &str) -> Result<Vec<u8>, ManagedError> {
        let path = workspace_path(path)?;
        let managed = self.get(id)?;
        let container = self.sandboxes.podman().containers().get(&managed.container);
        Ok(files::get(&container, &path).await?)
    }

    /// Removes the sandbox and its directory; nothing to do if it does not exist.
    pub async fn destroy(&self, id: Uuid) {
        let removed = self.registry().remove(&id).flatten();
        if let Some(managed) = removed {
            self.remove(id, &managed).await;
        }
    }

    async fn remove(&self, id: Uuid, managed: &Managed) {
        self.sandboxes
            .remove_managed(managed.task_id, id, &managed.container, &self.empty)
            .await;
        tracing::info!(task_id = %managed.task_id, sandbox_id = %id, "managed sandbox removed");
    }

    /// Removes the managed sandboxes an earlier worker on this mount root left: their idle
    /// timers died with it, and nobody holds their ids any more. Returns how many.
    pub async fn sweep_leftovers(&self) -> Result<usize, podman_api::Error> {
        let left = self.sandboxes.managed_leftovers().await?;
        for (task_id, sandbox_id, container) in &left {
            tracing::info!(%task_id, %sandbox_id, "removing a managed sandbox an earlier worker left");
            self.sandboxes
                .remove_managed(*task_id, *sandbox_id, container, &self.empty)
                .await;
        }
        Ok(left.len())
    }

    /// Removes sandboxes idle past their timeout, every [`IDLE_SWEEP`], until `shutdown`; then
    /// removes all that are left (they belong to this worker's lifetime).
    pub async fn maintain(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(IDLE_SWEEP);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.remove_idle().await,
                () = async { drop(shutdown.wait_for(|stop| *stop).await) } => break,
            }
        }
        let all: Vec<Uuid> = self.registry().keys().copied().collect();
        for id in all {
            self.destroy(id).await;
        }
    }

    async fn remove_idle(&self) {
        let now = Instant::now();
        let expired: Vec<(Uuid, Arc<Managed>)> = {
            let mut live = self.registry();
            let ids: Vec<Uuid> = live
                .iter()
                .filter_map(|(id, m)| {
                    m.as_ref()
                        .filter(|m| m.idle_since(now) > m.idle_timeout)
                        .map(|_| *id)
                })
                .collect();
            ids.into_iter()
                .filter_map(|id| live.remove(&id).flatten().map(|m| (id, m)))
                .collect()
        };
        for (id, managed) in expired {
            tracing::info!(sandbox_id = %id, idle_timeout = ?managed.idle_timeout, "managed sandbox idle too long");
            self.remove(id, &managed).await;
        }
    }
}

/// The exit code of an exec whose output stream has ended; Podman may take a moment to record
/// it after the stream closes.
async fn exit_code(exec: &podman_api::api::Exec) -> Result<i32, podman_api::Error> {
    for _ in 0..100 {
        let inspected = exec.inspect().await?;
        if inspected["Running"] != serde_json::Value::Bool(true) {
            let code = inspected["ExitCode"].as_i64().unwrap_or(-1);
            return Ok(i32::try_from(code).unwrap_or(-1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(-1)
}
