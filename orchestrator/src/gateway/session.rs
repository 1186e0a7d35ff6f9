//! The web console's cookie session at `/v1/auth/session`: log in, who is logged in, refresh,
//! log out. The access JWT travels in an HttpOnly, SameSite=Strict cookie that scripts cannot
//! read, and the refresh token in another that only these routes receive; the console keeps
//! the session's CSRF token in memory and sends it with every change. `CurrentUser`
//! (`state::extract`) accepts the session cookie wherever it accepts a bearer token, and
//! demands the CSRF token on state-changing requests that come with it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes::user::{AUTH_SESSION, CSRF_HEADER, REFRESH_COOKIE, SESSION_COOKIE};
use cynode_contracts::user::{ConsoleSession, LoginRequest};
use cynode_service_kit::http::ApiJson;
use uuid::Uuid;

use super::{admit_login, client};
use crate::auth::{Credential, CurrentUser};
use crate::authz::{Action, Check, PolicyScope, policy};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::users::{self, Opened, SessionKind};
use crate::web;

/// Logs in with handle and password and opens a console session: the cookies, and in the body
/// the CSRF token and what the user may do system-wide.
#[utoipa::path(post, path = "/v1/auth/session", tag = "auth", operation_id = "console_session_create", request_body = LoginRequest, responses(
    (status = 200, body = ConsoleSession, description = "logged in; sets the session and refresh cookies"),
    (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 429, body = Problem, description = "too many attempts; see Retry-After"),
))]
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response> {
    admit_login(&state, peer, &req)?;
    let opened = users::login(
        &state.sessions(),
        &req.handle,
        &req.password,
        SessionKind::Console,
        &client(peer, &headers),
    )
    .await?;
    respond(&state, peer, &headers, &opened).await
}

/// Who the session cookie belongs to, with the session's CSRF token: what a console loaded
/// afresh asks first. A console reloaded after its access cookie expired still holds a live
/// refresh cookie (this route receives it): then the answer is that session's, with
/// `expires_in` 0, and the console refreshes at once.
#[utoipa::path(get, path = "/v1/auth/session", tag = "auth", operation_id = "console_session_get", responses(
    (status = 200, body = ConsoleSession), (status = 400, body = Problem),
    (status = 401, body = Problem, description = "no console session, or it has ended"),
))]
pub async fn current(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: std::result::Result<CurrentUser, Error>,
) -> Result<Json<ConsoleSession>> {
    let user = match user {
        Ok(user) => user,
        Err(refused) => {
            return refreshable(&state, &headers)
                .await?
                .ok_or(refused)
                .map(Json);
        }
    };
    let Credential::Session(session_id) = user.credential else {
        return Err(Problem::validation(
            "this request came with an API key, which has no console session",
        )
        .into());
    };
    Ok(Json(describe(&state, &user.subject, session_id).await?))
}

/// The session of a live refresh cookie, to be refreshed now (`expires_in` 0).
async fn refreshable(state: &AppState, headers: &HeaderMap) -> Result<Option<ConsoleSession>> {
    let Some((session_id, token)) = refresh_cookie(headers) else {
        return Ok(None);
    };
    let Some(user_id) = users::refreshable(&state.db, session_id, token).await? else {
        return Ok(None);
    };
    let Some(subject) = users::session_subject(&state.db, user_id, session_id).await? else {
        return Ok(None);
    };
    let mut session = describe(state, &subject, session_id).await?;
    session.expires_in = 0;
    Ok(Some(session))
}

/// Exchanges the refresh cookie for new cookies. The refresh cookie names its session, and the
/// CSRF token must be that session's.
#[utoipa::path(post, path = "/v1/auth/session/refresh", tag = "auth", operation_id = "console_session_refresh", responses(
    (status = 200, body = ConsoleSession, description = "refreshed; sets new cookies"),
    (status = 401, body = Problem, description = "no refresh cookie, or its session has ended"),
    (status = 403, body = Problem, description = "the CSRF token is missing or not this session's"),
))]
pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response> {
    let (session_id, token) = refresh_cookie(&headers)
        .ok_or_else(|| Problem::unauthorized("no console session to refresh; log in"))?;
    check_csrf(&state, &headers, session_id)?;
    let opened = users::refresh(
        &state.sessions(),
        token,
        SessionKind::Console,
        Some(session_id),
        &client(peer, &headers),
    )
    .await?;
    respond(&state, peer, &headers, &opened).await
}

/// Logs out: the session is revoked (its access cookie stops working at once, its refresh
/// cookie too) and both cookies are cleared. Works after the access cookie has expired.
#[utoipa::path(delete, path = "/v1/auth/session", tag = "auth", operation_id = "console_session_delete", responses(
    (status = 204, description = "logged out; the cookies are cleared"),
    (status = 403, body = Problem, description = "the CSRF token is missing or not this session's"),
))]
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response> {
    if let Some((session_id, token)) = refresh_cookie(&headers) {
        check_csrf(&state, &headers, session_id)?;
        users::end_session(&state.db, session_id, token, &client(peer, &headers)).await?;
    }
    let secure = secure(&state, peer, &headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookies(response.headers_mut(), None, secure);
    Ok(response)
}

/// The refresh cookie: `<session id>.<refresh token>`.
fn refresh_cookie(headers: &HeaderMap) -> Option<(Uuid, &str)> {
    let (id, token) = web::cookie(headers, REFRESH_COOKIE)?.split_once('.')?;
    Some((Uuid::parse_str(id).ok()?, token))
}

fn check_csrf(state: &AppState, headers: &HeaderMap, session_id: Uuid) -> Result<()> {
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state.keys.csrf_matches(session_id, given) {
        true => Ok(()),
        false => Err(Problem::csrf().into()),
    }
}

/// The session's description and its cookies.
async fn respond(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    opened: &Opened,
) -> Result<Response> {
    let subject = users::session_subject(&state.db, opened.user_id, opened.session_id)
        .await?
        .ok_or_else(|| Problem::unauthorized("the session ended as it was opened"))?;
    let body = describe(state, &subject, opened.session_id).await?;
    let mut response = Json(body).into_response();
    set_cookies(
        response.headers_mut(),
        Some(Cookies {
            access: &opened.tokens.access_token,
            access_ttl: state.config.jwt_access_duration,
            refresh: &format!("{}.{}", opened.session_id, opened.tokens.refresh_token),
            refresh_ttl: state.config.console.session_duration,
        }),
        secure(state, peer, headers),
    );
    Ok(response)
}

async fn describe(
    state: &AppState,
    subject: &crate::authz::Subject,
    session_id: Uuid,
) -> Result<ConsoleSession> {
    let system_actions = Action::ALL
        .into_iter()
        .filter(|&a| policy().scope_of(a) == PolicyScope::System)
        .filter(|&a| subject.decide(&Check::system(a)).allowed())
        .map(|a| a.as_str().to_owned())
        .collect();
    Ok(ConsoleSession {
        user: users::me(&state.db, subject.user_id).await?,
        csrf_token: state.keys.csrf_token(session_id),
        expires_in: state.config.jwt_access_duration.as_secs(),
        system_actions,
    })
}

/// Whether the browser reached us over https: the console's public URL says so, or a trusted
/// reverse proxy does. Forwarding headers from anyone else are ignored (anyone can send them).
fn secure(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    let console = &state.config.console;
    let public_https = console
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let proxied_https = console.trusted_proxies.contains(&peer.ip())
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    public_https || proxied_https
}

struct Cookies<'a> {
    access: &'a str,
    access_ttl: Duration,
    refresh: &'a str,
    refresh_ttl: Duration,
}

/// Sets both cookies, or clears them (`None`).
fn set_cookies(headers: &mut HeaderMap, cookies: Option<Cookies<'_>>, secure: bool) {
    let (access, access_ttl, refresh, refresh_ttl) = match &cookies {
        Some(c) => (
            c.access,
            c.access_ttl.as_secs(),
            c.refresh,
            c.refresh_ttl.as_secs(),
        ),
        None => ("", 0, "", 0),
    };
    for (name, value, path, max_age) in [
        (SESSION_COOKIE, access, "/", access_ttl),
        (REFRESH_COOKIE, refresh, AUTH_SESSION, refresh_ttl),
    ] {
        let cookie = format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
            if secure { "; Secure" } else { "" }
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_cookie_lines(headers: &HeaderMap) -> Vec<String> {
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_only_over_https() {
        let mut headers = HeaderMap::new();
        let cookies = Cookies {
            access: "jwt",
            access_ttl: Duration::from_secs(900),
            refresh: "sid.tok",
            refresh_ttl: Duration::from_secs(3600),
        };
        set_cookies(&mut headers, Some(cookies), false);
        assert_eq!(
            set_cookie_lines(&headers),
            [
                "cynode_session=jwt; Path=/; Max-Age=900; HttpOnly; SameSite=Strict",
                "cynode_refresh=sid.tok; Path=/v1/auth/session; Max-Age=3600; HttpOnly; SameSite=Strict",
            ]
        );
        let mut cleared = HeaderMap::new();
        set_cookies(&mut cleared, None, true);
        assert_eq!(
            set_cookie_lines(&cleared),
            [
                "cynode_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
                "cynode_refresh=; Path=/v1/auth/session; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
            ]
        );
    }

    #[test]
    fn the_refresh_cookie_names_its_session() {
        let id = Uuid::new_v4();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{REFRESH_COOKIE}={id}.abc")).unwrap(),
        );
        assert_eq!(refresh_cookie(&headers), Some((id, "abc")));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("cynode_refresh=nodot"),
        );
        assert_eq!(refresh_cookie(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("cynode_refresh=notauuid.x"),
        );
        assert_eq!(refresh_cookie(&headers), None);
    }
}
