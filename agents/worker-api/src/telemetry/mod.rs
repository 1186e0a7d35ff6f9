//! Node-local telemetry: the worker API's start and stop, every sandbox container's lifecycle
//! and what its run printed, in SQLite (`<state_dir>/telemetry/telemetry.db`, see [`store`]),
//! served by the Telemetry API ([`routes`]) and kept within its retention ([`maintain`]).
//!
//! This module is the only writer of the database. Writes go through [`Telemetry`], a cheap
//! handle whose calls never fail their caller: a write that fails is logged and dropped, so
//! telemetry never fails a job. A disabled handle (the default) records nothing and the API
//! answers `503`.

pub mod host;
pub mod routes;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::telemetry::{
    BuildInfo, ContainerAction, NodeInfo, PlatformInfo, WORKER_API_SOURCE,
};
use serde_json::{Map, Value};
use tokio::sync::watch;
use uuid::Uuid;

pub use store::{ContainerRef, QueryError, Store, StoreError};

/// How often the retention sweep runs (it also runs at start-up).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The handle every part of the worker records through. Cloning shares the one connection.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    store: Mutex<Store>,
    info: NodeInfo,
    state_dir: PathBuf,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => f
                .debug_struct("Telemetry")
                .field("state_dir", &inner.state_dir)
                .finish_non_exhaustive(),
            None => f.write_str("Telemetry(disabled)"),
        }
    }
}

/// Why the API cannot answer a telemetry query.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("telemetry is not enabled on this worker")]
    Disabled,
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("the telemetry query did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Telemetry {
    /// Opens the database under `state_dir` and records this start as a `node_boot` row.
    /// Blocking: call before the runtime serves requests.
    pub fn open(state_dir: &Path, node_slug: Option<String>) -> Result<Self, StoreError> {
        let store = Store::open(state_dir)?;
        let info = NodeInfo {
            version: PAYLOAD_VERSION,
            node_slug,
            build: BuildInfo {
                build_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            platform: PlatformInfo {
                os: std::env::consts::OS.to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
                kernel_version: host::kernel_version(),
            },
            last_capability_report: None,
        };
        store.record_boot(&store::Boot {
            boot_id: Uuid::new_v4(),
            booted_at: Utc::now(),
            node_slug: info.node_slug.clone(),
            build_version: info.build.build_version.clone(),
            os: info.platform.os.clone(),
            arch: info.platform.arch.clone(),
            kernel_version: info.platform.kernel_version.clone(),
        })?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                store: Mutex::new(store),
                info,
                state_dir: state_dir.to_owned(),
            })),
        })
    }

    /// Records nothing; the API answers `503`.
    pub fn disabled() -> Self {
        Self::default()
    }

    pub fn node_info(&self) -> Option<&NodeInfo> {
        self.inner.as_ref().map(|i| &i.info)
    }

    pub fn state_dir(&self) -> Option<&Path> {
        self.inner.as_ref().map(|i| i.state_dir.as_path())
    }

    /// Runs `write` on a blocking thread; a failure is logged, never returned.
    async fn write<F>(&self, what: &'static str, write: F)
    where
        F: FnOnce(&mut Store) -> Result<(), StoreError> + Send + 'static,
    {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || {
            let mut store = inner.store.lock().unwrap_or_else(PoisonError::into_inner);
            write(&mut store)
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, what, "telemetry not recorded"),
            Err(e) => tracing::warn!(error = %e, what, "telemetry write panicked"),
        }
    }

    /// Runs a query on a blocking thread.
    pub async fn read<T, F>(&self, read: F) -> Result<T, ReadError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, QueryError> + Send + 'static,
    {
        let inner = self.inner.clone().ok_or(ReadError::Disabled)?;
        let answer = tokio::task::spawn_blocking(move || {
            let store = inner.store.lock().unwrap_or_else(PoisonError::into_inner);
            read(&store)
        })
        .await?;
        Ok(answer?)
    }

    /// A log event of the worker API itself (`source_name=worker_api`).
    pub async fn service_log(&self, level: &str, message: &str, fields: Map<String, Value>) {
        let log = store::ServiceLog {
            occurred_at: Utc::now(),
            source_name: WORKER_API_SOURCE.to_owned(),
            level: level.to_owned(),
            message: message.to_owned(),
            fields,
        };
        self.write("service log", move |store| store.record_service_log(&log))
            .await;
    }

    /// One lifecycle step of a container: a `container_event` and its inventory row.
    pub async fn container(
        &self,
        container: &ContainerRef,
        action: ContainerAction,
        exit_code: Option<i32>,
        details: Map<String, Value>,
    ) {
        let (container, at) = (container.clone(), Utc::now());
        self.write("container event", move |store| {
            store.record_container(&container, action, at, exit_code, &details)
        })
        .await;
    }

    /// What a run printed (as the runner kept it, capped), line by line.
    pub async fn output(&self, container: &ContainerRef, stdout: &str, stderr: &str) {
        if stdout.is_empty() && stderr.is_empty() {
            return;
        }
        let (container, at) = (container.clone(), Utc::now());
        let (stdout, stderr) = (stdout.to_owned(), stderr.to_owned());
        self.write("container output", move |store| {
            store
                .record_output(&container, at, &stdout, &stderr)
                .map(drop)
        })
        .await;
    }
}

/// Keeps the database within its retention: a sweep at start-up and every [`SWEEP_EVERY`],
/// and a `VACUUM` when the last one is a day old, until `shutdown` turns true.
pub async fn maintain(telemetry: Telemetry, mut shutdown: watch::Receiver<bool>) {
    let Some(inner) = telemetry.inner.clone() else {
        return;
    };
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let inner = Arc::clone(&inner);
                let swept = tokio::task::spawn_blocking(move || {
                    let store = inner.store.lock().unwrap_or_else(PoisonError::into_inner);
                    let now = Utc::now();
                    let swept = store.sweep(now)?;
                    let vacuumed = store.vacuum_if_due(now)?;
                    Ok::<_, StoreError>((swept, vacuumed))
                })
                .await;
                match swept {
                    Ok(Ok((swept, vacuumed))) => {
                        if swept != store::Swept::default() || vacuumed {
                            tracing::info!(logs = swept.logs, events = swept.events,
                                containers = swept.containers, vacuumed, "telemetry retention");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "telemetry retention failed"),
                    Err(e) => tracing::warn!(error = %e, "telemetry retention panicked"),
                }
            }
            () = async { drop(shutdown.wait_for(|stop| *stop).await) } => return,
        }
    }
}
