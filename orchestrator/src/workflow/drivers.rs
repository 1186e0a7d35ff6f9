//! This process's workflow drivers: at most one per task, each with a wake-up of its own.
//!
//! A driver is live from the moment it is registered to the moment it has released its lease
//! and left the registry. [`Drivers::kick`] starts one for a task that has none here, and only
//! wakes the live one otherwise, so a job's end wakes exactly its task's driver and never starts a
//! second driver to lose the lease race against the first. Across processes the lease in
//! `task_workflow_leases` still decides who drives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::engine::{self, Engine};

#[derive(Debug)]
pub struct Drivers {
    /// This process as the holder of workflow leases, unique per start.
    holder: String,
    /// The live drivers by task, each with its wake-up.
    live: Mutex<HashMap<Uuid, Arc<Notify>>>,
    /// The process's stop: drivers stop where they are and release their leases, and none
    /// starts after.
    stop: CancellationToken,
    /// The process's tasks, which the drivers join so that the shutdown waits for their leases'
    /// release.
    tasks: TaskTracker,
}

impl Drivers {
    pub fn new(stop: CancellationToken, tasks: TaskTracker) -> Self {
        Self {
            holder: format!("orchestrator-{}", Uuid::new_v4()),
            live: Mutex::default(),
            stop,
            tasks,
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Notify>>> {
        // Every change of the map is one call, so a panic elsewhere cannot leave it half done.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the driver of `task_id` if one lives in this process, else starts one (none once
    /// the process stops). A wake that reaches a driver on its way out is not lost for good: the
    /// resume loop starts a new one for a task whose lease is free.
    pub fn kick(&self, engine: &Engine, task_id: Uuid) {
        let mut live = self.live();
        if self.stop.is_cancelled() {
            return;
        }
        if let Some(wake) = live.get(&task_id) {
            wake.notify_one();
            return;
        }
        let wake = Arc::new(Notify::new());
        live.insert(task_id, wake.clone());
        let engine = engine.clone();
        self.tasks.spawn(async move {
            if let Err(e) = engine::drive(&engine, task_id, &wake).await {
                tracing::error!(%task_id, error = %e, "workflow driver failed; the task resumes later");
            }
            engine.drivers.live().remove(&task_id);
        });
    }

    /// Every live driver looks at its task again (a job that ended in another process tells
    /// nobody here).
    pub fn wake_all(&self) {
        self.live().values().for_each(|w| w.notify_one());
    }
}
