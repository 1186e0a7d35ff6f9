//! The writes: the worker's boots and service log events, each container lifecycle step (an
//! event and its inventory row) and what a run printed, line by line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cynode_contracts::telemetry::{ContainerAction, ContainerKind, ContainerStatus, LogStream};
use rusqlite::params;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::{Store, StoreError, timestamp};

/// Most output lines recorded per container run (stdout and stderr together); the rest are
/// counted in one closing event.
pub const MAX_LINES_PER_RUN: usize = 2000;
/// Longest recorded line (bytes); a longer one is cut at a character boundary.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

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

impl Store {
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
                 status = CASE WHEN ?11 AND status NOT IN (?12, ?13) THEN status
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
                ContainerStatus::Running.as_str(),
                ContainerStatus::Paused.as_str(),
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
    use cynode_contracts::telemetry::{
        LimitedBy, LogsQuery, MAX_LOG_BYTES, MAX_LOG_LIMIT, SourceKind,
    };

    use super::super::test_support::{open, sandbox, step};
    use super::*;

    #[test]
    fn a_removal_ends_a_running_container_and_keeps_any_other_status() {
        let (_dir, mut store) = open();
        let now = Utc::now();
        let status =
            |store: &Store, id: &str| store.container(id).unwrap().unwrap().container.status;
        let running = sandbox("run1", Uuid::new_v4(), Uuid::new_v4());
        step(&mut store, &running, ContainerAction::Create, now);
        step(&mut store, &running, ContainerAction::Start, now);
        assert_eq!(status(&store, "run1"), ContainerStatus::Running);
        step(&mut store, &running, ContainerAction::Remove, now);
        assert_eq!(status(&store, "run1"), ContainerStatus::Exited);
        let created = sandbox("new1", Uuid::new_v4(), Uuid::new_v4());
        step(&mut store, &created, ContainerAction::Create, now);
        step(&mut store, &created, ContainerAction::Remove, now);
        assert_eq!(status(&store, "new1"), ContainerStatus::Created);
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
}
