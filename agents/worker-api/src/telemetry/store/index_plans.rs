//! Every query the store makes, checked against SQLite's query plan.

use chrono::Utc;
use cynode_contracts::telemetry::{
    ContainerKind, ContainerStatus, ContainersQuery, LogStream, LogsQuery, SourceKind,
};
use rusqlite::params_from_iter;
use rusqlite::types::Value as Sql;
use uuid::Uuid;

use super::db::Store;
use super::page::{CONTAINERS_TOKEN, LOGS_TOKEN, PageKey};
use super::query::{containers_statement, logs_statement};
use super::retention::{KEPT_STATUS, SWEEP_EVENTS, SWEEP_INVENTORY, SWEEP_LOGS};

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
    let kept = Sql::Text(KEPT_STATUS.as_str().into());
    for (sql, more) in [
        (SWEEP_LOGS, vec![]),
        (SWEEP_EVENTS, vec![]),
        (SWEEP_INVENTORY, vec![kept]),
    ] {
        let args = [vec![t.clone(), Sql::Integer(10)], more].concat();
        assert_indexed(&store, (sql.to_owned(), args));
    }
}
