//! What is kept and for how long: the batched retention sweep and the daily `VACUUM`.

use chrono::{DateTime, Utc};
use cynode_contracts::telemetry::ContainerStatus;
use rusqlite::{OptionalExtension, ToSql};

use super::db::{Store, StoreError, parse_time, timestamp};

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

/// What a retention sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub logs: usize,
    pub events: usize,
    pub containers: usize,
}

/// The retention deletes: one batch (`?2` rows) of what is older than `?1`; the inventory's
/// keeps the rows whose status is `?3` ([`KEPT_STATUS`]).
pub(super) const SWEEP_LOGS: &str = "DELETE FROM log_event WHERE log_id IN
     (SELECT log_id FROM log_event WHERE occurred_at < ?1 LIMIT ?2)";
pub(super) const SWEEP_EVENTS: &str = "DELETE FROM container_event WHERE event_id IN
     (SELECT event_id FROM container_event WHERE occurred_at < ?1 LIMIT ?2)";
pub(super) const SWEEP_INVENTORY: &str = "DELETE FROM container_inventory WHERE container_id IN
     (SELECT container_id FROM container_inventory
      WHERE last_seen_at < ?1 AND status <> ?3 LIMIT ?2)";
/// Inventory rows of this status are kept however long ago they were seen.
pub(super) const KEPT_STATUS: ContainerStatus = ContainerStatus::Running;

impl Store {
    /// Deletes what is past its retention as of `now`: log events after 7 days, container
    /// events after 30, inventory rows not seen for 30 days unless running, and all but the
    /// latest boots. In batches, each its own statement.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<Swept, StoreError> {
        // `more`: the statement's parameters after the cutoff and the batch size.
        let batched =
            |sql: &str, cutoff: DateTime<Utc>, more: &[&dyn ToSql]| -> Result<usize, StoreError> {
                let cutoff = timestamp(cutoff);
                let mut args: Vec<&dyn ToSql> = vec![&cutoff, &DELETE_BATCH];
                args.extend_from_slice(more);
                let mut total = 0;
                loop {
                    let removed = self.conn.execute(sql, args.as_slice())?;
                    total += removed;
                    if removed < DELETE_BATCH as usize {
                        return Ok(total);
                    }
                }
            };
        let logs = batched(SWEEP_LOGS, now - LOG_RETENTION, &[])?;
        let events = batched(SWEEP_EVENTS, now - EVENT_RETENTION, &[])?;
        let containers = batched(
            SWEEP_INVENTORY,
            now - INVENTORY_RETENTION,
            &[&KEPT_STATUS.as_str()],
        )?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeDelta;
    use cynode_contracts::telemetry::{ContainerAction, ContainersQuery};
    use uuid::Uuid;

    use super::super::test_support::{open, sandbox, service_log, service_query, step};
    use super::*;

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
