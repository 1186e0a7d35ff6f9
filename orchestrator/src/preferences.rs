//! User preferences (`workflow_mcp_agents.md` §5): the only writer of `preference_entries` and
//! `preference_audit_log`. Every create, update and delete commits together with its audit
//! row. The store functions are what the user gateway's `/v1/prefs` routes (below) and the MCP
//! tools `db.preference.*` call; authorization is the caller's business (the routes' is in
//! [`authorize`]).
//!
//! The effective view folds the scopes from lowest to highest precedence (system < user <
//! project < task; `group` would sit between system and user, but there are no groups): a
//! higher scope's value replaces a lower one's, a `null` removes the key (it masks the lower
//! scopes), and an entry whose value does not have its `value_type` is skipped, so it masks
//! nothing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cynode_contracts::preferences::{
    DEFAULT_PAGE_LIMIT, EffectiveQuery, MAX_KEY_CHARS, MAX_PAGE_LIMIT, MAX_VALUE_BYTES,
    PreferenceListQuery, PreferenceScopeQuery, PreferenceSource, SetPreferenceRequest,
};
pub use cynode_contracts::preferences::{
    EffectivePreferences, PreferenceEntry, PreferencePage, ScopeType, ValueType,
};
use cynode_contracts::problem::Problem;
use cynode_service_kit::http::{ApiJson, ApiQuery};
use serde_json::Value;
use sqlx::types::Json as SqlJson;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::Error;
use crate::web::ApiPath;

/// Longest audit reason, in characters (the table's CHECK).
const MAX_REASON_CHARS: usize = 1024;

/// Where an entry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    System,
    User(Uuid),
    Project(Uuid),
    Task(Uuid),
}

impl Scope {
    /// The scope of a wire `scope_type` and `scope_id`: the id is required except for system,
    /// where it must be absent.
    pub fn new(scope_type: ScopeType, scope_id: Option<Uuid>) -> Result<Self, PrefError> {
        match (scope_type, scope_id) {
            (ScopeType::System, None) => Ok(Self::System),
            (ScopeType::System, Some(_)) => Err(PrefError::Invalid(
                "scope_id must not be given for the system scope".into(),
            )),
            (ScopeType::User, Some(id)) => Ok(Self::User(id)),
            (ScopeType::Project, Some(id)) => Ok(Self::Project(id)),
            (ScopeType::Task, Some(id)) => Ok(Self::Task(id)),
            (t, None) => Err(PrefError::Invalid(format!(
                "scope_id is required for the {t} scope"
            ))),
        }
    }

    pub fn scope_type(self) -> ScopeType {
        match self {
            Self::System => ScopeType::System,
            Self::User(_) => ScopeType::User,
            Self::Project(_) => ScopeType::Project,
            Self::Task(_) => ScopeType::Task,
        }
    }

    pub fn scope_id(self) -> Option<Uuid> {
        match self {
            Self::System => None,
            Self::User(id) | Self::Project(id) | Self::Task(id) => Some(id),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope_id() {
            Some(id) => write!(f, "{} {id}", self.scope_type()),
            None => f.write_str("system"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrefError {
    #[error("{0}")]
    NotFound(String),
    /// The entry exists already (create), or is not at the expected version.
    #[error("{detail}")]
    Conflict {
        detail: String,
        current_version: Option<i64>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<PrefError> for Error {
    fn from(e: PrefError) -> Self {
        match e {
            PrefError::NotFound(detail) => Problem::not_found(detail).into(),
            PrefError::Conflict { detail, .. } => Problem::conflict(detail).into(),
            PrefError::Invalid(detail) => Problem::validation(detail).into(),
            PrefError::Db(e) => Error::Db(e),
        }
    }
}

type Result<T, E = PrefError> = std::result::Result<T, E>;

fn check_key(field: &str, key: &str, allow_empty: bool) -> Result<()> {
    let fine = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if (key.is_empty() && !allow_empty) || key.len() > MAX_KEY_CHARS || !key.chars().all(fine) {
        return Err(PrefError::Invalid(format!(
            "{field} must be 1 to {MAX_KEY_CHARS} characters of a-z, 0-9, '_', '.' and '-'"
        )));
    }
    Ok(())
}

fn check_value(value: &Value, value_type: ValueType) -> Result<()> {
    if !value_type.admits(value) {
        return Err(PrefError::Invalid(format!(
            "value is not of value_type {} (null is allowed for every type)",
            value_type.as_str()
        )));
    }
    let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if size > MAX_VALUE_BYTES {
        return Err(PrefError::Invalid(format!(
            "value is {size} bytes as JSON; at most {MAX_VALUE_BYTES} are allowed"
        )));
    }
    Ok(())
}

fn check_reason(reason: Option<&str>) -> Result<()> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS || r.contains('\0') => {
            Err(PrefError::Invalid(format!(
                "reason must be at most {MAX_REASON_CHARS} characters without NUL"
            )))
        }
        _ => Ok(()),
    }
}

#[derive(sqlx::FromRow)]
struct Row {
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

const COLUMNS: &str =
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

/// The scope's user, project or task must exist.
async fn ensure_scope(conn: &mut PgConnection, scope: Scope) -> Result<()> {
    let table = match scope {
        Scope::System => return Ok(()),
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

async fn fetch(
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

fn check_expected(expected_version: Option<i64>) -> Result<()> {
    match expected_version {
        Some(v) if v < 1 => Err(PrefError::Invalid(
            "expected_version must be at least 1".into(),
        )),
        _ => Ok(()),
    }
}

fn stale(scope: Scope, key: &str, expected: i64, current: i64) -> PrefError {
    PrefError::Conflict {
        detail: format!(
            "preference {key} of {scope} is at version {current}, not expected_version {expected}"
        ),
        current_version: Some(current),
    }
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

/// What a task runs with: system < its owner's < its project's < its own.
pub async fn effective_for_task(db: &PgPool, task_id: Uuid) -> Result<EffectivePreferences> {
    let task: Option<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT created_by, project_id FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_optional(db)
            .await?;
    let (owner, project) =
        task.ok_or_else(|| PrefError::NotFound(format!("task {task_id} does not exist")))?;
    effective(db, owner, project, Some(task_id)).await
}

/// What a user's work in a project (or outside any) runs with: system < user < project.
pub async fn effective_for(
    db: &PgPool,
    user_id: Uuid,
    project_id: Option<Uuid>,
) -> Result<EffectivePreferences> {
    effective(db, user_id, project_id, None).await
}

async fn effective(
    db: &PgPool,
    user_id: Uuid,
    project_id: Option<Uuid>,
    task_id: Option<Uuid>,
) -> Result<EffectivePreferences> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM preference_entries
         WHERE scope_type = 'system'
            OR (scope_type = 'user' AND scope_id = $1)
            OR (scope_type = 'project' AND scope_id = $2)
            OR (scope_type = 'task' AND scope_id = $3)"
    ))
    .bind(user_id)
    .bind(project_id)
    .bind(task_id)
    .fetch_all(db)
    .await?;
    let entries = rows
        .into_iter()
        .map(PreferenceEntry::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(fold(entries))
}

/// The effective view of `entries` (of one user, project and task): folded from the lowest
/// scope to the highest (`ScopeType`'s order), ties by `updated_at`, then `id`.
pub fn fold(mut entries: Vec<PreferenceEntry>) -> EffectivePreferences {
    entries.sort_by(|a, b| {
        (a.scope_type, a.updated_at, a.id).cmp(&(b.scope_type, b.updated_at, b.id))
    });
    let mut winners: BTreeMap<String, PreferenceEntry> = BTreeMap::new();
    for entry in entries {
        if !entry.value_type.admits(&entry.value) {
            continue;
        }
        if entry.value.is_null() {
            winners.remove(&entry.key);
        } else {
            winners.insert(entry.key.clone(), entry);
        }
    }
    let sources = winners
        .values()
        .map(|e| PreferenceSource {
            key: e.key.clone(),
            scope_type: e.scope_type,
            scope_id: e.scope_id,
        })
        .collect();
    EffectivePreferences {
        effective: winners.into_iter().map(|(k, e)| (k, e.value)).collect(),
        sources,
    }
}

// The user gateway's `/v1/prefs` routes.

fn is_admin(user: &CurrentUser) -> bool {
    user.handle == crate::users::ADMIN_HANDLE
}

/// System and project entries: everyone reads, the admin writes. User entries: their user
/// (and the admin). Task entries: the task's owner (and the admin); anyone else is told the
/// task does not exist.
async fn authorize(
    db: &PgPool,
    user: &CurrentUser,
    scope: Scope,
    write: bool,
) -> Result<(), Error> {
    if is_admin(user) {
        return Ok(());
    }
    match scope {
        Scope::System | Scope::Project(_) if write => Err(Problem::forbidden(format!(
            "only the admin may change {} preferences",
            scope.scope_type()
        ))
        .into()),
        Scope::System | Scope::Project(_) => Ok(()),
        Scope::User(id) if id == user.id => Ok(()),
        Scope::User(_) => {
            Err(Problem::forbidden("only your own user preferences are open to you").into())
        }
        Scope::Task(id) => {
            let owns: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND created_by = $2)",
            )
            .bind(id)
            .bind(user.id)
            .fetch_one(db)
            .await?;
            if owns {
                Ok(())
            } else {
                Err(Problem::not_found(format!("task {id} does not exist")).into())
            }
        }
    }
}

/// The scope a request names; the user scope defaults to the caller.
fn requested_scope(
    user: &CurrentUser,
    scope_type: ScopeType,
    scope_id: Option<Uuid>,
) -> Result<Scope, Error> {
    let scope_id = match scope_type {
        ScopeType::User => scope_id.or(Some(user.id)),
        _ => scope_id,
    };
    Ok(Scope::new(scope_type, scope_id)?)
}

fn path_scope_type(raw: &str) -> Result<ScopeType, Error> {
    raw.parse::<ScopeType>()
        .map_err(|e| Problem::validation(e).into())
}

/// One scope's preference entries by key.
#[utoipa::path(get, path = "/v1/prefs", tag = "preferences", security(("bearer" = [])),
    params(PreferenceListQuery), responses(
    (status = 200, body = PreferencePage), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "another user's entries"),
    (status = 404, body = Problem, description = "a task that is not the caller's"),
))]
pub async fn http_list(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<PreferenceListQuery>,
) -> Result<Json<PreferencePage>, Error> {
    let scope = requested_scope(&user, q.scope_type, q.scope_id)?;
    authorize(&db, &user, scope, false).await?;
    let page = list(
        &db,
        scope,
        q.key_prefix.as_deref(),
        q.limit.unwrap_or(DEFAULT_PAGE_LIMIT),
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

/// One preference entry.
#[utoipa::path(get, path = "/v1/prefs/{scope_type}/{key}", tag = "preferences", security(("bearer" = [])),
    params(("scope_type" = ScopeType, Path), ("key" = String, Path, pattern = r"^[a-z0-9_.-]{1,256}$"), PreferenceScopeQuery), responses(
    (status = 200, body = PreferenceEntry), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn http_get(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiPath((scope_type, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PreferenceScopeQuery>,
) -> Result<Json<PreferenceEntry>, Error> {
    let scope = requested_scope(&user, path_scope_type(&scope_type)?, q.scope_id)?;
    authorize(&db, &user, scope, false).await?;
    get(&db, scope, &key).await?.map(Json).ok_or_else(|| {
        Problem::not_found(format!("preference {key} of {scope} does not exist")).into()
    })
}

/// Creates (201) or updates (200) a preference entry. With `expected_version`, an entry at
/// another version (or none) is 409 and nothing changes.
#[utoipa::path(put, path = "/v1/prefs/{scope_type}/{key}", tag = "preferences", security(("bearer" = [])),
    params(("scope_type" = ScopeType, Path), ("key" = String, Path, pattern = r"^[a-z0-9_.-]{1,256}$"),
           ("scope_id" = Option<Uuid>, Query, description = "required for project and task; user defaults to the caller")),
    request_body = SetPreferenceRequest, responses(
    (status = 200, body = PreferenceEntry, description = "updated"),
    (status = 201, body = PreferenceEntry, description = "created"),
    (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "not at expected_version"),
))]
pub async fn http_put(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiPath((scope_type, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PreferenceScopeQuery>,
    ApiJson(body): ApiJson<SetPreferenceRequest>,
) -> Result<(StatusCode, Json<PreferenceEntry>), Error> {
    if q.expected_version.is_some() || q.reason.is_some() {
        return Err(Problem::validation(
            "expected_version and reason go in the request body of a PUT",
        )
        .into());
    }
    let scope = requested_scope(&user, path_scope_type(&scope_type)?, q.scope_id)?;
    authorize(&db, &user, scope, true).await?;
    check_expected(body.expected_version)?;
    let actor = Some(user.id);
    let reason = body.reason.as_deref();
    if get(&db, scope, &key).await?.is_some() {
        let entry = update(
            &db,
            scope,
            &key,
            body.value,
            body.value_type,
            body.expected_version,
            actor,
            reason,
        )
        .await?;
        return Ok((StatusCode::OK, Json(entry)));
    }
    if let Some(expected) = body.expected_version {
        return Err(PrefError::Conflict {
            detail: format!(
                "preference {key} of {scope} does not exist, not at expected_version {expected}"
            ),
            current_version: None,
        }
        .into());
    }
    let value_type = body
        .value_type
        .or_else(|| ValueType::of(&body.value))
        .ok_or_else(|| Problem::validation("value_type is required to create a null entry"))?;
    let entry = create(&db, scope, &key, body.value, value_type, actor, reason).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Deletes a preference entry.
#[utoipa::path(delete, path = "/v1/prefs/{scope_type}/{key}", tag = "preferences", security(("bearer" = [])),
    params(("scope_type" = ScopeType, Path), ("key" = String, Path, pattern = r"^[a-z0-9_.-]{1,256}$"), PreferenceScopeQuery), responses(
    (status = 204, description = "deleted"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "not at expected_version"),
))]
pub async fn http_delete(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiPath((scope_type, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PreferenceScopeQuery>,
) -> Result<StatusCode, Error> {
    let scope = requested_scope(&user, path_scope_type(&scope_type)?, q.scope_id)?;
    authorize(&db, &user, scope, true).await?;
    delete(
        &db,
        scope,
        &key,
        q.expected_version,
        Some(user.id),
        q.reason.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The effective preferences of one of the caller's tasks, of the caller in a project, or of
/// the caller alone, with the scope each value comes from.
#[utoipa::path(get, path = "/v1/prefs/effective", tag = "preferences", security(("bearer" = [])),
    params(EffectiveQuery), responses(
    (status = 200, body = EffectivePreferences), (status = 400, body = Problem),
    (status = 401, body = Problem), (status = 404, body = Problem),
))]
pub async fn http_effective(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<EffectiveQuery>,
) -> Result<Json<EffectivePreferences>, Error> {
    let view = match (q.task_id, q.project_id) {
        (Some(_), Some(_)) => {
            return Err(Problem::validation("give task_id or project_id, not both").into());
        }
        (Some(task_id), None) => {
            authorize(&db, &user, Scope::Task(task_id), false).await?;
            effective_for_task(&db, task_id).await?
        }
        (None, project_id) => effective_for(&db, user.id, project_id).await?,
    };
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(
        scope: Scope,
        key: &str,
        value: Value,
        value_type: ValueType,
        at: i64,
    ) -> PreferenceEntry {
        PreferenceEntry {
            id: Uuid::new_v4(),
            scope_type: scope.scope_type(),
            scope_id: scope.scope_id(),
            key: key.into(),
            value,
            value_type,
            version: 1,
            updated_at: DateTime::from_timestamp(at, 0).unwrap(),
            updated_by: None,
        }
    }

    #[test]
    fn higher_scopes_win_whatever_the_order_given() {
        let (u, p, t) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let s = ValueType::String;
        // Newer lower-scope entries still lose: scope decides before time.
        let view = fold(vec![
            entry(Scope::Task(t), "a", json!("task"), s, 1),
            entry(Scope::System, "a", json!("system"), s, 9),
            entry(Scope::Project(p), "a", json!("project"), s, 5),
            entry(Scope::User(u), "a", json!("user"), s, 7),
            entry(Scope::User(u), "b", json!("user"), s, 7),
            entry(Scope::System, "b", json!("system"), s, 8),
            entry(
                Scope::Project(p),
                "c",
                json!({"x": 1}),
                ValueType::Object,
                1,
            ),
        ]);
        assert_eq!(view.effective["a"], json!("task"));
        assert_eq!(view.effective["b"], json!("user"));
        assert_eq!(view.effective["c"], json!({"x": 1}));
        assert_eq!(
            view.sources,
            vec![
                PreferenceSource {
                    key: "a".into(),
                    scope_type: ScopeType::Task,
                    scope_id: Some(t)
                },
                PreferenceSource {
                    key: "b".into(),
                    scope_type: ScopeType::User,
                    scope_id: Some(u)
                },
                PreferenceSource {
                    key: "c".into(),
                    scope_type: ScopeType::Project,
                    scope_id: Some(p)
                },
            ]
        );
    }

    #[test]
    fn null_masks_lower_scopes_and_a_higher_value_comes_back() {
        let (u, p) = (Uuid::new_v4(), Uuid::new_v4());
        let n = ValueType::Number;
        let view = fold(vec![
            entry(Scope::System, "masked", json!(1), n, 1),
            entry(Scope::User(u), "masked", Value::Null, n, 2),
            entry(Scope::System, "back", json!(1), n, 1),
            entry(Scope::User(u), "back", Value::Null, n, 2),
            entry(Scope::Project(p), "back", json!(3), n, 3),
        ]);
        assert!(!view.effective.contains_key("masked"), "{view:?}");
        assert_eq!(view.effective["back"], json!(3));
        assert_eq!(view.sources.len(), 1);
    }

    #[test]
    fn a_mistyped_entry_is_skipped_and_masks_nothing() {
        let t = Uuid::new_v4();
        let view = fold(vec![
            entry(Scope::System, "k", json!(true), ValueType::Boolean, 1),
            entry(Scope::Task(t), "k", json!("yes"), ValueType::Boolean, 2),
        ]);
        assert_eq!(view.effective["k"], json!(true));
        assert_eq!(view.sources[0].scope_type, ScopeType::System);
    }

    #[test]
    fn ties_in_a_scope_go_to_the_newest_then_the_highest_id() {
        let u = Uuid::new_v4();
        let s = ValueType::String;
        let older = entry(Scope::User(u), "k", json!("older"), s, 1);
        let newer = entry(Scope::User(u), "k", json!("newer"), s, 2);
        assert_eq!(
            fold(vec![newer.clone(), older.clone()]).effective["k"],
            json!("newer")
        );
        let mut same = newer.clone();
        same.value = json!("same time");
        let winner = if same.id > newer.id {
            "same time"
        } else {
            "newer"
        };
        assert_eq!(fold(vec![same, newer]).effective["k"], json!(winner));
    }

    #[test]
    fn keys_values_and_scopes_are_checked() {
        assert!(check_key("key", "output.summary_style", false).is_ok());
        assert!(check_key("key", "code.language.rank-ordered_2", false).is_ok());
        for bad in ["", "Upper", "a b", "a/b", "ä", &"k".repeat(257)] {
            assert!(check_key("key", bad, false).is_err(), "{bad:?}");
        }
        assert!(check_key("key_prefix", "", true).is_ok());
        assert!(check_value(&json!("x"), ValueType::String).is_ok());
        assert!(check_value(&Value::Null, ValueType::Array).is_ok());
        assert!(check_value(&json!(1), ValueType::String).is_err());
        let big = json!("x".repeat(MAX_VALUE_BYTES));
        assert!(check_value(&big, ValueType::String).is_err());
        assert!(Scope::new(ScopeType::System, Some(Uuid::nil())).is_err());
        assert!(Scope::new(ScopeType::Task, None).is_err());
        assert_eq!(Scope::new(ScopeType::System, None).unwrap(), Scope::System);
    }
}
