//! The Telemetry API's reads: a page of containers, one container with its events, a page of
//! log events. Each is one statement with a `LIMIT`, served by an index, and a keyset page.

use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::telemetry::{
    Container, ContainerDetail, ContainerList, ContainersQuery, DEFAULT_CONTAINER_LIMIT,
    DEFAULT_LOG_LIMIT, LimitedBy, LogEvent, LogPage, LogTruncation, LogsQuery,
    MAX_CONTAINER_EVENTS, MAX_CONTAINER_LIMIT, MAX_LOG_BYTES, MAX_LOG_LIMIT, MAX_RESPONSE_BYTES,
    SourceKind,
};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::db::{QueryError, Store, StoreError, timestamp};
use super::page::{BAD_TOKEN, CONTAINERS_TOKEN, LOGS_TOKEN, PageKey, page_limit};
use super::rows::{container_row, event_row, log_row};

impl Store {
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
}

/// The statement of one page of `GET containers`: `limit + 1` rows, to tell whether more follow.
pub(super) fn containers_statement(
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
pub(super) fn logs_statement(
    query: &LogsQuery,
    limit: u32,
) -> Result<(String, Vec<Sql>), QueryError> {
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

const CONTAINER_COLUMNS: &str = "container_id, container_name, kind, runtime, image_ref, \
     created_at, last_seen_at, status, exit_code, task_id, job_id, labels_json";

fn where_clause(clauses: &[&str]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::{TimeDelta, Utc};
    use cynode_contracts::telemetry::{ContainerAction, ContainerKind, ContainerStatus};
    use serde_json::Map;
    use uuid::Uuid;

    use super::super::test_support::{invalid, open, sandbox, service_log, service_query, step};
    use super::*;

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
}
