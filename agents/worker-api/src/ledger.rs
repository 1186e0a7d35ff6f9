//! Finished results, the one place they are kept.
//!
//! The orchestrator may deliver a job again: its lease expired because it crashed or lost the
//! connection mid-dispatch, while this node went on and finished the run. Running the job twice
//! would repeat whatever it did, so each finished result is kept next to the job's workspace
//! (`<mount_root>/<job_id>/result.json`, outside the sandbox's view) and a repeated delivery gets
//! that result back instead of a new run (see `sandbox::lifecycle`, which also makes a delivery
//! that arrives while the first still runs wait for it).
//!
//! A per-job turn keeps the writer of a job's result (its run) and the retention sweep, which
//! removes the job's directory, apart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cynode_contracts::worker::RunJobResponse;
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read the stored result of job {job_id}: {message}")]
    Unreadable { job_id: Uuid, message: String },
}

/// Where finished results live, and who holds which job's turn right now.
#[derive(Debug, Clone)]
pub struct JobLedger {
    mount_root: PathBuf,
    in_flight: Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Held by a job's run for its whole life, or by the retention sweep while it removes the job's
/// directory; dropping it lets the other in.
#[derive(Debug)]
pub struct JobTurn {
    ledger: JobLedger,
    job_id: Uuid,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for JobTurn {
    fn drop(&mut self) {
        self.guard.take();
        let mut in_flight = self.ledger.in_flight.lock().expect("ledger lock");
        // Only the map itself still refers to the lock: nobody is waiting, forget the job.
        if in_flight
            .get(&self.job_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            in_flight.remove(&self.job_id);
        }
    }
}

impl JobLedger {
    pub fn new(mount_root: PathBuf) -> Self {
        Self {
            mount_root,
            in_flight: Arc::default(),
        }
    }

    pub fn result_path(&self, job_id: Uuid) -> PathBuf {
        self.mount_root.join(job_id.to_string()).join("result.json")
    }

    /// Waits until nobody else holds `job_id`'s turn.
    pub async fn turn(&self, job_id: Uuid) -> JobTurn {
        let lock = {
            let mut in_flight = self.in_flight.lock().expect("ledger lock");
            in_flight.entry(job_id).or_default().clone()
        };
        JobTurn {
            ledger: self.clone(),
            job_id,
            guard: Some(lock.lock_owned().await),
        }
    }

    /// The job's turn if no run holds or awaits it right now; the retention sweep takes it so
    /// that a run starting while the job's directory is removed waits for the removal.
    pub fn try_turn(&self, job_id: Uuid) -> Option<JobTurn> {
        let mut in_flight = self.in_flight.lock().expect("ledger lock");
        if in_flight.contains_key(&job_id) {
            return None;
        }
        let lock = in_flight.entry(job_id).or_default().clone();
        let guard = lock.try_lock_owned().expect("a lock nobody else has seen");
        Some(JobTurn {
            ledger: self.clone(),
            job_id,
            guard: Some(guard),
        })
    }

    pub fn mount_root(&self) -> &std::path::Path {
        &self.mount_root
    }

    /// The job's kept result, if it finished here. Needs no turn: a result is written whole
    /// (see [`Self::record`]), so a reader sees all of it or nothing.
    pub async fn stored(&self, job_id: Uuid) -> Result<Option<RunJobResponse>, LedgerError> {
        let bytes = match tokio::fs::read(self.result_path(job_id)).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LedgerError::Unreadable {
                    job_id,
                    message: e.to_string(),
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LedgerError::Unreadable {
                job_id,
                message: e.to_string(),
            })
    }

    /// Keeps a finished result for repeated deliveries. Written to a temporary file and renamed,
    /// so a crash leaves either the whole result or none. A job stopped before it started has
    /// no directory yet; it gets one for its result.
    pub async fn record(&self, _turn: &JobTurn, result: &RunJobResponse) -> std::io::Result<()> {
        let path = self.result_path(result.job_id);
        let partial = path.with_extension("json.partial");
        let bytes = serde_json::to_vec(result).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&partial, bytes).await?;
        tokio::fs::rename(&partial, &path).await
    }
}
