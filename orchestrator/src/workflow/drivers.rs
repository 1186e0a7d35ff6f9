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
use tokio::task::JoinSet;
use uuid::Uuid;

use super::engine::{self, Engine};

#[derive(Debug)]
pub struct Drivers {
    /// This process as the holder of workflow leases, unique per start.
    holder: String,
    /// The live drivers by task, each with its wake-up, and their tasks; `None` once shutdown
    /// took them, so that none starts after.
    live: Mutex<Option<Live>>,
}

#[derive(Debug, Default)]
struct Live {
    wakes: HashMap<Uuid, Arc<Notify>>,
    tasks: JoinSet<()>,
}

impl Default for Drivers {
    fn default() -> Self {
        Self {
            holder: format!("orchestrator-{}", Uuid::new_v4()),
            live: Mutex::new(Some(Live::default())),
        }
    }
}

impl Drivers {
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn with_live<T>(&self, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        // A panic elsewhere while the lock was held leaves the map consistent (every change is
        // one call), so a poisoned lock is used as it is.
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.as_mut().map(f)
    }

    /// Wakes the driver of `task_id` if one lives in this process, else starts one (none once
    /// the process stops). A wake that reaches a driver on its way out is not lost for good: the
    /// resume loop starts a new one for a task whose lease is free.
    pub fn kick(&self, engine: &Engine, task_id: Uuid) {
        self.with_live(|live| {
            if let Some(wake) = live.wakes.get(&task_id) {
                wake.notify_one();
                return;
            }
            // Finished drivers are reaped here, so that the set does not grow.
            while live.tasks.try_join_next().is_some() {}
            let wake = Arc::new(Notify::new());
            live.wakes.insert(task_id, wake.clone());
            let engine = engine.clone();
            live.tasks.spawn(async move {
                if let Err(e) = engine::drive(&engine, task_id, &wake).await {
                    tracing::error!(%task_id, error = %e, "workflow driver failed; the task resumes later");
                }
                engine.drivers.left(task_id);
            });
        });
    }

    /// Every live driver looks at its task again (a job that ended in another process tells
    /// nobody here).
    pub fn wake_all(&self) {
        self.with_live(|live| live.wakes.values().for_each(|w| w.notify_one()));
    }

    /// The driver of `task_id` has released its lease and stops.
    fn left(&self, task_id: Uuid) {
        self.with_live(|live| live.wakes.remove(&task_id));
    }

    /// Shutdown: stops every driver where it is; none starts after.
    pub(super) async fn close(&self) {
        let live = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut live) = live {
            live.tasks.shutdown().await;
        }
    }
}
