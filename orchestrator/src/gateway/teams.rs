//! The team routes: user accounts, groups, projects, roles and bindings, access rules and the
//! access audit. Each handler names the action it needs and asks [`Access`]; the stores do the
//! writing and auditing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    AccessRule, AccessRuleList, AddMemberRequest, AuditEvent, AuditPage, AuditQuery,
    ChangePasswordRequest, CreateAccessRuleRequest, CreateGroupRequest, CreateProjectRequest,
    CreateUserRequest, CreatedUser, GrantRequest, Group, GroupList, GroupMembers, PasswordReset,
    Project, ProjectList, ProjectListQuery, ResetPasswordRequest, Role, RoleBinding,
    RoleBindingList, RoleBindingQuery, RoleInfo, RoleList, ScopeType, SetPasswordRequest,
    UpdateGroupRequest, UpdateProjectRequest, UserAccount, UserList, UserListQuery,
};
use cynode_service_kit::http::{ApiJson, ApiQuery};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::authz::{Action, Check, Scope, policy};
use crate::error::{Error, Result};
use crate::projects;
use crate::rbac::{self, Access, Ref};
use crate::users::accounts;
use crate::web::ApiPath;

async fn system(access: &Access, user: &CurrentUser, action: Action) -> Result<()> {
    access.require(&user.subject, Check::system(action)).await
}

/// A change the caller may attempt (the access check came first and audits its own denials):
/// its refusal (any 4xx: malformed, unknown, taken, not held, the last admin) leaves nothing
/// written, since the store's transaction is dropped, and is one deny row of the access audit.
async fn change<T>(
    access: &Access,
    user: &CurrentUser,
    action: &str,
    resource_type: &str,
    resource: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let outcome = work.await;
    if let Err(Error::Problem(problem, _)) = &outcome
        && (400..500).contains(&problem.status)
    {
        let reason = problem
            .detail
            .clone()
            .unwrap_or_else(|| problem.title.clone());
        rbac::audit::record(
            &access.db,
            &rbac::audit::Entry {
                actor: Some((user.id, &user.handle)),
                action,
                resource_type,
                resource,
                allowed: false,
                reason: Some(&reason),
                task_id: None,
            },
        )
        .await?;
    }
    outcome
}

/// The project `text` names, once the caller may at least read it (else 404, audited).
async fn project_in_scope(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    field: &str,
    text: &str,
    action: Action,
) -> Result<Uuid> {
    let (id, slug, _) = change(access, user, action.as_str(), "project", text, async {
        projects::find(&mut *db.acquire().await?, &Ref::parse(field, text)?).await
    })
    .await?;
    access
        .require(
            &user.subject,
            Check::new(action, "project", slug).in_project(id),
        )
        .await?;
    Ok(id)
}

// ---- users ----

/// Creates a user (handle, optional display name and email, an initial password or else a
/// one-time set-password token in the answer). The user owns a new personal project.
#[utoipa::path(post, path = "/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserRequest, responses(
    (status = 201, body = CreatedUser), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 409, body = Problem, description = "handle or email taken"),
))]
pub async fn create_user(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>)> {
    system(&access, &user, Action::UserManage).await?;
    let created = change(&access, &user, "user.create", "user", &req.handle, async {
        accounts::create(&db, &user.subject, &req).await
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Users, by handle; filtered by text, state or group; paged.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    params(UserListQuery), responses(
    (status = 200, body = UserList), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem),
))]
pub async fn list_users(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<UserListQuery>,
) -> Result<Json<UserList>> {
    system(&access, &user, Action::UserRead).await?;
    Ok(Json(accounts::list(&db, &q).await?))
}

/// One user, by id or handle.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or handle")), responses(
    (status = 200, body = UserAccount), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn get_user(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserAccount>> {
    system(&access, &user, Action::UserRead).await?;
    Ok(Json(accounts::get(&db, &Ref::parse("id", &id)?).await?))
}

/// Disables a user: their sessions, refresh tokens, API keys and their tasks' agent tokens
/// stop working at once. The last enabled system admin cannot be disabled (409).
#[utoipa::path(post, path = "/v1/users/{id}/disable", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or handle")), responses(
    (status = 200, body = UserAccount), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "the last system admin"),
))]
pub async fn disable_user(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserAccount>> {
    system(&access, &user, Action::UserManage).await?;
    Ok(Json(
        change(&access, &user, "user.disable", "user", &id, async {
            accounts::set_enabled(&db, &user.subject, &Ref::parse("id", &id)?, false).await
        })
        .await?,
    ))
}

/// Enables a disabled user.
#[utoipa::path(post, path = "/v1/users/{id}/enable", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or handle")), responses(
    (status = 200, body = UserAccount), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn enable_user(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UserAccount>> {
    system(&access, &user, Action::UserManage).await?;
    Ok(Json(
        change(&access, &user, "user.enable", "user", &id, async {
            accounts::set_enabled(&db, &user.subject, &Ref::parse("id", &id)?, true).await
        })
        .await?,
    ))
}

/// Sets a new password, or (without one) issues a set-password token; the user's sessions end.
#[utoipa::path(post, path = "/v1/users/{id}/reset_password", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or handle")),
    request_body(content = ResetPasswordRequest, description = "optional"), responses(
    (status = 200, body = PasswordReset), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn reset_password(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    body: Option<ApiJson<ResetPasswordRequest>>,
) -> Result<Json<PasswordReset>> {
    system(&access, &user, Action::UserManage).await?;
    let req = body.map(|ApiJson(r)| r).unwrap_or_default();
    Ok(Json(
        change(&access, &user, "user.reset_password", "user", &id, async {
            let target = Ref::parse("id", &id)?;
            accounts::reset_password(&db, &user.subject, &target, req.password.as_deref()).await
        })
        .await?,
    ))
}

/// Ends every session of the user (their access and refresh tokens stop working).
#[utoipa::path(post, path = "/v1/users/{id}/revoke_sessions", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id or handle")), responses(
    (status = 204, description = "sessions ended"), (status = 400, body = Problem),
    (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn revoke_sessions(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    system(&access, &user, Action::UserManage).await?;
    change(&access, &user, "user.revoke_sessions", "user", &id, async {
        accounts::revoke_sessions(&db, &user.subject, &Ref::parse("id", &id)?).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's own password; their other sessions end.
#[utoipa::path(post, path = "/v1/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordRequest, responses(
    (status = 204, description = "changed"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "current password is wrong"),
))]
pub async fn change_password(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode> {
    accounts::change_password(&db, &user, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a password with a one-time token from user creation or a reset (no login).
#[utoipa::path(post, path = "/v1/auth/set_password", tag = "auth",
    request_body = SetPasswordRequest, responses(
    (status = 204, description = "password set"), (status = 400, body = Problem),
    (status = 401, body = Problem, description = "token invalid, used or expired"),
))]
pub async fn set_password(
    State(db): State<PgPool>,
    ApiJson(req): ApiJson<SetPasswordRequest>,
) -> Result<StatusCode> {
    accounts::set_password(&db, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- groups ----

/// Creates a group.
#[utoipa::path(post, path = "/v1/groups", tag = "groups", security(("bearer" = [])),
    request_body = CreateGroupRequest, responses(
    (status = 201, body = Group), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 409, body = Problem),
))]
pub async fn create_group(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiJson(req): ApiJson<CreateGroupRequest>,
) -> Result<(StatusCode, Json<Group>)> {
    system(&access, &user, Action::GroupManage).await?;
    let group = change(&access, &user, "group.create", "group", &req.slug, async {
        rbac::groups::create(&db, &user.subject, &req).await
    })
    .await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// Every group.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", security(("bearer" = [])), responses(
    (status = 200, body = GroupList), (status = 401, body = Problem), (status = 403, body = Problem),
))]
pub async fn list_groups(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
) -> Result<Json<GroupList>> {
    system(&access, &user, Action::GroupRead).await?;
    Ok(Json(rbac::groups::list(&db).await?))
}

/// One group, by id or slug.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "group id or slug")), responses(
    (status = 200, body = Group), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn get_group(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Group>> {
    let group = Ref::parse("id", &id)?;
    system(&access, &user, Action::GroupRead).await?;
    Ok(Json(rbac::groups::get(&db, &group).await?))
}

/// Renames, disables or enables a group. Disabling it ends what its bindings give its members.
#[utoipa::path(patch, path = "/v1/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "group id or slug")), request_body = UpdateGroupRequest,
    responses(
    (status = 200, body = Group), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "it would leave no system admin"),
))]
pub async fn update_group(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateGroupRequest>,
) -> Result<Json<Group>> {
    system(&access, &user, Action::GroupManage).await?;
    let action = match req.is_active {
        Some(false) => "group.disable",
        Some(true) => "group.enable",
        None => "group.update",
    };
    Ok(Json(
        change(&access, &user, action, "group", &id, async {
            rbac::groups::update(&db, &user.subject, &Ref::parse("id", &id)?, &req).await
        })
        .await?,
    ))
}

/// The group's members.
#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "group id or slug")), responses(
    (status = 200, body = GroupMembers), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn group_members(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupMembers>> {
    let group = Ref::parse("id", &id)?;
    system(&access, &user, Action::GroupRead).await?;
    Ok(Json(rbac::groups::members(&db, &group).await?))
}

/// Adds a user to the group.
#[utoipa::path(post, path = "/v1/groups/{id}/members", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "group id or slug")), request_body = AddMemberRequest,
    responses(
    (status = 204, description = "added"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "already a member"),
))]
pub async fn add_member(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> Result<StatusCode> {
    system(&access, &user, Action::GroupManage).await?;
    let resource = format!("{id}/{}", req.user);
    change(
        &access,
        &user,
        "group.member.add",
        "group",
        &resource,
        async {
            let group = Ref::parse("id", &id)?;
            let member = Ref::parse("user", &req.user)?;
            rbac::groups::add_member(&db, &user.subject, &group, &member).await
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from the group; it holds from their next request.
#[utoipa::path(delete, path = "/v1/groups/{id}/members/{user}", tag = "groups", security(("bearer" = [])),
    params(("id" = String, Path, description = "group id or slug"),
           ("user" = String, Path, description = "user id or handle")), responses(
    (status = 204, description = "removed"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "it would leave no system admin"),
))]
pub async fn remove_member(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath((id, member)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    system(&access, &user, Action::GroupManage).await?;
    let resource = format!("{id}/{member}");
    change(
        &access,
        &user,
        "group.member.remove",
        "group",
        &resource,
        async {
            let group = Ref::parse("id", &id)?;
            let member = Ref::parse("user", &member)?;
            rbac::groups::remove_member(&db, &user.subject, &group, &member).await
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- projects ----

/// Creates a project; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    request_body = CreateProjectRequest, responses(
    (status = 201, body = Project), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 409, body = Problem, description = "slug taken"),
))]
pub async fn create_project(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, Json<Project>)> {
    let project = change(
        &access,
        &user,
        "project.create",
        "project",
        &req.slug,
        async { projects::create(&db, &user.subject, &req).await },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// The projects the caller holds a role in (all of them with a system role that reads every
/// project).
#[utoipa::path(get, path = "/v1/projects", tag = "projects", security(("bearer" = [])),
    params(ProjectListQuery), responses(
    (status = 200, body = ProjectList), (status = 400, body = Problem), (status = 401, body = Problem),
))]
pub async fn list_projects(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<ProjectListQuery>,
) -> Result<Json<ProjectList>> {
    Ok(Json(projects::list(&db, &user.subject, &q).await?))
}

/// One project, by id or slug; one the caller holds no role in is 404.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id or slug")), responses(
    (status = 200, body = Project), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 404, body = Problem),
))]
pub async fn get_project(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Project>> {
    let project = project_in_scope(&db, &access, &user, "id", &id, Action::ProjectRead).await?;
    Ok(Json(projects::get(&db, &user.subject, project).await?))
}

/// Renames or describes a project (owner or admin).
#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id or slug")), request_body = UpdateProjectRequest,
    responses(
    (status = 200, body = Project), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn update_project(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateProjectRequest>,
) -> Result<Json<Project>> {
    let project = project_in_scope(&db, &access, &user, "id", &id, Action::ProjectUpdate).await?;
    Ok(Json(
        change(&access, &user, "project.update", "project", &id, async {
            projects::update(&db, &user.subject, project, &req).await
        })
        .await?,
    ))
}

/// Archives a project (owner): it takes no new work, what it holds stays.
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "projects", security(("bearer" = [])),
    params(("id" = String, Path, description = "project id or slug")), responses(
    (status = 204, description = "archived"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "a personal project, or already deleted"),
))]
pub async fn delete_project(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let project = project_in_scope(&db, &access, &user, "id", &id, Action::ProjectDelete).await?;
    change(&access, &user, "project.delete", "project", &id, async {
        projects::archive(&db, &user.subject, project).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- roles and bindings ----

/// The roles and what each allows: the policy table every decision uses.
#[utoipa::path(get, path = "/v1/roles", tag = "rbac", security(("bearer" = [])), responses(
    (status = 200, body = RoleList), (status = 401, body = Problem),
))]
pub async fn list_roles(_: CurrentUser) -> Json<RoleList> {
    let descriptions = [
        (Role::Owner, "manages a project and its members"),
        (
            Role::Admin,
            "administers the system, or a project short of deleting it",
        ),
        (Role::Operator, "runs and stops any work in scope"),
        (Role::Member, "creates work and manages their own"),
        (Role::Viewer, "reads"),
    ];
    Json(RoleList {
        roles: descriptions
            .into_iter()
            .map(|(name, description)| {
                let (any, own) = policy().grants(name);
                RoleInfo {
                    name,
                    description: description.into(),
                    actions: any.into_iter().map(str::to_owned).collect(),
                    own_actions: own.into_iter().map(str::to_owned).collect(),
                }
            })
            .collect(),
    })
}

/// A scope id is given exactly for project scope.
fn scope_shape(scope_type: ScopeType, scope_id: Option<&str>) -> Result<()> {
    match (scope_type, scope_id) {
        (ScopeType::System, Some(_)) => {
            Err(Problem::validation("scope_id must be absent at system scope").into())
        }
        (ScopeType::Project, None) => Err(Problem::validation(
            "scope_id (a project id or slug) is required at project scope",
        )
        .into()),
        _ => Ok(()),
    }
}

/// The scope a binding request names, once the caller may do `action` there.
async fn binding_scope(
    db: &PgPool,
    access: &Access,
    user: &CurrentUser,
    scope_type: ScopeType,
    scope_id: Option<&str>,
    action: Action,
) -> Result<Scope> {
    scope_shape(scope_type, scope_id)?;
    match scope_id {
        // At system scope the same action is asked of the system roles alone.
        None => {
            access
                .require(&user.subject, Check::new(action, "system", "system"))
                .await?;
            Ok(Scope::System)
        }
        Some(p) => Ok(Scope::Project(
            project_in_scope(db, access, user, "scope_id", p, action).await?,
        )),
    }
}

/// The role bindings of a scope (default: system).
#[utoipa::path(get, path = "/v1/role-bindings", tag = "rbac", security(("bearer" = [])),
    params(RoleBindingQuery), responses(
    (status = 200, body = RoleBindingList), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn list_bindings(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<RoleBindingQuery>,
) -> Result<Json<RoleBindingList>> {
    let scope_type = q.scope_type.unwrap_or(if q.scope_id.is_some() {
        ScopeType::Project
    } else {
        ScopeType::System
    });
    let scope = binding_scope(
        &db,
        &access,
        &user,
        scope_type,
        q.scope_id.as_deref(),
        Action::RbacRead,
    )
    .await?;
    Ok(Json(rbac::bindings::list(&db, scope).await?))
}

/// Grants a role to a user or group at system or project scope; the granter must hold the
/// role (or a stronger one) there.
#[utoipa::path(post, path = "/v1/role-bindings", tag = "rbac", security(("bearer" = [])),
    request_body = GrantRequest, responses(
    (status = 201, body = RoleBinding), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem, description = "unknown role, subject or project"),
    (status = 409, body = Problem, description = "already granted"),
))]
pub async fn grant(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiJson(req): ApiJson<GrantRequest>,
) -> Result<(StatusCode, Json<RoleBinding>)> {
    change(
        &access,
        &user,
        "rbac.grant",
        "role_binding",
        &req.subject,
        async { scope_shape(req.scope_type, req.scope_id.as_deref()) },
    )
    .await?;
    let scope = binding_scope(
        &db,
        &access,
        &user,
        req.scope_type,
        req.scope_id.as_deref(),
        Action::RbacManage,
    )
    .await?;
    let resource = format!(
        "{} {}:{} at {}",
        req.role,
        req.subject_type.as_str(),
        req.subject,
        req.scope_id.as_deref().unwrap_or("system")
    );
    let binding = change(
        &access,
        &user,
        "rbac.grant",
        "role_binding",
        &resource,
        async { rbac::bindings::grant(&db, &user.subject, &req, scope).await },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(binding)))
}

/// Revokes a binding. The last system admin stays (409).
#[utoipa::path(delete, path = "/v1/role-bindings/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 204, description = "revoked"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "it would leave no system admin"),
))]
pub async fn revoke(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let binding = change(&access, &user, "rbac.revoke", "role_binding", &id, async {
        rbac::bindings::get(&db, rbac::parse_id("id", &id)?).await
    })
    .await?;
    match binding.scope_id {
        None => {
            access
                .require(
                    &user.subject,
                    Check::new(Action::RbacManage, "system", "system"),
                )
                .await?
        }
        Some(p) => {
            access
                .require(
                    &user.subject,
                    Check::new(Action::RbacManage, "project", p).in_project(p),
                )
                .await?
        }
    }
    change(&access, &user, "rbac.revoke", "role_binding", &id, async {
        rbac::bindings::revoke(&db, &user.subject, &binding).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- access rules ----

/// Every access rule, highest priority first.
#[utoipa::path(get, path = "/v1/access-rules", tag = "rbac", security(("bearer" = [])), responses(
    (status = 200, body = AccessRuleList), (status = 401, body = Problem), (status = 403, body = Problem),
))]
pub async fn list_rules(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
) -> Result<Json<AccessRuleList>> {
    system(&access, &user, Action::RuleManage).await?;
    Ok(Json(rbac::rules::list(&db).await?))
}

/// Adds an access rule (e.g. deny `model.use` on `model` `smollm2*` for group `ml`).
#[utoipa::path(post, path = "/v1/access-rules", tag = "rbac", security(("bearer" = [])),
    request_body = CreateAccessRuleRequest, responses(
    (status = 201, body = AccessRule), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem, description = "unknown subject"),
))]
pub async fn create_rule(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiJson(req): ApiJson<CreateAccessRuleRequest>,
) -> Result<(StatusCode, Json<AccessRule>)> {
    system(&access, &user, Action::RuleManage).await?;
    let resource = format!(
        "{} {}:{}",
        req.action, req.resource_type, req.resource_pattern
    );
    let rule = change(
        &access,
        &user,
        "rule.create",
        "access_rule",
        &resource,
        async { rbac::rules::create(&db, &user.subject, &req).await },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// Removes an access rule.
#[utoipa::path(delete, path = "/v1/access-rules/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 204, description = "removed"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn delete_rule(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    system(&access, &user, Action::RuleManage).await?;
    change(&access, &user, "rule.delete", "access_rule", &id, async {
        rbac::rules::delete(&db, &user.subject, rbac::parse_id("id", &id)?).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit ----

/// The access audit, newest first: membership changes, grants and revokes, user state changes
/// and every denied request.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery), responses(
    (status = 200, body = AuditPage), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem),
))]
pub async fn audit_list(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>> {
    system(&access, &user, Action::AuditRead).await?;
    Ok(Json(rbac::audit::list(&db, &q).await?))
}

/// One access audit event.
#[utoipa::path(get, path = "/v1/audit/{id}", tag = "audit", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses(
    (status = 200, body = AuditEvent), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn audit_get(
    State(db): State<PgPool>,
    State(access): State<Access>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AuditEvent>> {
    let id = rbac::parse_id("id", &id)?;
    system(&access, &user, Action::AuditRead).await?;
    Ok(Json(rbac::audit::get(&db, id).await?))
}
