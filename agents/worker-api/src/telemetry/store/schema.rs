//! Opening the database file (its directory and mode, WAL, the busy timeout) and the numbered
//! migrations recorded in `schema_version`.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};

use super::db::{Store, StoreError, timestamp};

pub const DB_DIR: &str = "telemetry";
pub const DB_FILE: &str = "telemetry.db";
/// How long SQLite waits for a lock before a statement fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order; `schema_version.version` is how many have been applied. Never
/// edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the four tables and their indexes.
    "CREATE TABLE node_boot (
         boot_id TEXT PRIMARY KEY,
         booted_at TEXT NOT NULL,
         node_slug TEXT,
         build_version TEXT NOT NULL,
         platform_os TEXT NOT NULL,
         platform_arch TEXT NOT NULL,
         kernel_version TEXT NOT NULL
     );
     CREATE INDEX node_boot_booted ON node_boot (booted_at);
     CREATE TABLE container_inventory (
         container_id TEXT PRIMARY KEY,
         container_name TEXT NOT NULL,
         kind TEXT NOT NULL CHECK (kind IN ('managed', 'sandbox')),
         runtime TEXT NOT NULL,
         image_ref TEXT NOT NULL,
         created_at TEXT NOT NULL,
         last_seen_at TEXT NOT NULL,
         status TEXT NOT NULL
             CHECK (status IN ('created', 'running', 'exited', 'paused', 'unknown')),
         exit_code INTEGER,
         task_id TEXT,
         job_id TEXT,
         labels_json TEXT NOT NULL DEFAULT '{}'
     );
     CREATE INDEX container_inventory_created ON container_inventory (created_at, container_id);
     CREATE INDEX container_inventory_kind ON container_inventory (kind, created_at, container_id);
     CREATE INDEX container_inventory_kind_status
         ON container_inventory (kind, status, created_at, container_id);
     CREATE INDEX container_inventory_status
         ON container_inventory (status, created_at, container_id);
     CREATE INDEX container_inventory_task
         ON container_inventory (task_id, created_at, container_id);
     CREATE INDEX container_inventory_job ON container_inventory (job_id, created_at, container_id);
     CREATE INDEX container_inventory_seen ON container_inventory (last_seen_at);
     CREATE TABLE container_event (
         event_id INTEGER PRIMARY KEY AUTOINCREMENT,
         occurred_at TEXT NOT NULL,
         container_id TEXT NOT NULL,
         action TEXT NOT NULL CHECK (action IN ('create', 'start', 'stop', 'remove')),
         status TEXT NOT NULL,
         exit_code INTEGER,
         task_id TEXT,
         job_id TEXT,
         details_json TEXT NOT NULL DEFAULT '{}'
     );
     CREATE INDEX container_event_container ON container_event (container_id, occurred_at, event_id);
     CREATE INDEX container_event_occurred ON container_event (occurred_at);
     CREATE TABLE log_event (
         log_id INTEGER PRIMARY KEY AUTOINCREMENT,
         occurred_at TEXT NOT NULL,
         source_kind TEXT NOT NULL CHECK (source_kind IN ('service', 'container')),
         source_name TEXT NOT NULL,
         container_id TEXT,
         stream TEXT CHECK (stream IN ('stdout', 'stderr')),
         level TEXT,
         message TEXT NOT NULL,
         fields_json TEXT NOT NULL DEFAULT '{}'
     );
     CREATE INDEX log_event_source ON log_event (source_kind, source_name, occurred_at, log_id);
     CREATE INDEX log_event_container ON log_event (container_id, occurred_at, log_id);
     CREATE INDEX log_event_occurred ON log_event (occurred_at);
     CREATE TABLE maintenance (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         last_vacuum_at TEXT NOT NULL
     );",
];

impl Store {
    /// Opens (creating if needed) `<state_dir>/telemetry/telemetry.db` and applies the missing
    /// migrations. The directory is 0700 and the file 0600 before SQLite writes to it.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let dir = state_dir.join(DB_DIR);
        let dir_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Dir { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(dir_err(&dir))?;
        let path = dir.join(DB_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(dir_err(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(dir_err(&path))?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "the telemetry database is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Applies every migration past the recorded version, each in a transaction with its
    /// `schema_version` row.
    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 version INTEGER NOT NULL,
                 applied_at TEXT NOT NULL
             );",
        )?;
        let applied: i64 = self
            .conn
            .query_row("SELECT version FROM schema_version WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        for (index, sql) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(index + 1).expect("few migrations");
            if version <= applied {
                continue;
            }
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_version (id, version, applied_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                                                applied_at = excluded.applied_at",
                params![version, timestamp(Utc::now())],
            )?;
            tx.commit()?;
            tracing::info!(version, "telemetry database migrated");
        }
        Ok(())
    }

    /// The applied schema version and when it was applied.
    pub fn schema_version(&self) -> Result<(i64, String), StoreError> {
        Ok(self.conn.query_row(
            "SELECT version, applied_at FROM schema_version WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::test_support::{service_log, service_query};
    use super::*;

    #[test]
    fn migrations_are_recorded_once_and_reopening_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (version, applied_at) = store.schema_version().unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(version, 1);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = store
            .conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert!(timeout >= 5000, "{timeout}");
        service_log(&store, Utc::now(), "kept");
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), (1, applied_at));
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert_eq!(store.logs(&service_query()).unwrap().events.len(), 1);
        let path = dir.path().join(DB_DIR).join(DB_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
