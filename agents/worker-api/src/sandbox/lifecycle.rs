//! One lifecycle for every job on this node, whoever asks: a delivery (`jobs:run`), a stop
//! (the task was canceled), the worker's shutdown, and the start-up sweep of what an earlier
//! worker instance left behind.
//!
//! A job is *live* while one driver task owns it: it is in the registry (`live`, keyed by job
//! id) from the moment it is admitted until its outcome is published, and at most one entry
//! exists per job, so a job never has two runs here. Everyone else who asks about a live job
//! joins it and gets the same outcome: a repeated delivery waits for the run instead of
//! starting a second one; a stop raises the run's stop flag and waits for it to end. Once a
//! job is not live, the ledger ([`JobLedger`]) is the only place its result exists.
//!
//! A log reader ([`Lifecycle::follow`]) subscribes to a live run's output (`super::live`, owned
//! by the run and closed before its outcome is published) or reads a finished job's result.
//!
//! A driver first looks in the ledger (a result there is the answer: nothing runs again), then
//! runs, resumes or skips the sandbox, records the result in the ledger, and only then leaves
//! the registry, so that whoever no longer finds it live finds its result. It holds the job's
//! ledger turn throughout, which keeps the retention sweep off a live job's directory.
//!
//! Ends: a run that finishes, times out or is stopped (`canceled`) has a result, which is kept.
//! A run the shutdown catches still running is killed and *interrupted*: nothing is kept, and
//! the orchestrator delivers the job again. One that has already exited when the shutdown (or a
//! stop) comes has finished, and its result is kept like any other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cynode_contracts::worker::RunJobResponse;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::live::{Lines, LiveOutput};
use super::plan::JobPlan;
use super::runner::{
    Adoptable, RunEnd, SandboxError, Sandboxes, Signals, Stop, canceled_before_start,
};
use crate::ledger::{JobLedger, JobTurn, LedgerError};
use crate::metrics::METRICS;

/// Why a job has no result to give. Cloned to everyone waiting for the same run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("job {job_id} belongs to task {owner} on this node, not to task {asked_for}")]
    OtherTask {
        job_id: Uuid,
        owner: Uuid,
        asked_for: Uuid,
    },
    #[error(
        "job {0} was stopped before it finished (the worker API shut down, or the orchestrator \
         moved it to another node): it has no result on this node and may run again"
    )]
    Interrupted(Uuid),
    #[error("job {0} is not known on this node: it never ran here, or its result has expired")]
    Unknown(Uuid),
    #[error("the run of job {0} ended without a result; see the worker's log")]
    Abandoned(Uuid),
    #[error(transparent)]
    Ledger(Arc<LedgerError>),
    #[error(transparent)]
    Sandbox(Arc<SandboxError>),
}

type Outcome = Result<RunJobResponse, RunError>;

/// How a driver gets its run.
enum Start {
    /// A delivery: run the plan (unless the ledger already has the job's result).
    Fresh(Box<JobPlan>),
    /// A container an earlier worker left: see it to its end.
    Adopted(Adoptable),
}

#[derive(Debug)]
struct LiveRun {
    task_id: Uuid,
    /// Set by a stop; the run ends as it says unless it has already ended.
    stop: watch::Sender<Option<Stop>>,
    /// `Some` once the run has ended.
    outcome: watch::Sender<Option<Outcome>>,
    /// What the run has printed so far, as lines, for the live log stream; closed before the
    /// outcome is published.
    output: LiveOutput,
}

impl LiveRun {
    async fn outcome(&self) -> Outcome {
        let mut outcome = self.outcome.subscribe();
        let ended = outcome
            .wait_for(Option::is_some)
            .await
            .expect("the run holds its own sender");
        ended.clone().expect("waited for it")
    }
}

type Registry = Arc<Mutex<HashMap<Uuid, Arc<LiveRun>>>>;

/// What a reader of a job's log gets.
#[derive(Debug)]
pub enum Followed {
    /// The job is live: its lines so far and to come (closed when the run has ended), and its
    /// outcome once published.
    Live {
        lines: watch::Receiver<Lines>,
        outcome: watch::Receiver<Option<Outcome>>,
    },
    /// The job has finished: its stored result.
    Finished(Box<RunJobResponse>),
}

/// The node's jobs: the registry of live runs and everything that starts or ends one.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    sandboxes: Sandboxes,
    ledger: JobLedger,
    /// Output cap of runs taken over from an earlier worker (a delivery brings its own).
    max_output_bytes: usize,
    live: Registry,
    shutdown: watch::Receiver<bool>,
    /// Every driver holds a clone (inside its `Lifecycle`); the server waits until all are
    /// gone, so that even runs nobody waits for have removed their containers before exit.
    _running: mpsc::Sender<()>,
}

impl Lifecycle {
    pub fn new(
        sandboxes: Sandboxes,
        ledger: JobLedger,
        max_output_bytes: usize,
        shutdown: watch::Receiver<bool>,
        running: mpsc::Sender<()>,
    ) -> Self {
        Self {
            sandboxes,
            ledger,
            max_output_bytes,
            live: Registry::default(),
            shutdown,
            _running: running,
        }
    }

    pub fn sandboxes(&self) -> &Sandboxes {
        &self.sandboxes
    }

    /// A delivery of `plan`: its result, whether it runs now, ran before, or is running for an
    /// earlier delivery (then this one waits for that run).
    pub async fn deliver(&self, plan: JobPlan) -> Outcome {
        let (job_id, task_id) = (plan.job_id, plan.task_id);
        let run = self
            .join_or_start(job_id, task_id, Start::Fresh(Box::new(plan)))
            .await?;
        let result = run.outcome().await?;
        if result.task_id != task_id {
            return Err(RunError::OtherTask {
                job_id,
                owner: result.task_id,
                asked_for: task_id,
            });
        }
        Ok(result)
    }

    /// Stops a job: a live run is killed and ends `canceled`, or for [`Stop::Requeue`]
    /// interrupted with nothing kept (either way with its own result, if it ended first); a
    /// finished job's stored result is returned unchanged. Idempotent.
    pub async fn stop(&self, job_id: Uuid, why: Stop) -> Outcome {
        let live = self.registry().get(&job_id).cloned();
        if let Some(run) = live {
            tracing::info!(%job_id, task_id = %run.task_id, ?why, "stopping the job");
            // The first stop decides: a cancel is not turned into a requeue or back.
            run.stop.send_if_modified(|stop| {
                let first = stop.is_none();
                stop.get_or_insert(why);
                first
            });
            return run.outcome().await;
        }
        // Not live: its result is in the ledger, or it never ran here. A delivery that arrives
        // after this answer runs the job; the orchestrator stops only jobs it already canceled,
        // so no such delivery is sent, and one still in flight records nothing there.
        match self.ledger.stored(job_id).await {
            Ok(Some(result)) => Ok(result),
            Ok(None) => Err(RunError::Unknown(job_id)),
            Err(e) => Err(RunError::Ledger(Arc::new(e))),
        }
    }

    /// A job's output for the live log stream: the live run's lines, or a finished job's result.
    pub async fn follow(&self, job_id: Uuid) -> Result<Followed, RunError> {
        let live = self.registry().get(&job_id).cloned();
        if let Some(run) = live {
            return Ok(Followed::Live {
                lines: run.output.subscribe(),
                outcome: run.outcome.subscribe(),
            });
        }
        match self.ledger.stored(job_id).await {
            Ok(Some(result)) => Ok(Followed::Finished(Box::new(result))),
            Ok(None) => Err(RunError::Unknown(job_id)),
            Err(e) => Err(RunError::Ledger(Arc::new(e))),
        }
    }

    /// Takes over what an earlier instance of this worker (same mount root) left on the Podman
    /// socket, before any delivery is served: a run that exited is collected into the ledger, a
    /// plain run still going is waited for (a delivery of it joins), and one that cannot be
    /// seen to its end (never started, or an inference job whose socket died with that worker)
    /// is removed without a result, so the job may run again. Returns how many were found.
    pub async fn adopt_leftovers(&self) -> Result<usize, podman_api::Error> {
        let leftovers = self.sandboxes.leftovers(None).await?;
        let found = leftovers.len();
        for leftover in leftovers {
            let (job_id, task_id) = (leftover.job_id, leftover.task_id);
            match leftover.adoptable() {
                Ok(adoptable) => {
                    tracing::info!(%job_id, %task_id, "adopting a sandbox an earlier worker left");
                    if let Err(e) = self
                        .join_or_start(job_id, task_id, Start::Adopted(adoptable))
                        .await
                    {
                        tracing::error!(%job_id, error = %e, "cannot adopt the sandbox");
                    }
                }
                Err(leftover) => {
                    tracing::warn!(%job_id, %task_id, "removing an unfinished sandbox an earlier worker left; the job was interrupted and may run again");
                    self.sandboxes.discard(&leftover).await;
                }
            }
        }
        Ok(found)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<LiveRun>>> {
        // A panic elsewhere never leaves the map half-changed: every change is one call.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job's live run, joined if there is one, else started with `start`.
    async fn join_or_start(
        &self,
        job_id: Uuid,
        task_id: Uuid,
        start: Start,
    ) -> Result<Arc<LiveRun>, RunError> {
        if let Some(run) = self.joined(job_id, task_id)? {
            return Ok(run);
        }
        // Nobody else can start this job while we wait: a driver holds the turn until it has
        // left the registry, and we register before letting the turn go.
        let turn = self.ledger.turn(job_id).await;
        if let Some(run) = self.joined(job_id, task_id)? {
            return Ok(run);
        }
        let cap = match &start {
            Start::Fresh(plan) => plan.max_output_bytes,
            Start::Adopted(_) => self.max_output_bytes,
        };
        let run = Arc::new(LiveRun {
            task_id,
            stop: watch::Sender::new(None),
            outcome: watch::Sender::new(None),
            output: LiveOutput::new(cap),
        });
        {
            let mut live = self.registry();
            live.insert(job_id, Arc::clone(&run));
            METRICS.set_running(live.len());
        }
        let driver = Driver {
            lifecycle: self.clone(),
            job_id,
            run: Arc::clone(&run),
            published: false,
        };
        tokio::spawn(driver.drive(turn, start));
        Ok(run)
    }

    /// The job's live run, if any; a run of another task is a conflict.
    fn joined(&self, job_id: Uuid, task_id: Uuid) -> Result<Option<Arc<LiveRun>>, RunError> {
        match self.registry().get(&job_id) {
            Some(run) if run.task_id != task_id => Err(RunError::OtherTask {
                job_id,
                owner: run.task_id,
                asked_for: task_id,
            }),
            other => Ok(other.cloned()),
        }
    }
}

/// Owns one live run. However the driver ends (a panic included), dropping it takes the run
/// out of the registry and publishes an outcome, so nobody waits for a run nobody drives.
struct Driver {
    lifecycle: Lifecycle,
    job_id: Uuid,
    run: Arc<LiveRun>,
    published: bool,
}

impl Driver {
    async fn drive(mut self, turn: JobTurn, start: Start) {
        let outcome = self.conclude(&turn, start).await;
        self.publish(outcome);
        drop(turn);
    }

    /// Leaves the registry, then tells everyone waiting; the result is already in the ledger.
    /// The live output is closed first, so a log reader has every line before the end.
    fn publish(&mut self, outcome: Outcome) {
        self.run.output.close(outcome.as_ref().ok());
        {
            let mut live = self.lifecycle.registry();
            live.remove(&self.job_id);
            METRICS.set_running(live.len());
        }
        self.run.outcome.send_replace(Some(outcome));
        self.published = true;
    }

    async fn conclude(&self, turn: &JobTurn, start: Start) -> Outcome {
        let job_id = self.job_id;
        let lifecycle = &self.lifecycle;
        let stored = lifecycle
            .ledger
            .stored(job_id)
            .await
            .map_err(|e| RunError::Ledger(Arc::new(e)))?;
        if let Some(result) = stored {
            tracing::info!(%job_id, "repeated delivery: returning the earlier result");
            if let Start::Adopted(adoptable) = start {
                // The earlier worker recorded the result but died before removing its sandbox.
                lifecycle.sandboxes.discard(&adoptable.into()).await;
            }
            return Ok(result);
        }
        let mut signals = Signals {
            stop: self.run.stop.subscribe(),
            shutdown: lifecycle.shutdown.clone(),
        };
        let admitted = chrono::Utc::now();
        let fresh = matches!(start, Start::Fresh(_));
        let end = match start {
            Start::Fresh(plan) => {
                let stop = *signals.stop.borrow();
                if stop == Some(Stop::Cancel) {
                    tracing::info!(%job_id, "stopped before its sandbox started");
                    Ok(RunEnd::Finished(Box::new(canceled_before_start(
                        plan.task_id,
                        job_id,
                    ))))
                } else if stop == Some(Stop::Requeue) || *signals.shutdown.borrow() {
                    Ok(RunEnd::Interrupted)
                } else {
                    self.run_fresh(&plan, &mut signals).await
                }
            }
            Start::Adopted(leftover) => {
                let sandboxes = &lifecycle.sandboxes;
                sandboxes
                    .resume(
                        leftover,
                        lifecycle.max_output_bytes,
                        &mut signals,
                        &self.run.output,
                    )
                    .await
            }
        };
        match end {
            Ok(RunEnd::Finished(result)) => {
                if fresh {
                    METRICS.run_ended(admitted, &result);
                }
                if let Err(e) = lifecycle.ledger.record(turn, &result).await {
                    tracing::error!(%job_id, error = %e, "cannot keep the job's result; a repeated delivery would run it again");
                }
                Ok(*result)
            }
            Ok(RunEnd::Interrupted) => Err(RunError::Interrupted(job_id)),
            Err(e) => Err(RunError::Sandbox(Arc::new(e))),
        }
    }

    /// Runs the plan. If the job's container or pod name is taken although no run of ours has
    /// it, an earlier worker on this mount root left it: its run is taken over if it can be
    /// seen to its end, else removed and the job run afresh. A name held by anything else
    /// (another worker's) stays a conflict.
    async fn run_fresh(
        &self,
        plan: &JobPlan,
        signals: &mut Signals,
    ) -> Result<RunEnd, SandboxError> {
        let sandboxes = &self.lifecycle.sandboxes;
        let output = &self.run.output;
        match sandboxes.run(plan, signals, output).await {
            Err(SandboxError::AlreadyRunning(job_id)) => {
                let leftover = sandboxes
                    .leftovers(Some(job_id))
                    .await?
                    .into_iter()
                    .find(|l| l.task_id == plan.task_id);
                let Some(leftover) = leftover else {
                    return Err(SandboxError::AlreadyRunning(job_id));
                };
                match leftover.adoptable() {
                    Ok(adoptable) => {
                        tracing::info!(%job_id, "a delivery found its job's sandbox from an earlier worker; waiting for it");
                        sandboxes
                            .resume(adoptable, plan.max_output_bytes, signals, output)
                            .await
                    }
                    Err(leftover) => {
                        sandboxes.discard(&leftover).await;
                        sandboxes.run(plan, signals, output).await
                    }
                }
            }
            other => other,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.published {
            tracing::error!(job_id = %self.job_id, "a job's run ended without an outcome");
            self.publish(Err(RunError::Abandoned(self.job_id)));
        }
    }
}
