//! The telemetry database, `<state_dir>/telemetry/telemetry.db` (SQLite, WAL, 0600): schema and
//! migrations, the writes the worker makes, the bounded queries the API answers and the
//! retention sweep. Synchronous; [`super::Telemetry`] runs it on blocking threads.
//!
//! Timestamps are stored as RFC 3339 text in UTC with microseconds and a `Z`
//! ([`timestamp`]), so that text order is time order and the indexes serve ranges. Every query
//! has a `LIMIT` and uses an index; pages are keyset pages (`page_token` names the last row),
//! so a row is in exactly one page even while rows are added.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::telemetry::{
    Container, ContainerAction, ContainerDetail, ContainerEvent, ContainerKind, ContainerList,
    ContainerStatus, ContainersQuery, DEFAULT_CONTAINER_LIMIT, DEFAULT_LOG_LIMIT, LimitedBy,
    LogEvent, LogPage, LogStream, LogTruncation, LogsQuery, MAX_CONTAINER_EVENTS,
    MAX_CONTAINER_LIMIT, MAX_LOG_BYTES, MAX_LOG_LIMIT, MAX_RESPONSE_BYTES, SourceKind,
};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::{Map, Value};
use uuid::Uuid;

pub const DB_DIR: &str = "telemetry";
pub const DB_FILE: &str = "telemetry.db";
/// How long SQLite waits for a lock before a statement fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long each kind of row is kept.
pub const LOG_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);
pub const EVENT_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// Inventory rows not seen for this long go, unless the container is running.
pub const INVENTORY_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// How often the database file is compacted.
pub const VACUUM_EVERY: chrono::TimeDelta = chrono::TimeDelta::days(1);
/// Boot records kept.
const KEEP_BOOTS: i64 = 100;
/// Rows one retention `DELETE` removes at most, so a sweep never holds the lock for long.
const DELETE_BATCH: i64 = 5000;

/// Most output lines recorded per container run (stdout and stderr together); the rest are
/// counted in one closing event.
pub const MAX_LINES_PER_RUN: usize = 2000;
/// Longest recorded line (bytes); a longer one is cut at a character boundary.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("telemetry directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("telemetry database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("telemetry database: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why a query has no answer: the client's mistake (400) or the store's (500).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for QueryError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The time format of every stored timestamp.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

/// One start of the worker API on this node.
#[derive(Debug, Clone)]
pub struct Boot {
    pub boot_id: Uuid,
    pub booted_at: DateTime<Utc>,
    pub node_slug: Option<String>,
    pub build_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
}

/// A container as the worker knows it when it records a step.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    pub kind: ContainerKind,
    pub image_ref: String,
    pub task_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub labels: BTreeMap<String, String>,
}

/// A service's log event.
#[derive(Debug, Clone)]
pub struct ServiceLog {
    pub occurred_at: DateTime<Utc>,
    pub source_name: String,
    pub level: String,
    pub message: String,
    pub fields: Map<String, Value>,
}

/// What a retention sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub logs: usize,
    pub events: usize,
    pub containers: usize,
}

#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

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

    pub fn record_boot(&self, boot: &Boot) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO node_boot (boot_id, booted_at, node_slug, build_version, platform_os,
                                    platform_arch, kernel_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                boot.boot_id.to_string(),
                timestamp(boot.booted_at),
                boot.node_slug,
                boot.build_version,
                boot.os,
                boot.arch,
                boot.kernel_version
            ],
        )?;
        Ok(())
    }

    pub fn record_service_log(&self, log: &ServiceLog) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO log_event (occurred_at, source_kind, source_name, level, message,
                                    fields_json)
             VALUES (?1, 'service', ?2, ?3, ?4, ?5)",
            params![
                timestamp(log.occurred_at),
                log.source_name,
                log.level,
                log.message,
                serde_json::to_string(&log.fields)?
            ],
        )?;
        Ok(())
    }

    /// Records one lifecycle step: a `container_event` row, and the inventory row inserted or
    /// brought up to date (its status follows the step; a removal leaves the last state, but a
    /// removed container is no longer running).
    pub fn record_container(
        &mut self,
        container: &ContainerRef,
        action: ContainerAction,
        at: DateTime<Utc>,
        exit_code: Option<i32>,
        details: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let status = match action {
            ContainerAction::Create => ContainerStatus::Created,
            ContainerAction::Start => ContainerStatus::Running,
            ContainerAction::Stop | ContainerAction::Remove => ContainerStatus::Exited,
        };
        let (task_id, job_id) = (
            container.task_id.map(|id| id.to_string()),
            container.job_id.map(|id| id.to_string()),
        );
        let at = timestamp(at);
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO container_inventory (container_id, container_name, kind, runtime,
                 image_ref, created_at, last_seen_at, status, exit_code, task_id, job_id,
                 labels_json)
             VALUES (?1, ?2, ?3, 'podman', ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (container_id) DO UPDATE SET
                 last_seen_at = excluded.last_seen_at,
                 status = CASE WHEN ?11 AND status NOT IN ('running', 'paused') THEN status
                               ELSE excluded.status END,
                 exit_code = COALESCE(excluded.exit_code, exit_code),
                 image_ref = CASE WHEN image_ref = '' THEN excluded.image_ref ELSE image_ref END,
                 task_id = COALESCE(task_id, excluded.task_id),
                 job_id = COALESCE(job_id, excluded.job_id)",
            params![
                container.id,
                container.name,
                container.kind.as_str(),
                container.image_ref,
                at,
                status.as_str(),
                exit_code,
                task_id,
                job_id,
                serde_json::to_string(&container.labels)?,
                action == ContainerAction::Remove,
            ],
        )?;
        let status: String = tx.query_row(
            "SELECT status FROM container_inventory WHERE container_id = ?1",
            [&container.id],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO container_event (occurred_at, container_id, action, status, exit_code,
                                          task_id, job_id, details_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                at,
                container.id,
                action.as_str(),
                status,
                exit_code,
                task_id,
                job_id,
                serde_json::to_string(details)?
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records what a run printed, line by line, stamped `at` (the run's end: the worker keeps
    /// no time per line). At most [`MAX_LINES_PER_RUN`] lines of at most [`MAX_LINE_BYTES`];
    /// when lines are left out, one last event says how many. Returns the lines recorded.
    pub fn record_output(
        &mut self,
        container: &ContainerRef,
        at: DateTime<Utc>,
        stdout: &str,
        stderr: &str,
    ) -> Result<usize, StoreError> {
        let at = timestamp(at);
        let fields = |job: bool| {
            let mut fields = Map::new();
            if job {
                if let Some(task) = container.task_id {
                    fields.insert("task_id".into(), task.to_string().into());
                }
                if let Some(job) = container.job_id {
                    fields.insert("job_id".into(), job.to_string().into());
                }
            }
            fields
        };
        let tx = self.conn.transaction()?;
        let mut recorded = 0;
        let mut dropped = 0usize;
        {
            let mut insert = tx.prepare(
                "INSERT INTO log_event (occurred_at, source_kind, source_name, container_id,
                                        stream, level, message, fields_json)
                 VALUES (?1, 'container', ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (stream, text) in [(LogStream::Stdout, stdout), (LogStream::Stderr, stderr)] {
                for line in text.lines() {
                    if recorded == MAX_LINES_PER_RUN {
                        dropped += 1;
                        continue;
                    }
                    let (line, cut) = cut_at_char(line, MAX_LINE_BYTES);
                    let mut fields = fields(true);
                    if cut {
                        fields.insert("truncated".into(), true.into());
                    }
                    insert.execute(params![
                        at,
                        container.name,
                        container.id,
                        stream.as_str(),
                        Option::<&str>::None,
                        line,
                        serde_json::to_string(&fields)?
                    ])?;
                    recorded += 1;
                }
            }
            if dropped > 0 {
                let mut fields = fields(true);
                fields.insert("lines_dropped".into(), dropped.into());
                insert.execute(params![
                    at,
                    container.name,
                    container.id,
                    Option::<&str>::None,
                    "warn",
                    format!("{dropped} more output lines were not recorded"),
                    serde_json::to_string(&fields)?
                ])?;
            }
        }
        tx.commit()?;
        Ok(recorded)
    }

    /// `GET containers`: newest first (by creation, then id), filtered, one page.
    pub fn containers(&self, query: &ContainersQuery) -> Result<ContainerList, QueryError> {
        let limit = page_limit(query.limit, DEFAULT_CONTAINER_LIMIT, MAX_CONTAINER_LIMIT)?;
        let (sql, args) = containers_statement(query, limit)?;
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(args), container_row)?;
        let mut containers = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for row in rows {
            let container = row?;
            let size = serde_json::to_vec(&container).map_or(0, |v| v.len()) + 1;
            if containers.len() == limit as usize
                || (!containers.is_empty() && bytes + size > MAX_RESPONSE_BYTES - 4096)
            {
                more = true;
                break;
            }
            bytes += size;
            containers.push(container);
        }
        let next_page_token = more
            .then(|| containers.last())
            .flatten()
            .map(|c: &Container| {
                PageKey::encode(CONTAINERS_TOKEN, &timestamp(c.created_at), &c.container_id)
            });
        Ok(ContainerList {
            version: PAYLOAD_VERSION,
            containers,
            next_page_token,
        })
    }

    /// `GET containers/{id}`: the row and its latest events, or `None`.
    pub fn container(&self, id: &str) -> Result<Option<ContainerDetail>, StoreError> {
        let container = self
            .conn
            .query_row(
                &format!(
                    "SELECT {CONTAINER_COLUMNS} FROM container_inventory WHERE container_id = ?1"
                ),
                [id],
                container_row,
            )
            .optional()?;
        let Some(container) = container else {
            return Ok(None);
        };
        let mut statement = self.conn.prepare(
            "SELECT occurred_at, container_id, action, status, exit_code, task_id, job_id,
                    details_json
             FROM (SELECT * FROM container_event WHERE container_id = ?1
                   ORDER BY occurred_at DESC, event_id DESC LIMIT ?2)
             ORDER BY occurred_at, event_id",
        )?;
        let events = statement
            .query_map(params![id, MAX_CONTAINER_EVENTS], event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(ContainerDetail {
            version: PAYLOAD_VERSION,
            container,
            events,
        }))
    }

    /// `GET logs`: oldest first, one page of at most `limit` events and [`MAX_LOG_BYTES`].
    pub fn logs(&self, query: &LogsQuery) -> Result<LogPage, QueryError> {
        let limit = page_limit(query.limit, DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT)?;
        let (sql, args) = logs_statement(query, limit)?;
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(params_from_iter(args), log_row)?;
        let mut events: Vec<(i64, LogEvent)> = Vec::new();
        let mut bytes = 0;
        let mut limited_by = LimitedBy::None;
        for row in rows {
            let (id, event) = row?;
            if events.len() == limit as usize {
                limited_by = LimitedBy::Count;
                break;
            }
            let size = serde_json::to_vec(&event).map_or(0, |v| v.len()) + 1;
            if !events.is_empty() && bytes + size > MAX_LOG_BYTES {
                limited_by = LimitedBy::Bytes;
                break;
            }
            bytes += size;
            events.push((id, event));
        }
        let next_page_token = match (limited_by, events.last()) {
            (LimitedBy::None, _) | (_, None) => None,
            (_, Some((id, last))) => Some(PageKey::encode(
                LOGS_TOKEN,
                &timestamp(last.occurred_at),
                &id.to_string(),
            )),
        };
        Ok(LogPage {
            version: PAYLOAD_VERSION,
            events: events.into_iter().map(|(_, e)| e).collect(),
            truncated: LogTruncation {
                limited_by,
                max_bytes: MAX_LOG_BYTES as u64,
            },
            next_page_token,
        })
    }

    /// Deletes what is past its retention as of `now`: log events after 7 days, container
    /// events after 30, inventory rows not seen for 30 days unless running, and all but the
    /// latest boots. In batches, each its own statement.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<Swept, StoreError> {
        let batched = |sql: &str, cutoff: DateTime<Utc>| -> Result<usize, StoreError> {
            let cutoff = timestamp(cutoff);
            let mut total = 0;
            loop {
                let removed = self.conn.execute(sql, params![cutoff, DELETE_BATCH])?;
                total += removed;
                if removed < DELETE_BATCH as usize {
                    return Ok(total);
                }
            }
        };
        let logs = batched(SWEEP_LOGS, now - LOG_RETENTION)?;
        let events = batched(SWEEP_EVENTS, now - EVENT_RETENTION)?;
        let containers = batched(SWEEP_INVENTORY, now - INVENTORY_RETENTION)?;
        self.conn.execute(
            "DELETE FROM node_boot WHERE boot_id NOT IN
                 (SELECT boot_id FROM node_boot ORDER BY booted_at DESC LIMIT ?1)",
            [KEEP_BOOTS],
        )?;
        Ok(Swept {
            logs,
            events,
            containers,
        })
    }

    /// `VACUUM`s when the last one is a day old (or there was none); true if it ran.
    pub fn vacuum_if_due(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let last: Option<String> = self
            .conn
            .query_row(
                "SELECT last_vacuum_at FROM maintenance WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let due = match last.as_deref().map(parse_time) {
            Some(Ok(last)) => now - last >= VACUUM_EVERY,
            _ => true,
        };
        if !due {
            return Ok(false);
        }
        self.conn.execute_batch("VACUUM")?;
        self.conn.execute(
            "INSERT INTO maintenance (id, last_vacuum_at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET last_vacuum_at = excluded.last_vacuum_at",
            [timestamp(now)],
        )?;
        Ok(true)
    }
}

/// The statement of one page of `GET containers`: `limit + 1` rows, to tell whether more follow.
fn containers_statement(
    query: &ContainersQuery,
    limit: u32,
) -> Result<(String, Vec<Sql>), QueryError> {
    let mut clauses = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    if let Some(kind) = query.kind {
        clauses.push("kind = ?");
        args.push(Sql::Text(kind.as_str().into()));
    }
    if let Some(status) = query.status {
        clauses.push("status = ?");
        args.push(Sql::Text(status.as_str().into()));
    }
    if let Some(task) = query.task_id {
        clauses.push("task_id = ?");
        args.push(Sql::Text(task.to_string()));
    }
    if let Some(job) = query.job_id {
        clauses.push("job_id = ?");
        args.push(Sql::Text(job.to_string()));
    }
    if let Some(token) = &query.page_token {
        let (created_at, id) = PageKey::decode(token, CONTAINERS_TOKEN)?;
        clauses.push("(created_at, container_id) < (?, ?)");
        args.push(Sql::Text(created_at));
        args.push(Sql::Text(id));
    }
    args.push(Sql::Integer(i64::from(limit) + 1));
    let sql = format!(
        "SELECT {CONTAINER_COLUMNS} FROM container_inventory {}
             ORDER BY created_at DESC, container_id DESC LIMIT ?",
        where_clause(&clauses)
    );
    Ok((sql, args))
}

/// The statement of one page of `GET logs` (`limit + 1` rows); refuses a query without a
/// source or with an empty time range.
fn logs_statement(query: &LogsQuery, limit: u32) -> Result<(String, Vec<Sql>), QueryError> {
    let mut clauses = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    match (
        query.source_kind,
        query.source_name.as_deref(),
        query.container_id.as_deref(),
    ) {
        (Some(SourceKind::Service), Some(name), None) if !name.is_empty() => {
            clauses.push("source_kind = 'service' AND source_name = ?");
            args.push(Sql::Text(name.into()));
        }
        (Some(SourceKind::Container), None, Some(id)) if !id.is_empty() => {
            clauses.push("container_id = ? AND source_kind = 'container'");
            args.push(Sql::Text(id.into()));
        }
        _ => {
            return Err(QueryError::Invalid(
                "logs needs either source_kind=service&source_name=… or \
                     source_kind=container&container_id=…"
                    .into(),
            ));
        }
    }
    if let (Some(since), Some(until)) = (query.since, query.until)
        && since >= until
    {
        return Err(QueryError::Invalid(format!(
            "since ({}) must be before until ({})",
            timestamp(since),
            timestamp(until)
        )));
    }
    if let Some(stream) = query.stream {
        clauses.push("stream = ?");
        args.push(Sql::Text(stream.as_str().into()));
    }
    if let Some(since) = query.since {
        clauses.push("occurred_at >= ?");
        args.push(Sql::Text(timestamp(since)));
    }
    if let Some(until) = query.until {
        clauses.push("occurred_at < ?");
        args.push(Sql::Text(timestamp(until)));
    }
    if let Some(token) = &query.page_token {
        let (occurred_at, id) = PageKey::decode(token, LOGS_TOKEN)?;
        let id: i64 = id
            .parse()
            .map_err(|_| QueryError::Invalid(BAD_TOKEN.into()))?;
        clauses.push("(occurred_at, log_id) > (?, ?)");
        args.push(Sql::Text(occurred_at));
        args.push(Sql::Integer(id));
    }
    args.push(Sql::Integer(i64::from(limit) + 1));
    let sql = format!(
        "SELECT log_id, occurred_at, source_kind, source_name, container_id, stream, level,
                    message, fields_json
             FROM log_event {} ORDER BY occurred_at, log_id LIMIT ?",
        where_clause(&clauses)
    );
    Ok((sql, args))
}

/// The retention deletes: one batch (`?2` rows) of what is older than `?1`.
const SWEEP_LOGS: &str = "DELETE FROM log_event WHERE log_id IN
     (SELECT log_id FROM log_event WHERE occurred_at < ?1 LIMIT ?2)";
const SWEEP_EVENTS: &str = "DELETE FROM container_event WHERE event_id IN
     (SELECT event_id FROM container_event WHERE occurred_at < ?1 LIMIT ?2)";
const SWEEP_INVENTORY: &str = "DELETE FROM container_inventory WHERE container_id IN
     (SELECT container_id FROM container_inventory
      WHERE last_seen_at < ?1 AND status <> 'running' LIMIT ?2)";

const CONTAINER_COLUMNS: &str = "container_id, container_name, kind, runtime, image_ref, \
     created_at, last_seen_at, status, exit_code, task_id, job_id, labels_json";

fn where_clause(clauses: &[&str]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

/// The page size: `asked`, else `default`; 0 is refused, more than `max` is clamped to it.
fn page_limit(asked: Option<u32>, default: u32, max: u32) -> Result<u32, QueryError> {
    match asked {
        None => Ok(default),
        Some(0) => Err(QueryError::Invalid("limit must be at least 1".into())),
        Some(n) => Ok(n.min(max)),
    }
}

/// A column that must hold one of our words; anything else is a corrupt row.
fn word<T>(text: String, parse: impl Fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unexpected value `{text}`").into(),
        )
    })
}

fn uuid(text: Option<String>) -> Option<Uuid> {
    text.and_then(|t| Uuid::parse_str(&t).ok())
}

fn json_object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

fn container_row(row: &Row<'_>) -> rusqlite::Result<Container> {
    Ok(Container {
        container_id: row.get(0)?,
        container_name: row.get(1)?,
        kind: word(row.get(2)?, |k| match k {
            "managed" => Some(ContainerKind::Managed),
            "sandbox" => Some(ContainerKind::Sandbox),
            _ => None,
        })?,
        runtime: row.get(3)?,
        image_ref: row.get(4)?,
        created_at: parse_time(&row.get::<_, String>(5)?)?,
        last_seen_at: parse_time(&row.get::<_, String>(6)?)?,
        status: ContainerStatus::normalise(&row.get::<_, String>(7)?),
        exit_code: row.get(8)?,
        task_id: uuid(row.get(9)?),
        job_id: uuid(row.get(10)?),
        labels: serde_json::from_str(&row.get::<_, String>(11)?).unwrap_or_default(),
    })
}

fn event_row(row: &Row<'_>) -> rusqlite::Result<ContainerEvent> {
    Ok(ContainerEvent {
        occurred_at: parse_time(&row.get::<_, String>(0)?)?,
        container_id: row.get(1)?,
        action: word(row.get(2)?, |a| match a {
            "create" => Some(ContainerAction::Create),
            "start" => Some(ContainerAction::Start),
            "stop" => Some(ContainerAction::Stop),
            "remove" => Some(ContainerAction::Remove),
            _ => None,
        })?,
        status: ContainerStatus::normalise(&row.get::<_, String>(3)?),
        exit_code: row.get(4)?,
        task_id: uuid(row.get(5)?),
        job_id: uuid(row.get(6)?),
        details: json_object(&row.get::<_, String>(7)?),
    })
}

fn log_row(row: &Row<'_>) -> rusqlite::Result<(i64, LogEvent)> {
    let event = LogEvent {
        occurred_at: parse_time(&row.get::<_, String>(1)?)?,
        source_kind: word(row.get(2)?, |k| match k {
            "service" => Some(SourceKind::Service),
            "container" => Some(SourceKind::Container),
            _ => None,
        })?,
        source_name: row.get(3)?,
        container_id: row.get(4)?,
        stream: row
            .get::<_, Option<String>>(5)?
            .map(|s| {
                word(s, |s| match s {
                    "stdout" => Some(LogStream::Stdout),
                    "stderr" => Some(LogStream::Stderr),
                    _ => None,
                })
            })
            .transpose()?,
        level: row.get(6)?,
        message: row.get(7)?,
        fields: json_object(&row.get::<_, String>(8)?),
    };
    Ok((row.get(0)?, event))
}

const CONTAINERS_TOKEN: &str = "c1";
const LOGS_TOKEN: &str = "l1";
const BAD_TOKEN: &str = "page_token is not one this endpoint issued";

/// An opaque page token: base64url of `<kind>\n<timestamp>\n<id>`, the sort key of a page's
/// last row.
struct PageKey;

impl PageKey {
    fn encode(kind: &str, at: &str, id: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{kind}\n{at}\n{id}"))
    }

    fn decode(token: &str, kind: &str) -> Result<(String, String), QueryError> {
        let bad = || QueryError::Invalid(BAD_TOKEN.into());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '\n');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(at), Some(id))
                if k == kind && !id.is_empty() && DateTime::parse_from_rfc3339(at).is_ok() =>
            {
                Ok((at.to_owned(), id.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, and whether it was cut.
fn cut_at_char(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeDelta;

    use super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn sandbox(id: &str, task: Uuid, job: Uuid) -> ContainerRef {
        ContainerRef {
            id: id.to_owned(),
            name: format!("cynodeai-job-{job}"),
            kind: ContainerKind::Sandbox,
            image_ref: "localhost/cynode-sandbox:latest".into(),
            task_id: Some(task),
            job_id: Some(job),
            labels: BTreeMap::from([("cynodeai.job_id".to_owned(), job.to_string())]),
        }
    }

    fn step(store: &mut Store, c: &ContainerRef, action: ContainerAction, at: DateTime<Utc>) {
        store
            .record_container(c, action, at, None, &Map::new())
            .unwrap();
    }

    fn service_log(store: &Store, at: DateTime<Utc>, message: &str) {
        store
            .record_service_log(&ServiceLog {
                occurred_at: at,
                source_name: "worker_api".into(),
                level: "info".into(),
                message: message.into(),
                fields: Map::new(),
            })
            .unwrap();
    }

    fn service_query() -> LogsQuery {
        LogsQuery {
            source_kind: Some(SourceKind::Service),
            source_name: Some("worker_api".into()),
            ..LogsQuery::default()
        }
    }

    fn invalid<T: std::fmt::Debug>(result: Result<T, QueryError>) -> String {
        match result {
            Err(QueryError::Invalid(detail)) => detail,
            other => panic!("expected a client error, got {other:?}"),
        }
    }

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

    #[test]
    fn container_pages_hold_every_row_exactly_once_newest_first() {
        let (_dir, mut store) = open();
        let base = Utc::now() - TimeDelta::hours(1);
        let task = Uuid::new_v4();
        let mut ids = Vec::new();
        for i in 0..23 {
            let id = format!("{i:064x}");
            // Pairs share a creation time, so the id must break the tie.
            let at = base + TimeDelta::seconds(i / 2);
            step(
                &mut store,
                &sandbox(&id, task, Uuid::new_v4()),
                ContainerAction::Create,
                at,
            );
            ids.push(id);
        }
        let mut seen = Vec::new();
        let mut query = ContainersQuery {
            limit: Some(5),
            ..ContainersQuery::default()
        };
        let mut pages = 0;
        loop {
            let page = store.containers(&query).unwrap();
            assert!(page.containers.len() <= 5);
            seen.extend(page.containers.into_iter().map(|c| c.container_id));
            pages += 1;
            match page.next_page_token {
                Some(token) => query.page_token = Some(token),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        assert_eq!(seen.len(), 23, "{seen:?}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
        ids.reverse();
        assert_eq!(seen, ids, "newest first, ties by id");
    }

    #[test]
    fn container_filters_and_lifecycle_steps() {
        let (_dir, mut store) = open();
        let (task, job) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let ran = sandbox("a1", task, job);
        step(&mut store, &ran, ContainerAction::Create, now);
        step(&mut store, &ran, ContainerAction::Start, now);
        store
            .record_container(&ran, ContainerAction::Stop, now, Some(3), &Map::new())
            .unwrap();
        step(&mut store, &ran, ContainerAction::Remove, now);
        let other = sandbox("b2", Uuid::new_v4(), Uuid::new_v4());
        step(&mut store, &other, ContainerAction::Create, now);
        step(&mut store, &other, ContainerAction::Start, now);

        let by_job = store
            .containers(&ContainersQuery {
                job_id: Some(job),
                ..ContainersQuery::default()
            })
            .unwrap();
        assert_eq!(by_job.containers.len(), 1);
        let row = &by_job.containers[0];
        assert_eq!(
            (row.status, row.exit_code, row.task_id),
            (ContainerStatus::Exited, Some(3), Some(task))
        );
        assert_eq!(row.labels["cynodeai.job_id"], job.to_string());
        let running = store
            .containers(&ContainersQuery {
                status: Some(ContainerStatus::Running),
                kind: Some(ContainerKind::Sandbox),
                ..ContainersQuery::default()
            })
            .unwrap();
        assert_eq!(running.containers.len(), 1);
        assert_eq!(running.containers[0].container_id, "b2");
        assert!(
            store
                .containers(&ContainersQuery {
                    kind: Some(ContainerKind::Managed),
                    ..ContainersQuery::default()
                })
                .unwrap()
                .containers
                .is_empty()
        );

        let detail = store.container("a1").unwrap().unwrap();
        let actions: Vec<_> = detail.events.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                ContainerAction::Create,
                ContainerAction::Start,
                ContainerAction::Stop,
                ContainerAction::Remove
            ]
        );
        assert_eq!(detail.events[2].exit_code, Some(3));
        assert!(detail.events.iter().all(|e| e.job_id == Some(job)));
        assert!(store.container("nope").unwrap().is_none());
    }

    #[test]
    fn limits_default_clamp_and_refuse_zero() {
        assert_eq!(page_limit(None, 100, 1000).unwrap(), 100);
        assert_eq!(page_limit(Some(7), 100, 1000).unwrap(), 7);
        assert_eq!(page_limit(Some(u32::MAX), 100, 1000).unwrap(), 1000);
        invalid(page_limit(Some(0), 100, 1000));

        let (_dir, mut store) = open();
        let now = Utc::now();
        let task = Uuid::new_v4();
        for i in 0..(MAX_CONTAINER_LIMIT + 2) {
            let c = sandbox(&format!("c{i:05}"), task, Uuid::new_v4());
            step(&mut store, &c, ContainerAction::Create, now);
        }
        let page = store
            .containers(&ContainersQuery {
                limit: Some(50_000),
                ..ContainersQuery::default()
            })
            .unwrap();
        assert_eq!(page.containers.len(), MAX_CONTAINER_LIMIT as usize);
        assert!(page.next_page_token.is_some());
        let default = store.containers(&ContainersQuery::default()).unwrap();
        assert_eq!(default.containers.len(), DEFAULT_CONTAINER_LIMIT as usize);
        invalid(store.containers(&ContainersQuery {
            limit: Some(0),
            ..ContainersQuery::default()
        }));
        let detail = invalid(store.containers(&ContainersQuery {
            page_token: Some("bm9wZQ".into()),
            ..ContainersQuery::default()
        }));
        assert!(detail.contains("page_token"), "{detail}");
    }

    #[test]
    fn logs_filter_by_time_and_page_without_gaps_or_repeats() {
        let (_dir, store) = open();
        let base = Utc::now() - TimeDelta::minutes(10);
        for i in 0..30 {
            // Three events share each instant.
            service_log(&store, base + TimeDelta::seconds(i / 3), &format!("m{i}"));
        }
        let all = store.logs(&service_query()).unwrap();
        assert_eq!(all.events.len(), 30);
        assert_eq!(all.truncated.limited_by, LimitedBy::None);
        assert!(all.next_page_token.is_none());

        // since is inclusive, until exclusive: seconds 2..5 hold m6..m14.
        let window = store
            .logs(&LogsQuery {
                since: Some(base + TimeDelta::seconds(2)),
                until: Some(base + TimeDelta::seconds(5)),
                ..service_query()
            })
            .unwrap();
        let messages: Vec<_> = window.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            (6..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );

        let mut query = LogsQuery {
            limit: Some(4),
            ..service_query()
        };
        let mut seen = Vec::new();
        loop {
            let page = store.logs(&query).unwrap();
            seen.extend(page.events.iter().map(|e| e.message.clone()));
            match page.next_page_token {
                Some(token) => {
                    assert_eq!(page.truncated.limited_by, LimitedBy::Count);
                    query.page_token = Some(token);
                }
                None => break,
            }
        }
        assert_eq!(seen, (0..30).map(|i| format!("m{i}")).collect::<Vec<_>>());

        let other = store
            .logs(&LogsQuery {
                source_name: Some("someone_else".into()),
                ..service_query()
            })
            .unwrap();
        assert!(other.events.is_empty());
    }

    #[test]
    fn bad_log_queries_are_the_clients_mistake() {
        let (_dir, store) = open();
        let now = Utc::now();
        for query in [
            LogsQuery::default(),
            LogsQuery {
                source_kind: Some(SourceKind::Service),
                ..LogsQuery::default()
            },
            LogsQuery {
                source_kind: Some(SourceKind::Container),
                source_name: Some("worker_api".into()),
                ..LogsQuery::default()
            },
            LogsQuery {
                since: Some(now),
                until: Some(now),
                ..service_query()
            },
            LogsQuery {
                since: Some(now),
                until: Some(now - TimeDelta::seconds(1)),
                ..service_query()
            },
            LogsQuery {
                limit: Some(0),
                ..service_query()
            },
            LogsQuery {
                page_token: Some("garbage!".into()),
                ..service_query()
            },
        ] {
            invalid(store.logs(&query));
        }
        // A containers token is not a logs token.
        let (_dir, mut store) = open();
        for id in ["x1", "x2"] {
            step(
                &mut store,
                &sandbox(id, Uuid::nil(), Uuid::nil()),
                ContainerAction::Create,
                now,
            );
        }
        let token = store
            .containers(&ContainersQuery {
                limit: Some(1),
                ..ContainersQuery::default()
            })
            .unwrap()
            .next_page_token
            .unwrap();
        invalid(store.logs(&LogsQuery {
            page_token: Some(token),
            ..service_query()
        }));
    }

    #[test]
    fn output_is_recorded_by_line_capped_and_pages_stop_at_a_mebibyte() {
        let (_dir, mut store) = open();
        let c = sandbox("out1", Uuid::new_v4(), Uuid::new_v4());
        let stdout: String = (0..MAX_LINES_PER_RUN + 5)
            .map(|i| format!("line {i}\n"))
            .collect();
        let recorded = store
            .record_output(&c, Utc::now(), &stdout, "oops\n")
            .unwrap();
        assert_eq!(recorded, MAX_LINES_PER_RUN);
        let query = LogsQuery {
            source_kind: Some(SourceKind::Container),
            container_id: Some("out1".into()),
            limit: Some(MAX_LOG_LIMIT),
            ..LogsQuery::default()
        };
        let page = store.logs(&query).unwrap();
        assert_eq!(page.events.len(), MAX_LINES_PER_RUN + 1);
        assert_eq!(page.events[0].message, "line 0");
        assert_eq!(page.events[0].stream, Some(LogStream::Stdout));
        assert_eq!(
            page.events[0].fields["job_id"],
            c.job_id.unwrap().to_string()
        );
        let last = page.events.last().unwrap();
        assert_eq!(
            last.fields["lines_dropped"], 6,
            "5 stdout lines and stderr's one"
        );
        let stderr = store
            .logs(&LogsQuery {
                stream: Some(LogStream::Stderr),
                ..query.clone()
            })
            .unwrap();
        assert!(stderr.events.is_empty(), "stderr came after the cap");

        // Long lines: cut to MAX_LINE_BYTES, and a page ends before passing 1 MiB.
        let c = sandbox("out2", Uuid::new_v4(), Uuid::new_v4());
        let long = format!("{}\n", "é".repeat(MAX_LINE_BYTES));
        store
            .record_output(&c, Utc::now(), &long.repeat(100), "")
            .unwrap();
        let query = LogsQuery {
            container_id: Some("out2".into()),
            ..query
        };
        let page = store.logs(&query).unwrap();
        assert_eq!(page.truncated.limited_by, LimitedBy::Bytes);
        assert!(page.events[0].message.len() <= MAX_LINE_BYTES);
        assert_eq!(page.events[0].fields["truncated"], true);
        let size = serde_json::to_vec(&page.events).unwrap().len();
        assert!(size <= MAX_LOG_BYTES, "{size}");
        let rest = store
            .logs(&LogsQuery {
                page_token: page.next_page_token.clone(),
                ..query
            })
            .unwrap();
        assert_eq!(page.events.len() + rest.events.len(), 100);
    }

    #[test]
    fn retention_removes_old_rows_and_keeps_new_and_running_ones() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        let old = |days| now - TimeDelta::days(days) - TimeDelta::minutes(1);
        service_log(&store, old(7), "old log");
        service_log(&store, old(6), "recent log");
        let gone = sandbox("gone", Uuid::new_v4(), Uuid::new_v4());
        step(&mut store, &gone, ContainerAction::Create, old(31));
        step(&mut store, &gone, ContainerAction::Stop, old(30));
        let running = sandbox("running", Uuid::new_v4(), Uuid::new_v4());
        step(&mut store, &running, ContainerAction::Create, old(40));
        step(&mut store, &running, ContainerAction::Start, old(40));
        let fresh = sandbox("fresh", Uuid::new_v4(), Uuid::new_v4());
        step(&mut store, &fresh, ContainerAction::Create, old(31));
        step(&mut store, &fresh, ContainerAction::Stop, old(2));

        let swept = store.sweep(now).unwrap();
        assert_eq!(
            swept,
            Swept {
                logs: 1,
                // gone's two, running's two, fresh's create.
                events: 5,
                containers: 1
            }
        );
        let logs: Vec<_> = store
            .logs(&service_query())
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(logs, ["recent log"]);
        let left: HashSet<_> = store
            .containers(&ContainersQuery::default())
            .unwrap()
            .containers
            .into_iter()
            .map(|c| c.container_id)
            .collect();
        assert_eq!(
            left,
            HashSet::from(["running".to_owned(), "fresh".to_owned()])
        );
        assert_eq!(store.container("fresh").unwrap().unwrap().events.len(), 1);
        assert_eq!(store.sweep(now).unwrap(), Swept::default());

        assert!(store.vacuum_if_due(now).unwrap());
        assert!(!store.vacuum_if_due(now + TimeDelta::hours(23)).unwrap());
        assert!(store.vacuum_if_due(now + TimeDelta::hours(25)).unwrap());
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn assert_indexed(store: &Store, (sql, args): (String, Vec<Sql>)) {
        let mut statement = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let plan: Vec<String> = statement
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN") || step.contains("USING")),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{sql}: {plan:?}"
        );
    }

    /// Every query the API makes is answered from an index, in index order: never a scan or
    /// a sort of a whole table.
    #[test]
    fn queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let token = PageKey::encode(CONTAINERS_TOKEN, "2026-01-01T00:00:00.000000Z", "abc");
        let id = Some(Uuid::nil());
        for query in [
            ContainersQuery::default(),
            ContainersQuery {
                status: Some(ContainerStatus::Running),
                page_token: Some(token),
                ..ContainersQuery::default()
            },
            ContainersQuery {
                job_id: id,
                ..ContainersQuery::default()
            },
            ContainersQuery {
                task_id: id,
                ..ContainersQuery::default()
            },
            ContainersQuery {
                kind: Some(ContainerKind::Sandbox),
                ..ContainersQuery::default()
            },
            ContainersQuery {
                kind: Some(ContainerKind::Sandbox),
                status: Some(ContainerStatus::Exited),
                ..ContainersQuery::default()
            },
        ] {
            assert_indexed(&store, containers_statement(&query, 10).unwrap());
        }
        let token = PageKey::encode(LOGS_TOKEN, "2026-01-01T00:00:00.000000Z", "7");
        let since = Some(Utc::now() - chrono::TimeDelta::days(1));
        for query in [
            LogsQuery {
                source_kind: Some(SourceKind::Service),
                source_name: Some("worker_api".into()),
                since,
                page_token: Some(token),
                ..LogsQuery::default()
            },
            LogsQuery {
                source_kind: Some(SourceKind::Container),
                container_id: Some("c".into()),
                stream: Some(LogStream::Stdout),
                until: since,
                ..LogsQuery::default()
            },
        ] {
            assert_indexed(&store, logs_statement(&query, 10).unwrap());
        }
        let t = Sql::Text("2026-01-01T00:00:00.000000Z".into());
        for sql in [SWEEP_LOGS, SWEEP_EVENTS, SWEEP_INVENTORY] {
            assert_indexed(&store, (sql.to_owned(), vec![t.clone(), Sql::Integer(10)]));
        }
    }
}
