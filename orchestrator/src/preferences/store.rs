//! The only writer of `preference_entries` and `preference_audit_log`: every create, update
//! and delete commits together with its audit row, and a stale `expected_version` changes
//! nothing.

use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::read::{COLUMNS, Row, fetch};
use super::validate::{check_expected, check_key, check_reason, check_value};
use super::{PrefError, PreferenceEntry, Result, Scope, ValueType};

/// The scope's group, user, project or task must exist.
async fn ensure_scope(conn: &mut PgConnection, scope: Scope) -> Result<()> {
    let table = match scope {
        Scope::System => return Ok(()),
        Scope::Group(_) => "groups",
        Scope::User(_) => "users",
        Scope::Project(_) => "projects",
        Scope::Task(_) => "tasks",
    };
    let exists: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)"
    ))
    .bind(scope.scope_id())
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(PrefError::NotFound(format!("{scope} does not exist")));
    }
    Ok(())
}

async fn audit(
    conn: &mut PgConnection,
    entry: &PreferenceEntry,
    old: Option<&Value>,
    new: Option<&Value>,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO preference_audit_log
           (id, entry_id, scope_type, scope_id, key, old_value, new_value, changed_by, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::new_v4())
    .bind(entry.id)
    .bind(entry.scope_type.as_str())
    .bind(entry.scope_id)
    .bind(&entry.key)
    .bind(old.map(SqlJson))
    .bind(new.map(SqlJson))
    .bind(actor)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn stale(scope: Scope, key: &str, expected: i64, current: i64) -> PrefError {
    PrefError::Conflict {
        detail: format!(
            "preference {key} of {scope} is at version {current}, not expected_version {expected}"
        ),
        current_version: Some(current),
    }
}

/// Creates an entry at version 1; `Conflict` if the scope has the key already.
pub async fn create(
    db: &PgPool,
    scope: Scope,
    key: &str,
    value: Value,
    value_type: ValueType,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<PreferenceEntry> {
    check_key("key", key, false)?;
    check_value(&value, value_type)?;
    check_reason(reason)?;
    let mut tx = db.begin().await?;
    ensure_scope(&mut tx, scope).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO preference_entries (id, scope_type, scope_id, key, value, value_type, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT preference_entries_scope_key DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(scope.scope_type().as_str())
    .bind(scope.scope_id())
    .bind(key)
    .bind(SqlJson(&value))
    .bind(value_type.as_str())
    .bind(actor)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        let current = fetch(&mut tx, scope, key, false).await?.map(|e| e.version);
        return Err(PrefError::Conflict {
            detail: format!("preference {key} of {scope} exists already"),
            current_version: current,
        });
    };
    let entry = PreferenceEntry::try_from(row)?;
    audit(&mut tx, &entry, None, Some(&value), actor, reason).await?;
    tx.commit().await?;
    Ok(entry)
}

/// Replaces an entry's value (and type, if given), version + 1. With `expected_version`, an
/// entry at another version is a `Conflict` and stays as it was.
#[allow(clippy::too_many_arguments)] // the MCP tool's arguments, one to one
pub async fn update(
    db: &PgPool,
    scope: Scope,
    key: &str,
    value: Value,
    value_type: Option<ValueType>,
    expected_version: Option<i64>,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<PreferenceEntry> {
    check_key("key", key, false)?;
    check_reason(reason)?;
    check_expected(expected_version)?;
    let mut tx = db.begin().await?;
    let current = fetch(&mut tx, scope, key, true).await?.ok_or_else(|| {
        PrefError::NotFound(format!("preference {key} of {scope} does not exist"))
    })?;
    if let Some(expected) = expected_version.filter(|v| *v != current.version) {
        return Err(stale(scope, key, expected, current.version));
    }
    let value_type = value_type.unwrap_or(current.value_type);
    check_value(&value, value_type)?;
    let row: Row = sqlx::query_as(&format!(
        "UPDATE preference_entries
         SET value = $2, value_type = $3, version = version + 1, updated_at = now(), updated_by = $4
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(current.id)
    .bind(SqlJson(&value))
    .bind(value_type.as_str())
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    let entry = PreferenceEntry::try_from(row)?;
    audit(
        &mut tx,
        &entry,
        Some(&current.value),
        Some(&value),
        actor,
        reason,
    )
    .await?;
    tx.commit().await?;
    Ok(entry)
}

/// Removes an entry (to mask lower scopes instead, set it to `null`).
pub async fn delete(
    db: &PgPool,
    scope: Scope,
    key: &str,
    expected_version: Option<i64>,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> Result<()> {
    check_key("key", key, false)?;
    check_reason(reason)?;
    check_expected(expected_version)?;
    let mut tx = db.begin().await?;
    let current = fetch(&mut tx, scope, key, true).await?.ok_or_else(|| {
        PrefError::NotFound(format!("preference {key} of {scope} does not exist"))
    })?;
    if let Some(expected) = expected_version.filter(|v| *v != current.version) {
        return Err(stale(scope, key, expected, current.version));
    }
    sqlx::query("DELETE FROM preference_entries WHERE id = $1")
        .bind(current.id)
        .execute(&mut *tx)
        .await?;
    audit(&mut tx, &current, Some(&current.value), None, actor, reason).await?;
    tx.commit().await?;
    Ok(())
}
