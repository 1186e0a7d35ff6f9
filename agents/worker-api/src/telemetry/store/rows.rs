//! Stored rows read back into the API's types; a column holding a word we never write is a
//! corrupt row, not a default.

use cynode_contracts::telemetry::{
    Container, ContainerAction, ContainerEvent, ContainerKind, ContainerStatus, LogEvent,
    LogStream, SourceKind,
};
use rusqlite::Row;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::parse_time;

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

pub(super) fn container_row(row: &Row<'_>) -> rusqlite::Result<Container> {
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

pub(super) fn event_row(row: &Row<'_>) -> rusqlite::Result<ContainerEvent> {
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

pub(super) fn log_row(row: &Row<'_>) -> rusqlite::Result<(i64, LogEvent)> {
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
