//! The user gateway's `/v1/prefs` routes, and who may read and write which scope.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cynode_contracts::preferences::{
    DEFAULT_PAGE_LIMIT, EffectiveQuery, PreferenceListQuery, PreferenceScopeQuery,
    SetPreferenceRequest,
};
use cynode_contracts::problem::Problem;
use cynode_service_kit::http::{ApiJson, ApiQuery};
use sqlx::PgPool;
use uuid::Uuid;

use super::validate::check_expected;
use super::{
    EffectivePreferences, PrefError, PreferenceEntry, PreferencePage, Scope, ScopeType, ValueType,
    create, delete, effective_for, effective_for_task, get, list, update,
};
use crate::auth::CurrentUser;
use crate::authz::{Action, Check};
use crate::error::Error;
use crate::rbac::Access;
use crate::web::ApiPath;

/// Who may read and write which scope, as [`crate::authz`] decides: system entries everyone
/// reads and `preference.system.write` changes; group entries the group's members read and
/// `group.manage` changes (`group.read` reads any); project entries whoever may read the project
/// reads and `project.update` changes; user entries are their user's (others need `user.read`
/// or `user.manage`); task entries follow the task (`task.read`, `task.update`). A project or
/// task the caller may not see is 404.
async fn authorize(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    scope: Scope,
    write: bool,
) -> Result<(), Error> {
    let subject = &user.subject;
    match scope {
        Scope::System if write => {
            access
                .require(subject, Check::system(Action::PreferenceSystemWrite))
                .await
        }
        Scope::System => Ok(()),
        Scope::Project(p) => {
            let action = if write {
                Action::ProjectUpdate
            } else {
                Action::ProjectRead
            };
            access
                .require(subject, Check::new(action, "project", p).in_project(p))
                .await
        }
        Scope::Group(g) if !write && subject.groups.contains(&g) => Ok(()),
        Scope::Group(g) => {
            let action = if write {
                Action::GroupManage
            } else {
                Action::GroupRead
            };
            access
                .require(subject, Check::new(action, "group", g))
                .await
        }
        Scope::User(id) if id == user.id => Ok(()),
        Scope::User(id) => {
            let action = if write {
                Action::UserManage
            } else {
                Action::UserRead
            };
            access
                .require(subject, Check::new(action, "user", id))
                .await
        }
        Scope::Task(id) => {
            let action = if write {
                Action::TaskUpdate
            } else {
                Action::TaskRead
            };
            crate::tasks::resolve(db, access, user, &id.to_string(), action)
                .await
                .map(|_| ())
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
#[utoipa::path(get, path = "/v1/prefs", tag = "preferences", operation_id = "prefs_list", security(("bearer" = [])),
    params(PreferenceListQuery), responses(
    (status = 200, body = PreferencePage), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "another user's entries"),
    (status = 404, body = Problem, description = "a task that is not the caller's"),
))]
pub async fn http_list(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<PreferenceListQuery>,
) -> Result<Json<PreferencePage>, Error> {
    let scope = requested_scope(&user, q.scope_type, q.scope_id)?;
    authorize(&db, &access, &user, scope, false).await?;
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
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath((scope_type, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PreferenceScopeQuery>,
) -> Result<Json<PreferenceEntry>, Error> {
    let scope = requested_scope(&user, path_scope_type(&scope_type)?, q.scope_id)?;
    authorize(&db, &access, &user, scope, false).await?;
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
    State(access): State<Access>,
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
    authorize(&db, &access, &user, scope, true).await?;
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
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath((scope_type, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PreferenceScopeQuery>,
) -> Result<StatusCode, Error> {
    let scope = requested_scope(&user, path_scope_type(&scope_type)?, q.scope_id)?;
    authorize(&db, &access, &user, scope, true).await?;
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
    State(access): State<Access>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<EffectiveQuery>,
) -> Result<Json<EffectivePreferences>, Error> {
    let view = match (q.task_id, q.project_id) {
        (Some(_), Some(_)) => {
            return Err(Problem::validation("give task_id or project_id, not both").into());
        }
        (Some(task_id), None) => {
            authorize(&db, &access, &user, Scope::Task(task_id), false).await?;
            effective_for_task(&db, task_id).await?
        }
        (None, project_id) => {
            if let Some(p) = project_id {
                authorize(&db, &access, &user, Scope::Project(p), false).await?;
            }
            effective_for(&db, user.id, project_id).await?
        }
    };
    Ok(Json(view))
}
