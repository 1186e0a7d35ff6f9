//! OpenAI-compatible chat on the user gateway: `GET /v1/models`, `POST /v1/chat/completions`
//! (streaming or not) and the caller's stored conversations, `GET /v1/chat/threads[/{id}/messages]`.
//!
//! A completion goes through the pipeline of `orchestrator.md` §4 in order: authenticate,
//! validate, resolve the project (`OpenAI-Project`), replace detected secrets with
//! `SECRET_REDACTED` ([`redact`]), store the new message in the caller's thread ([`threads`]),
//! route (`cynodeai.pm` or no model → the Project Manager; any other model → a node that serves
//! it, through [`crate::node_inference`]), store the answer, record token usage and one
//! `chat_audit_log` row (no message content), answer. The two OpenAI routes answer errors in
//! OpenAI's shape, `{"error":{"message","type","param","code"}}`, never problem+json.
//!
//! The routes take the Project Manager's handles ([`ProjectManager`]: the pool, settings, node
//! client and metrics), which answering with any other model needs as well.
//!
//! One file per concern: `request` (what a request says: its body, checked, and its headers),
//! `routing` (who answers: the Project Manager or a node serving the model), `call` (the end of
//! a call: its answer, token usage and audit row), `errors` (the OpenAI error shape), `stream`
//! (server-sent events), `redact` and `threads` (the stored conversations).

mod call;
mod errors;
pub mod redact;
mod request;
mod routing;
pub mod stream;
pub mod threads;

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use cynode_contracts::problem::Problem;
use cynode_contracts::routes::user::CHAT_THREAD_HEADER;
use cynode_contracts::user::{
    ChatCompletion, ChatCompletionRequest, ChatMessageList, ChatThread, ChatThreadList,
    CreateThreadRequest, ModelList, ModelObject, OpenAiError, PM_MODEL, PageQuery, ThreadListQuery,
};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::authz::{Action, Check};
use crate::error;
use crate::node_inference;
use crate::pm::ProjectManager;
use crate::rbac::Access;
use crate::web::ApiPath;
use cynode_service_kit::http::{ApiJson, ApiQuery};

pub use self::call::{Call, Outcome, usage_of};
pub use self::errors::{ChatError, error_body, openai_errors};
pub use self::request::{Validated, text_of};
use self::request::{project, thread_header};
pub use self::routing::{PmAnswer, completion_timeout};
pub use self::stream::sse_response;
use redact::Findings;

/// Every model the caller can chat with in the project (`OpenAI-Project`, else their default
/// one): `cynodeai.pm`, then each model a dispatchable node serves that `model.use` allows them
/// (USRGWY-0127).
#[utoipa::path(get, path = "/v1/models", tag = "chat", security(("bearer" = [])),
    params(("OpenAI-Project" = Option<Uuid>, Header, description = "the project; default: the caller's default project")),
    responses(
    (status = 200, body = ModelList), (status = 401, body = OpenAiError), (status = 404, body = OpenAiError),
))]
pub async fn models(
    State(state): State<ProjectManager>,
    headers: HeaderMap,
    user: Result<CurrentUser, error::Error>,
) -> Result<Json<ModelList>, ChatError> {
    let user = user?;
    let project_id = project(&state, &user, &headers).await?;
    // A project the caller holds no role in does not exist for them.
    Access {
        db: state.db.clone(),
    }
    .require(
        &user.subject,
        Check::new(Action::ProjectRead, "project", project_id).in_project(project_id),
    )
    .await?;
    let served = node_inference::served_models(&state.db, state.config.node_stale_after).await?;
    let may_use = |model: &String| {
        user.subject
            .decide(&Check::new(Action::ModelUse, "model", model).in_project(project_id))
            .allowed()
    };
    let model = |id: String| ModelObject {
        id,
        object: "model".into(),
        created: 0,
        owned_by: "cynodeai".into(),
    };
    let data = std::iter::once(PM_MODEL.to_owned())
        .chain(served.into_iter().filter(|m| m != PM_MODEL && may_use(m)))
        .map(model)
        .collect();
    Ok(Json(ModelList {
        object: "list".into(),
        data,
    }))
}

/// A chat completion, OpenAI-style. `model` empty or absent, or `cynodeai.pm`: the Project
/// Manager answers; any other model: a node that serves it. The whole `messages` history is
/// passed on, with detected secrets replaced by `SECRET_REDACTED`. With `stream: true` the
/// answer is server-sent `chat.completion.chunk` events as the model produces them, then
/// `data: [DONE]`; a last chunk with `usage` comes only with `stream_options.include_usage`.
/// The conversation is stored in the caller's thread for the project (`OpenAI-Project`, else
/// the default), which continues until 2 h idle; `X-CyNodeAI-Thread-Id` names another of the
/// caller's threads, and the answer's `X-CyNodeAI-Thread-Id` says which one was used.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "chat", security(("bearer" = [])),
    request_body = ChatCompletionRequest,
    params(
        ("OpenAI-Project" = Option<Uuid>, Header, description = "project of the conversation; default: the caller's default project"),
        ("X-CyNodeAI-Thread-Id" = Option<Uuid>, Header, description = "continue this thread of the caller"),
    ),
    responses(
        (status = 200, description = "the answer; `text/event-stream` of `chat.completion.chunk` with `stream: true`",
            headers(("X-CyNodeAI-Thread-Id" = Uuid, description = "the thread the exchange was stored in")),
            content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, body = OpenAiError, description = "code invalid_request"),
        (status = 401, body = OpenAiError, description = "code invalid_api_key"),
        (status = 404, body = OpenAiError, description = "code model_not_found, or an unknown thread"),
        (status = 502, body = OpenAiError, description = "code orchestrator_inference_failed"),
        (status = 503, body = OpenAiError, description = "code model_unavailable: no node serving the model answers"),
        (status = 504, body = OpenAiError, description = "code cynodeai_completion_timeout"),
    ))]
pub async fn completions(
    State(state): State<ProjectManager>,
    headers: HeaderMap,
    user: Result<CurrentUser, error::Error>,
    body: Bytes,
) -> Result<Response, ChatError> {
    let started = Instant::now();
    let user = user?;
    let mut request = Validated::parse(&body)?;
    let project_id = project(&state, &user, &headers).await?;
    let access = Access {
        db: state.db.clone(),
    };
    access
        .require(
            &user.subject,
            Check::new(Action::ChatUse, "project", project_id).in_project(project_id),
        )
        .await?;
    if request.model != PM_MODEL {
        access
            .require(
                &user.subject,
                Check::new(Action::ModelUse, "model", &request.model).in_project(project_id),
            )
            .await?;
    }
    let mut call = Call {
        state: state.clone(),
        principal: user.principal(),
        project_id: Some(project_id),
        thread_id: None,
        model: request.model.clone(),
        stream: request.stream,
        findings: Findings::default(),
        started,
    };
    let result = async {
        call.findings = request.redact();
        let named = thread_header(&headers)?;
        let last = request.last_message();
        let thread = threads::store_user_message(
            &state.db,
            user.id,
            Some(project_id),
            named,
            &last.0,
            &last.1,
        )
        .await?;
        call.thread_id = Some(thread);
        if request.model == PM_MODEL {
            routing::pm(&call, &user, request).await
        } else {
            routing::node(&call, request).await
        }
    }
    .await;
    match result {
        Ok(mut response) => {
            if let Some(thread) = call.thread_id
                && let Ok(value) = HeaderValue::from_str(&thread.to_string())
            {
                response.headers_mut().insert(CHAT_THREAD_HEADER, value);
            }
            Ok(response)
        }
        Err(e) => {
            let how = Outcome {
                outcome: e.outcome(),
                status: e.status.as_u16(),
                error_code: Some(e.code),
                usage: None,
            };
            call.close(None, None, how).await;
            Err(e)
        }
    }
}

/// The caller's chat threads, newest first; with `project` (id or slug), every member's
/// threads of that project, for whoever may read them (`thread.read`: viewers and up). A
/// project the caller holds no role in is 404.
#[utoipa::path(get, path = "/v1/chat/threads", tag = "chat", security(("bearer" = [])),
    params(ThreadListQuery), responses(
    (status = 200, body = ChatThreadList), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn list_threads(
    State(state): State<ProjectManager>,
    user: CurrentUser,
    ApiQuery(query): ApiQuery<ThreadListQuery>,
) -> error::Result<Json<ChatThreadList>> {
    let (limit, offset) = page(&PageQuery {
        limit: query.limit,
        offset: query.offset,
    })?;
    let which = match &query.project {
        None => threads::Threads::Of(user.id),
        Some(text) => {
            let r = crate::rbac::Ref::parse("project", text)?;
            let (project, _, _) =
                crate::projects::find(&mut *state.db.acquire().await?, &r).await?;
            Access {
                db: state.db.clone(),
            }
            .require(
                &user.subject,
                Check::new(Action::ThreadRead, "project", project).in_project(project),
            )
            .await?;
            threads::Threads::In(project)
        }
    };
    Ok(Json(threads::list(&state.db, which, limit, offset).await?))
}

/// Starts a new, empty thread in a project the caller may chat in (default: their default
/// project); completions sent with its id in `X-CyNodeAI-Thread-Id` go to it.
#[utoipa::path(post, path = "/v1/chat/threads", tag = "chat", security(("bearer" = [])),
    request_body = CreateThreadRequest, responses(
    (status = 201, body = ChatThread), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn create_thread(
    State(state): State<ProjectManager>,
    user: CurrentUser,
    ApiJson(req): ApiJson<CreateThreadRequest>,
) -> error::Result<(axum::http::StatusCode, Json<ChatThread>)> {
    let title = match req.title.as_deref().map(str::trim) {
        Some("") => return Err(Problem::validation("title must not be blank").into()),
        Some(t) if t.chars().count() > 80 => {
            return Err(Problem::validation("title must be at most 80 characters").into());
        }
        other => other,
    };
    let project = match req.project_id {
        Some(id) => {
            let r = crate::rbac::Ref::parse("project", &id.to_string())?;
            crate::projects::find(&mut *state.db.acquire().await?, &r)
                .await?
                .0
        }
        None => crate::projects::default_of(&state.db, user.id).await?,
    };
    Access {
        db: state.db.clone(),
    }
    .require(
        &user.subject,
        Check::new(Action::ChatUse, "project", project).in_project(project),
    )
    .await?;
    let thread = threads::create(&state.db, user.id, project, title).await?;
    Ok((axum::http::StatusCode::CREATED, Json(thread)))
}

/// A thread's messages, oldest first: the caller's own thread, or one in a project whose
/// threads they may read (`thread.read`); any other is 404.
#[utoipa::path(get, path = "/v1/chat/threads/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery), responses(
    (status = 200, body = ChatMessageList), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
))]
pub async fn thread_messages(
    State(state): State<ProjectManager>,
    user: CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> error::Result<Json<ChatMessageList>> {
    let (limit, offset) = page(&query)?;
    let missing = || error::Error::from(Problem::not_found(format!("thread {id} does not exist")));
    let (owner, project) = threads::owner(&state.db, id).await?.ok_or_else(missing)?;
    if owner != user.id {
        let project = project.unwrap_or_default();
        let check = Check::new(Action::ThreadRead, "thread", id)
            .in_project(project)
            .owned_by(owner);
        match (Access {
            db: state.db.clone(),
        })
        .require(&user.subject, check)
        .await
        {
            Err(error::Error::Problem(p, _)) if p.status == 404 => return Err(missing()),
            other => other?,
        }
    }
    Ok(Json(threads::messages(&state.db, id, limit, offset).await?))
}

fn page(query: &PageQuery) -> error::Result<(i64, i64)> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::validation("query parameter limit: must be 1 to 200").into());
    }
    let offset = i64::try_from(query.offset.unwrap_or(0))
        .map_err(|_| Problem::validation("query parameter offset: too large"))?;
    Ok((i64::from(limit), offset))
}
