//! Reading entries: one by key, or a page of a scope's.

use chrono::{DateTime, Utc};
use cynode_contracts::preferences::MAX_PAGE_LIMIT;
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::validate::check_key;
use super::{PrefError, PreferenceEntry, PreferencePage, Result, Scope};

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    id: Uuid,
    scope_type: String,
    scope_id: Option<Uuid>,
    key: String,
    value: SqlJson<Value>,
    value_type: String,
    version: i64,
    updated_at: DateTime<Utc>,
    updated_by: Option<Uuid>,
}

pub(super) const COLUMNS: &str =
    "id, scope_type, scope_id, key, value, value_type, version, updated_at, updated_by";

impl TryFrom<Row> for PreferenceEntry {
    type Error = PrefError;

    fn try_from(row: Row) -> Result<Self> {
        let bad = |e: String| PrefError::Db(sqlx::Error::Decode(e.into()));
        Ok(Self {
            id: row.id,
            scope_type: row.scope_type.parse().map_err(bad)?,
            scope_id: row.scope_id,
            key: row.key,
            value: row.value.0,
            value_type: row.value_type.parse().map_err(bad)?,
            version: row.version,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

pub(super) async fn fetch(
    conn: &mut PgConnection,
    scope: Scope,
    key: &str,
    lock: bool,
) -> Result<Option<PreferenceEntry>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM preference_entries
         WHERE scope_type = $1 AND scope_id IS NOT DISTINCT FROM $2 AND key = $3{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(scope.scope_type().as_str())
    .bind(scope.scope_id())
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(PreferenceEntry::try_from).transpose()
}

/// One entry, if it exists.
pub async fn get(db: &PgPool, scope: Scope, key: &str) -> Result<Option<PreferenceEntry>> {
    check_key("key", key, false)?;
    fetch(&mut *db.acquire().await?, scope, key, false).await
}

/// A page of one scope's entries by key; `cursor` is the previous page's `next_cursor`.
pub async fn list(
    db: &PgPool,
    scope: Scope,
    key_prefix: Option<&str>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<PreferencePage> {
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(PrefError::Invalid(format!(
            "limit must be from 1 to {MAX_PAGE_LIMIT}"
        )));
    }
    if let Some(prefix) = key_prefix {
        check_key("key_prefix", prefix, true)?;
    }
    // The cursor is the last key of the previous page: keys sort bytewise (COLLATE "C").
    if let Some(cursor) = cursor {
        check_key("cursor", cursor, false)?;
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM preference_entries
         WHERE scope_type = $1 AND scope_id IS NOT DISTINCT FROM $2
           AND ($3::text IS NULL OR starts_with(key, $3))
           AND ($4::text IS NULL OR key COLLATE \"C\" > $4)
         ORDER BY key COLLATE \"C\" LIMIT $5"
    ))
    .bind(scope.scope_type().as_str())
    .bind(scope.scope_id())
    .bind(key_prefix.filter(|p| !p.is_empty()))
    .bind(cursor)
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    let more = rows.len() > limit as usize;
    let entries = rows
        .into_iter()
        .take(limit as usize)
        .map(PreferenceEntry::try_from)
        .collect::<Result<Vec<_>>>()?;
    let next_cursor = more
        .then(|| entries.last().map(|e| e.key.clone()))
        .flatten();
    Ok(PreferencePage {
        entries,
        next_cursor,
    })
}
