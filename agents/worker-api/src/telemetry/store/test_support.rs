//! Fixtures the store's tests share: a fresh database and rows to put in it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cynode_contracts::telemetry::{ContainerAction, ContainerKind, LogsQuery, SourceKind};
use serde_json::Map;
use uuid::Uuid;

use super::db::{QueryError, Store};
use super::record::{ContainerRef, ServiceLog};

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn sandbox(id: &str, task: Uuid, job: Uuid) -> ContainerRef {
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

pub(super) fn step(
    store: &mut Store,
    c: &ContainerRef,
    action: ContainerAction,
    at: DateTime<Utc>,
) {
    store
        .record_container(c, action, at, None, &Map::new())
        .unwrap();
}

pub(super) fn service_log(store: &Store, at: DateTime<Utc>, message: &str) {
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

pub(super) fn service_query() -> LogsQuery {
    LogsQuery {
        source_kind: Some(SourceKind::Service),
        source_name: Some("worker_api".into()),
        ..LogsQuery::default()
    }
}

pub(super) fn invalid<T: std::fmt::Debug>(result: Result<T, QueryError>) -> String {
    match result {
        Err(QueryError::Invalid(detail)) => detail,
        other => panic!("expected a client error, got {other:?}"),
    }
}
