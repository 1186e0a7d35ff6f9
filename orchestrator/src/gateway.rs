//! User gateway HTTP API (port 12080): authentication and tasks.

mod artifacts;
mod console;
mod session;
mod teams;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use cynode_contracts::artifacts::TaskUpload;
use cynode_contracts::mcp::{McpAuditPage, McpAuditQuery};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_contracts::user::{
    CancelResponse, CreateTaskRequest, DrainRequest, LoginRequest, LogoutRequest, NodeInfo,
    NodeList, RefreshRequest, Task, TaskList, TaskLogStream, TaskLogs, TaskLogsQuery, TaskResult,
    TaskStatus, TaskSteps, TokenResponse, UserInfo,
};
use cynode_service_kit::http::{ApiJson, ApiQuery};
use utoipa::OpenApi;

use crate::apikeys::BearerTakesApiKeys;
use crate::auth::CurrentUser;
use crate::authz::{Action, Check};
use crate::error::{Error, Result};
use crate::state::{AppState, http};
use crate::users::{self, ClientInfo};
use crate::web::{ApiPath, SecuritySchemes};
use crate::{apikeys, chat, mcp, nodes, sandbox_stop, task_logs, tasks, usage, web};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "CyNodeAI user gateway", description = "Authentication, tasks, API keys, usage and OpenAI-compatible chat"),
    paths(login, refresh, logout, session::create, session::current, session::refresh, session::delete, me, create_task, list_tasks, get_task, task_result, cancel_task,
          task_logs, task_steps, list_nodes, get_node, revoke_node, drain_node, undrain_node, mcp_audit, apikeys::create, apikeys::list, apikeys::revoke, usage::report,
          chat::models, chat::completions, chat::list_threads, chat::create_thread, chat::thread_messages,
          artifacts::http_list, artifacts::http_download, artifacts::http_upload,
          crate::preferences::http_list, crate::preferences::http_get, crate::preferences::http_put, crate::preferences::http_delete,
          crate::preferences::http_effective,
          teams::create_user, teams::list_users, teams::get_user, teams::disable_user, teams::enable_user,
          teams::reset_password, teams::revoke_sessions, teams::change_password, teams::set_password,
          teams::create_group, teams::list_groups, teams::get_group, teams::update_group,
          teams::group_members, teams::add_member, teams::remove_member,
          teams::create_project, teams::list_projects, teams::get_project, teams::update_project,
          teams::delete_project, teams::list_roles, teams::list_bindings, teams::grant, teams::revoke,
          teams::list_rules, teams::create_rule, teams::delete_rule, teams::audit_list, teams::audit_get,
          web::healthz, http::readyz),
    components(schemas(cynode_contracts::logs::TaskLogLine, cynode_contracts::logs::TaskLogEnd)),
    modifiers(&SecuritySchemes, &BearerTakesApiKeys),
)]
pub struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(routes::user::AUTH_LOGIN, post(login))
        .route(routes::user::AUTH_REFRESH, post(refresh))
        .route(routes::user::AUTH_LOGOUT, post(logout))
        .route(
            routes::user::AUTH_SESSION,
            post(session::create)
                .get(session::current)
                .delete(session::delete),
        )
        .route(routes::user::AUTH_SESSION_REFRESH, post(session::refresh))
        .route(routes::user::USERS_ME, get(me))
        .route(
            routes::user::USERS_ME_PASSWORD,
            post(teams::change_password),
        )
        .route(routes::user::AUTH_SET_PASSWORD, post(teams::set_password))
        .route(
            routes::user::USERS,
            post(teams::create_user).get(teams::list_users),
        )
        .route(routes::user::USER, get(teams::get_user))
        .route(routes::user::USER_DISABLE, post(teams::disable_user))
        .route(routes::user::USER_ENABLE, post(teams::enable_user))
        .route(
            routes::user::USER_RESET_PASSWORD,
            post(teams::reset_password),
        )
        .route(
            routes::user::USER_REVOKE_SESSIONS,
            post(teams::revoke_sessions),
        )
        .route(
            routes::user::GROUPS,
            post(teams::create_group).get(teams::list_groups),
        )
        .route(
            routes::user::GROUP,
            get(teams::get_group).patch(teams::update_group),
        )
        .route(
            routes::user::GROUP_MEMBERS,
            get(teams::group_members).post(teams::add_member),
        )
        .route(routes::user::GROUP_MEMBER, delete(teams::remove_member))
        .route(
            routes::user::PROJECTS,
            post(teams::create_project).get(teams::list_projects),
        )
        .route(
            routes::user::PROJECT,
            get(teams::get_project)
                .patch(teams::update_project)
                .delete(teams::delete_project),
        )
        .route(routes::user::ROLES, get(teams::list_roles))
        .route(
            routes::user::ROLE_BINDINGS,
            post(teams::grant).get(teams::list_bindings),
        )
        .route(routes::user::ROLE_BINDING, delete(teams::revoke))
        .route(
            routes::user::ACCESS_RULES,
            post(teams::create_rule).get(teams::list_rules),
        )
        .route(routes::user::ACCESS_RULE, delete(teams::delete_rule))
        .route(routes::user::AUDIT, get(teams::audit_list))
        .route(routes::user::AUDIT_EVENT, get(teams::audit_get))
        .route(
            routes::user::API_KEYS,
            post(apikeys::create).get(apikeys::list),
        )
        .route(routes::user::API_KEY, delete(apikeys::revoke))
        .route(routes::user::USAGE, get(usage::report))
        .route(routes::user::NODES, get(list_nodes))
        .route(routes::user::NODE, get(get_node).delete(revoke_node))
        .route(routes::user::NODE_DRAIN, post(drain_node))
        .route(routes::user::NODE_UNDRAIN, post(undrain_node))
        .route(routes::user::AUDIT_MCP, get(mcp_audit))
        .route(routes::user::TASKS, post(create_task).get(list_tasks))
        .route(routes::user::TASK, get(get_task))
        .route(routes::user::TASK_RESULT, get(task_result))
        .route(routes::user::TASK_STEPS, get(task_steps))
        .route(routes::user::TASK_CANCEL, post(cancel_task))
        .route(routes::user::TASK_LOGS, get(task_logs))
        .route(
            routes::user::TASK_ARTIFACTS,
            get(artifacts::http_list).put(artifacts::http_upload),
        )
        .route(routes::user::TASK_ARTIFACT, get(artifacts::http_download))
        .route(routes::user::PREFS, get(crate::preferences::http_list))
        .route(
            routes::user::PREFS_EFFECTIVE,
            get(crate::preferences::http_effective),
        )
        .route(
            routes::user::PREF,
            get(crate::preferences::http_get)
                .put(crate::preferences::http_put)
                .delete(crate::preferences::http_delete),
        )
        .route(
            routes::user::CHAT_THREADS,
            get(chat::list_threads).post(chat::create_thread),
        )
        .route(
            routes::user::CHAT_THREAD_MESSAGES,
            get(chat::thread_messages),
        )
        .merge(
            Router::new()
                .route(routes::user::MODELS, get(chat::models))
                .route(routes::user::CHAT_COMPLETIONS, post(chat::completions))
                .route_layer(axum::middleware::from_fn(chat::openai_errors)),
        )
        .route(routes::OPENAPI, get(openapi))
        .fallback(console::serve);
    http::finish(routes, state).layer(axum::middleware::from_fn(console::security_headers))
}

/// The OpenAPI document, with this gateway's request body limit in
/// `info.x-max-request-body-bytes` (a setting, so not in the static document).
async fn openapi(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    let limit = state.config.max_request_body_bytes;
    doc.info.extensions = Some(
        utoipa::openapi::extensions::ExtensionsBuilder::new()
            .add("x-max-request-body-bytes", limit)
            .build(),
    );
    Json(doc)
}

/// Revokes a node (admin only): its node JWT and worker token stop working at once, and its
/// slug can be registered again only as a new node.
#[utoipa::path(delete, path = "/v1/nodes/{slug}", tag = "nodes", security(("bearer" = [])),
    params(("slug" = String, Path, description = "the node's slug")), responses(
    (status = 204, description = "revoked"), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "no role allows it"), (status = 404, body = Problem),
))]
async fn revoke_node(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode> {
    require_system(&state, &user, Action::NodeManage).await?;
    nodes::revoke(&state.nodes(), &slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every node with its state, capacity, running jobs and models (admin only).
#[utoipa::path(get, path = "/v1/nodes", tag = "nodes", security(("bearer" = [])), responses(
    (status = 200, body = NodeList), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "no role allows it"),
))]
async fn list_nodes(State(state): State<AppState>, user: CurrentUser) -> Result<Json<NodeList>> {
    require_system(&state, &user, Action::NodeRead).await?;
    Ok(Json(
        nodes::list(&state.db, state.config.node_stale_after).await?,
    ))
}

/// One node (admin only).
#[utoipa::path(get, path = "/v1/nodes/{slug}", tag = "nodes", security(("bearer" = [])),
    params(("slug" = String, Path, description = "the node's slug")), responses(
    (status = 200, body = NodeInfo), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "no role allows it"), (status = 404, body = Problem),
))]
async fn get_node(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<NodeInfo>> {
    require_system(&state, &user, Action::NodeRead).await?;
    Ok(Json(
        nodes::info(&state.db, state.config.node_stale_after, &slug).await?,
    ))
}

/// The MCP gateway's audit (admin only), newest first: one entry per tool call, allowed or
/// denied, never its arguments or result.
#[utoipa::path(get, path = "/v1/audit/mcp", tag = "audit", security(("bearer" = [])),
    params(McpAuditQuery), responses(
    (status = 200, body = McpAuditPage), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "no role allows it"),
))]
async fn mcp_audit(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(query): ApiQuery<McpAuditQuery>,
) -> Result<Json<McpAuditPage>> {
    require_system(&state, &user, Action::AuditRead).await?;
    Ok(Json(mcp::audit::list(&state.db, &query).await?))
}

/// Takes a node out of service (admin only): no new jobs; its running jobs finish, or once the
/// optional deadline has passed run again on another node.
#[utoipa::path(post, path = "/v1/nodes/{slug}/drain", tag = "nodes", security(("bearer" = [])),
    params(("slug" = String, Path, description = "the node's slug")),
    request_body(content = Option<DrainRequest>, description = "optional"), responses(
    (status = 200, body = NodeInfo), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "no role allows it"), (status = 404, body = Problem),
))]
async fn drain_node(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(slug): ApiPath<String>,
    body: Option<ApiJson<DrainRequest>>,
) -> Result<Json<NodeInfo>> {
    require_system(&state, &user, Action::NodeManage).await?;
    let req = body.map(|ApiJson(req)| req).unwrap_or_default();
    Ok(Json(nodes::drain(&state.nodes(), &slug, &req).await?))
}

/// Puts a drained node back in service (admin only).
#[utoipa::path(post, path = "/v1/nodes/{slug}/undrain", tag = "nodes", security(("bearer" = [])),
    params(("slug" = String, Path, description = "the node's slug")), responses(
    (status = 200, body = NodeInfo), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "no role allows it"), (status = 404, body = Problem),
))]
async fn undrain_node(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<NodeInfo>> {
    require_system(&state, &user, Action::NodeManage).await?;
    Ok(Json(nodes::undrain(&state.nodes(), &slug).await?))
}

/// A system-level action (nodes, the MCP audit), audited when denied.
async fn require_system(state: &AppState, user: &CurrentUser, action: Action) -> Result<()> {
    state
        .access()
        .require(&user.subject, Check::system(action))
        .await
}

/// The peer address is the client; forwarding headers are not trusted, since anyone can send
/// them and dodge the per-IP limit.
fn client(peer: SocketAddr, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: Some(peer.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

const MAX_HANDLE_BYTES: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Logs in with handle and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 429, body = Problem, description = "too many attempts; see Retry-After"),
))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>> {
    admit_login(&state, peer, &req)?;
    let info = client(peer, &headers);
    Ok(Json(
        users::login(
            &state.sessions(),
            &req.handle,
            &req.password,
            users::SessionKind::Api,
            &info,
        )
        .await?
        .tokens,
    ))
}

/// What a password login must pass before the password is even looked at: sane sizes, then the
/// per-client and per-handle rate limit. Shared by the API login and the console's.
fn admit_login(state: &AppState, peer: SocketAddr, req: &LoginRequest) -> Result<()> {
    if req.handle.trim().is_empty() {
        return Err(Problem::validation("handle must not be empty").into());
    }
    if req.password.is_empty() {
        return Err(Problem::validation("password must not be empty").into());
    }
    // Before the limiter (its keys), Argon2 (its CPU) and the audit log (its rows) see them.
    if req.handle.len() > MAX_HANDLE_BYTES {
        return Err(Problem::validation(format!(
            "handle must be at most {MAX_HANDLE_BYTES} bytes"
        ))
        .into());
    }
    if req.password.len() > MAX_PASSWORD_BYTES {
        return Err(Problem::validation(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        ))
        .into());
    }
    let keys = [
        format!("ip:{}", peer.ip()),
        format!("handle:{}", req.handle.to_lowercase()),
    ];
    if let Err(retry_after) = state.limiter.check(&keys) {
        return Err(Error::Problem(
            Problem::rate_limited(
                "too many login attempts for this client or handle; try again later",
            ),
            Some(retry_after),
        ));
    }
    Ok(())
}

/// Exchanges a refresh token for a new token pair (the old refresh token stops working).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenResponse), (status = 400, body = Problem), (status = 401, body = Problem),
))]
async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>> {
    if req.refresh_token.is_empty() {
        return Err(Problem::validation("refresh_token must not be empty").into());
    }
    let info = client(peer, &headers);
    Ok(Json(
        users::refresh(
            &state.sessions(),
            &req.refresh_token,
            users::SessionKind::Api,
            None,
            &info,
        )
        .await?
        .tokens,
    ))
}

/// Ends the session: the access token and its refresh token (and `refresh_token`, if given)
/// are refused from now on. The body is optional.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body(content = LogoutRequest, description = "optional"),
    security(("bearer" = [])), responses(
    (status = 204, description = "logged out"), (status = 400, body = Problem), (status = 401, body = Problem),
))]
async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    body: Bytes,
) -> Result<StatusCode> {
    let req: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::from(Problem::validation(format!("malformed logout body: {e}"))))?
    };
    let info = client(peer, &headers);
    users::logout(&state.db, &user, req.refresh_token.as_deref(), &info).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller.
#[utoipa::path(get, path = "/v1/users/me", tag = "users", security(("bearer" = [])), responses(
    (status = 200, body = UserInfo), (status = 401, body = Problem),
))]
async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<Json<UserInfo>> {
    Ok(Json(users::me(&state.db, user.id).await?))
}

/// Creates a task. `script`/`commands` run as `sh -c` in a sandbox; `prompt` is never run as
/// shell. As `multipart/form-data`, the `task` part is the JSON body and every other part a
/// file (at most 16, 10 MiB each) stored as the artifact `attachments/<filename>`; the task
/// and its files are created together or not at all.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks",
    request_body(content((CreateTaskRequest = "application/json"), (TaskUpload = "multipart/form-data"))),
    security(("bearer" = [])), responses(
    (status = 201, body = Task), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 413, body = Problem),
))]
async fn create_task(
    State(state): State<AppState>,
    user: CurrentUser,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<Task>)> {
    use axum::extract::{FromRequest, Multipart};
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (req, uploads) = if multipart {
        let form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| {
                Error::from(Problem::validation(format!(
                    "multipart body: {}",
                    e.body_text()
                )))
            })?;
        tasks::read_multipart(form).await?
    } else {
        let ApiJson(req) = ApiJson::<CreateTaskRequest>::from_request(request, &state)
            .await
            .map_err(|e| Error::Problem(e.problem, e.retry_after_secs))?;
        (req, Vec::new())
    };
    Ok((
        StatusCode::CREATED,
        Json(
            tasks::create(
                &state.db,
                &state.access(),
                state.planner.as_ref(),
                &state.signals(),
                &user,
                req,
                uploads,
            )
            .await?,
        ),
    ))
}

/// The tasks the caller may read (in every project where a role lets them), newest first, each
/// with its project and creator; `status`, `project` (id or slug) and `mine=true` filter before
/// `limit`/`offset` paginate.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", security(("bearer" = [])), params(
    ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "1..200, default 50"),
    ("offset" = Option<u64>, Query),
    ("cursor" = Option<String>, Query, pattern = "^[0-9]+$", description = "opaque; from next_cursor"),
    ("status" = inline(Option<TaskStatus>), Query),
    ("project" = Option<String>, Query, description = "project id or slug"),
    ("mine" = Option<bool>, Query, description = "only tasks the caller created"),
), responses((status = 200, body = TaskList), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list_tasks(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TaskList>> {
    Ok(Json(tasks::list(&state.db, &user, &query).await?))
}

/// One task, by id, or by name among the caller's own tasks (names are unique per creator; name
/// another member's task by its id). A task in a project the caller holds no role in is 404.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name")), responses(
    (status = 200, body = Task), (status = 401, body = Problem), (status = 404, body = Problem),
))]
async fn get_task(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>> {
    Ok(Json(
        tasks::get(&state.db, &state.access(), &user, &id).await?,
    ))
}

/// The task's jobs with the worker's full results.
#[utoipa::path(get, path = "/v1/tasks/{id}/result", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name")), responses(
    (status = 200, body = TaskResult), (status = 401, body = Problem), (status = 404, body = Problem),
))]
async fn task_result(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskResult>> {
    Ok(Json(
        tasks::result(&state.db, &state.access(), &user, &id).await?,
    ))
}

/// A prompt task's Project Manager steps: each model call, its decision, the job it ran and
/// that job's output as fed back, token counts and timings (`task.read`).
#[utoipa::path(get, path = "/v1/tasks/{id}/steps", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name")), responses(
    (status = 200, body = TaskSteps), (status = 401, body = Problem), (status = 404, body = Problem),
))]
async fn task_steps(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskSteps>> {
    Ok(Json(
        tasks::steps(&state.db, &state.access(), &user, &id).await?,
    ))
}

/// Cancels an unfinished task; a finished one is 409.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "task id or name")), responses(
    (status = 200, body = CancelResponse), (status = 401, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem, description = "task already finished"),
))]
async fn cancel_task(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CancelResponse>> {
    let (canceled, running) =
        tasks::cancel(&state.db, &state.access(), &state.worker_tokens, &user, &id).await?;
    // After the cancel committed: a node that cannot stop the sandbox changes nothing.
    sandbox_stop::stop_sandboxes(&state.http, &running, sandbox_stop::Stop::Cancel).await;
    Ok(Json(canceled))
}

/// stdout/stderr of the task's jobs, concatenated. With `follow=true`, server-sent events
/// instead: `line` events (`TaskLogLine`) as the jobs print them, then one `end`
/// (`TaskLogEnd`) once the task is terminal.
#[utoipa::path(get, path = "/v1/tasks/{id}/logs", tag = "tasks", security(("bearer" = [])), params(
    ("id" = String, Path, description = "task id or name"),
    ("stream" = inline(Option<TaskLogStream>), Query, description = "default all"),
    ("follow" = Option<bool>, Query, description = "true: stream as text/event-stream until the task ends; default false"),
), responses((status = 200, description = "without follow: TaskLogs; with follow=true: events `line` (TaskLogLine) and a last `end` (TaskLogEnd)",
        content((TaskLogs = "application/json"), (String = "text/event-stream"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn task_logs(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let query = TaskLogsQuery::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(
        |(name, why)| {
            Error::from(Problem::validation(format!(
                "query parameter {name}: {why}"
            )))
        },
    )?;
    if query.follow {
        let task_id =
            tasks::resolve(&state.db, &state.access(), &user, &id, Action::TaskRead).await?;
        return Ok(task_logs::follow(state.logs(), task_id, query.stream));
    }
    Ok(
        Json(tasks::logs(&state.db, &state.access(), &user, &id, query.stream).await?)
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    /// Swagger UI (and any generated client) finds an operation by its id: two routes with one
    /// id make "Try it out" call the wrong one.
    #[test]
    fn every_operation_has_its_own_id() {
        let doc = serde_json::to_value(super::ApiDoc::openapi()).unwrap();
        let mut seen = std::collections::BTreeMap::<String, String>::new();
        let mut repeated = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                let here = format!("{} {path}", method.to_uppercase());
                if let Some(first) = seen.insert(id.to_owned(), here.clone()) {
                    repeated.push(format!("{id}: {first} and {here}"));
                }
            }
        }
        assert!(repeated.is_empty(), "{repeated:#?}");
    }
}
