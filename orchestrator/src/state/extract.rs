//! Who is calling: the extractors that establish [`CurrentUser`] (an access JWT whose session is
//! active, from the Authorization header or the console's session cookie, or a personal API
//! key, with the subject authorization decides over) and
//! [`CurrentNode`] (a node JWT of a node that is
//! still registered) for the servers' routes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cynode_contracts::problem::Problem;

use axum::http::header::AUTHORIZATION;
use cynode_contracts::routes;

use super::AppState;
use crate::auth::{Credential, CurrentNode, CurrentUser, TokenType, bearer};
use crate::error::{Error, Result};
use crate::{apikeys, nodes, users, web};

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let parts: &Parts = parts;
        // A request with an Authorization header is a program's; without one, the console's
        // session cookie may stand in for the access token.
        let cookie = match parts.headers.contains_key(AUTHORIZATION) {
            false => web::cookie(&parts.headers, routes::user::SESSION_COOKIE),
            true => None,
        };
        let token = match cookie {
            Some(token) => token,
            None => bearer(parts)?,
        };
        if cookie.is_none() && apikeys::looks_like_key(token) {
            return apikeys::authenticate(&state.db, parts, token).await;
        }
        let claims = state.keys.verify(token, TokenType::Access)?;
        let (Some(user_id), Some(session_id)) = (claims.user_id, claims.sid) else {
            return Err(Problem::unauthorized("token is invalid").into());
        };
        let subject = users::session_subject(&state.db, user_id, session_id)
            .await?
            .ok_or_else(|| {
                Problem::unauthorized(
                    "session has been revoked or logged out, or the user is disabled",
                )
            })?;
        // A browser sends the cookie with any request to this origin, including one a hostile
        // page makes it send: a change needs proof that the console itself asked.
        if cookie.is_some() && !parts.method.is_safe() {
            let given = parts
                .headers
                .get(routes::user::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !state.keys.csrf_matches(session_id, given) {
                return Err(Problem::csrf().into());
            }
        }
        Ok(Self {
            id: user_id,
            handle: subject.handle.clone(),
            credential: Credential::Session(session_id),
            subject: std::sync::Arc::new(subject),
        })
    }
}

impl FromRequestParts<AppState> for CurrentNode {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let claims = state.keys.verify(bearer(parts)?, TokenType::Node)?;
        let (Some(id), Some(slug)) = (claims.node_id, claims.node_slug) else {
            return Err(Problem::unauthorized("token is invalid").into());
        };
        if !nodes::registered(&state.db, id, &slug).await? {
            return Err(Problem::not_found(format!("node {slug} is not registered")).into());
        }
        Ok(Self { id, slug })
    }
}
