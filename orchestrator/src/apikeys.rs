//! Personal API keys: long-lived bearer credentials for OpenAI clients, scripts and tools, which
//! cannot log in again every 15 minutes.
//!
//! A key is `cyn_` + 64 hex digits (32 bytes from the OS RNG). It is shown once, at creation;
//! the database keeps its SHA-256 (a hash of a 256-bit random secret needs no salt or slow hash)
//! plus a short prefix and the last four characters, so that a user can tell keys apart. A
//! key works wherever an access JWT does ([`crate::auth::CurrentUser`] accepts both) until it is
//! revoked or expires, which take effect at the next request. Creation, revocation and first
//! use are audited in `auth_audit_log`; the key itself never reaches a log, an error or a row.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    API_KEY_PREFIX, ApiKeyInfo, ApiKeyList, ApiKeyStatus, CreateApiKeyRequest, CreatedApiKey,
    MAX_ACTIVE_API_KEYS, MAX_API_KEY_DAYS, MAX_API_KEY_NAME_CHARS,
};
use cynode_service_kit::http::ApiJson;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::auth::{self, Credential, CurrentUser};
use crate::error::{Error, Result};
use crate::users::ClientInfo;
use crate::web::ApiPath;

/// Hex digits after the prefix: 32 random bytes.
const KEY_HEX_DIGITS: usize = 64;
/// Characters of the key lists show after `cyn_`.
const SHOWN_PREFIX_DIGITS: usize = 6;

/// Whether a bearer token is meant as an API key (rather than a JWT, which never starts so).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(API_KEY_PREFIX)
}

fn well_formed(key: &str) -> bool {
    key.strip_prefix(API_KEY_PREFIX).is_some_and(|digits| {
        digits.len() == KEY_HEX_DIGITS && digits.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// A fresh key: (key, prefix, last four).
fn generate() -> (String, String, String) {
    let key = format!("{API_KEY_PREFIX}{}", auth::random_token());
    let prefix = key[..API_KEY_PREFIX.len() + SHOWN_PREFIX_DIGITS].to_owned();
    let last_four = key[key.len() - 4..].to_owned();
    (key, prefix, last_four)
}

fn client_info(peer: Option<SocketAddr>, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: peer.map(|p| p.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

async fn audit(
    db: impl PgExecutor<'_>,
    event: &str,
    user: (Uuid, &str),
    key_id: Uuid,
    client: &ClientInfo,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_audit_log
           (id, event_type, user_id, subject_handle, api_key_id, success, ip_address, user_agent)
         VALUES ($1, $2, $3, $4, $5, true, $6::inet, $7)",
    )
    .bind(Uuid::new_v4())
    .bind(event)
    .bind(user.0)
    .bind(user.1)
    .bind(key_id)
    .bind(client.ip.map(|ip| ip.to_string()))
    .bind(client.user_agent.as_deref())
    .execute(db)
    .await?;
    Ok(())
}

/// The user behind `key`, for [`CurrentUser`]'s extractor. A revoked or expired key, or one of
/// a disabled user, is refused at once. `last_used_at` moves at most once a minute per key, and
/// the first use is audited.
pub async fn authenticate(db: &PgPool, parts: &Parts, key: &str) -> Result<CurrentUser> {
    // The messages below never repeat the key.
    let invalid = || Error::from(Problem::unauthorized("API key is invalid"));
    if !well_formed(key) {
        return Err(invalid());
    }
    type Row = (Uuid, Uuid, String, bool, bool, bool, bool, bool);
    let row: Option<Row> = sqlx::query_as(
        "SELECT k.id, k.user_id, u.handle, u.is_active,
                k.revoked_at IS NOT NULL,
                coalesce(k.expires_at <= now(), false),
                k.last_used_at IS NULL,
                coalesce(k.last_used_at < now() - interval '1 minute', true)
         FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1",
    )
    .bind(auth::sha256(key))
    .fetch_optional(db)
    .await?;
    let Some((key_id, user_id, handle, user_active, revoked, expired, never_used, stale)) = row
    else {
        return Err(invalid());
    };
    if revoked {
        return Err(Problem::unauthorized("API key has been revoked").into());
    }
    if expired {
        return Err(Problem::unauthorized("API key has expired").into());
    }
    if !user_active {
        return Err(Problem::unauthorized("the API key's user is disabled").into());
    }
    if never_used {
        let mut tx = db.begin().await?;
        // Only one of several concurrent first requests finds it still unused.
        let first = sqlx::query(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND last_used_at IS NULL",
        )
        .bind(key_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if first {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            let client = client_info(peer, &parts.headers);
            audit(
                &mut *tx,
                "api_key_first_use",
                (user_id, &handle),
                key_id,
                &client,
            )
            .await?;
        }
        tx.commit().await?;
    } else if stale {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now()
             WHERE id = $1 AND last_used_at < now() - interval '1 minute'",
        )
        .bind(key_id)
        .execute(db)
        .await?;
    }
    // Disabled between the two queries: refused like any disabled user.
    let subject = crate::rbac::subject_of(db, user_id)
        .await?
        .ok_or_else(|| Problem::unauthorized("the API key's user is disabled"))?;
    Ok(CurrentUser {
        id: user_id,
        handle,
        credential: Credential::ApiKey(key_id),
        subject: std::sync::Arc::new(subject),
    })
}

fn validate(req: &CreateApiKeyRequest) -> Result<()> {
    if req.name.trim().is_empty() {
        return Err(Problem::validation("name must not be empty").into());
    }
    if req.name.chars().count() > MAX_API_KEY_NAME_CHARS {
        return Err(Problem::validation(format!(
            "name must be at most {MAX_API_KEY_NAME_CHARS} characters"
        ))
        .into());
    }
    if req.name.chars().any(char::is_control) {
        return Err(Problem::validation("name must not contain control characters").into());
    }
    if let Some(days) = req.expires_in_days
        && !(1..=MAX_API_KEY_DAYS).contains(&days)
    {
        return Err(Problem::validation(format!(
            "expires_in_days must be from 1 to {MAX_API_KEY_DAYS}, not {days}"
        ))
        .into());
    }
    Ok(())
}

/// Creates an API key for the caller. The answer is the only time the key is shown.
///
/// Creating one needs a login session: a leaked key must not be able to mint keys that outlive
/// its own revocation.
#[utoipa::path(post, path = "/v1/users/me/api-keys", tag = "api-keys", operation_id = "api_key_create", request_body = CreateApiKeyRequest,
    security(("bearer" = [])), responses(
    (status = 201, body = CreatedApiKey, description = "the key, shown this once"),
    (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "the request came with an API key"),
    (status = 409, body = Problem, description = "the caller already has 50 active keys"),
))]
pub async fn create(
    State(db): State<PgPool>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<Response> {
    if let Credential::ApiKey(_) = user.credential {
        return Err(Problem::forbidden(
            "an API key cannot create API keys; log in with your password to create one",
        )
        .into());
    }
    validate(&req)?;
    let mut tx = db.begin().await?;
    // Serialises the caller's concurrent creations, so the limit holds.
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(user.id)
    .fetch_one(&mut *tx)
    .await?;
    if active >= MAX_ACTIVE_API_KEYS {
        return Err(Problem::conflict(format!(
            "you already have {active} active API keys, the most allowed is {MAX_ACTIVE_API_KEYS}; revoke one first"
        ))
        .into());
    }
    let id = Uuid::new_v4();
    let (key, prefix, last_four) = generate();
    let (created_at, expires_at) = sqlx::query_as(
        "INSERT INTO api_keys (id, user_id, name, key_hash, prefix, last_four, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7::int))
         RETURNING created_at, expires_at",
    )
    .bind(id)
    .bind(user.id)
    .bind(&req.name)
    .bind(auth::sha256(&key))
    .bind(&prefix)
    .bind(&last_four)
    .bind(req.expires_in_days.map(|d| d as i32))
    .fetch_one(&mut *tx)
    .await?;
    let client = client_info(Some(peer), &headers);
    audit(
        &mut *tx,
        "api_key_created",
        (user.id, &user.handle),
        id,
        &client,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, api_key_id = %id, "API key created");
    let body = CreatedApiKey {
        id,
        name: req.name,
        key,
        prefix,
        last_four,
        created_at,
        expires_at,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    name: String,
    prefix: String,
    last_four: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    expired: bool,
}

/// The caller's API keys, newest first, revoked and expired ones included; never the keys.
#[utoipa::path(get, path = "/v1/users/me/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = ApiKeyList), (status = 401, body = Problem)))]
pub async fn list(State(db): State<PgPool>, user: CurrentUser) -> Result<Json<ApiKeyList>> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT id, name, prefix, last_four, created_at, expires_at, last_used_at, revoked_at,
                coalesce(expires_at <= now(), false) AS expired
         FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(user.id)
    .fetch_all(&db)
    .await?;
    let api_keys = rows
        .into_iter()
        .map(|r| ApiKeyInfo {
            status: match (r.revoked_at, r.expired) {
                (Some(_), _) => ApiKeyStatus::Revoked,
                (None, true) => ApiKeyStatus::Expired,
                (None, false) => ApiKeyStatus::Active,
            },
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            last_four: r.last_four,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
        .collect();
    Ok(Json(ApiKeyList { api_keys }))
}

/// Revokes one of the caller's API keys; it is refused from the next request on. Revoking a
/// revoked key changes nothing. Another user's key, like an unknown id, is 404.
#[utoipa::path(delete, path = "/v1/users/me/api-keys/{id}", tag = "api-keys", operation_id = "api_key_revoke", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the key's id (not the key)")), responses(
    (status = 204, description = "revoked"), (status = 401, body = Problem), (status = 404, body = Problem),
))]
pub async fn revoke(
    State(db): State<PgPool>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let not_found = || Error::from(Problem::not_found(format!("no API key with id {id}")));
    let Ok(key_id) = id.parse::<Uuid>() else {
        return Err(not_found());
    };
    let mut tx = db.begin().await?;
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT revoked_at IS NULL FROM api_keys WHERE id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(key_id)
    .bind(user.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((live,)) = row else {
        return Err(not_found());
    };
    if live {
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1")
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        let client = client_info(Some(peer), &headers);
        audit(
            &mut *tx,
            "api_key_revoked",
            (user.id, &user.handle),
            key_id,
            &client,
        )
        .await?;
        tracing::info!(user_id = %user.id, api_key_id = %key_id, "API key revoked");
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Says in `/openapi.json` that the user bearer scheme takes API keys too.
#[derive(Debug)]
pub struct BearerTakesApiKeys;

impl utoipa::Modify for BearerTakesApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "user access JWT from /v1/auth/login, or a personal API key (cyn_...) from /v1/users/me/api-keys",
                    ))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_recognisable() {
        let (key, prefix, last_four) = generate();
        assert!(well_formed(&key), "{key}");
        assert!(looks_like_key(&key));
        assert_eq!(key.len(), 4 + 64);
        assert!(key.starts_with(&prefix) && prefix.len() == 10);
        assert!(key.ends_with(&last_four) && last_four.len() == 4);
        assert_ne!(generate().0, key);
        assert!(!well_formed("cyn_abc"));
        assert!(!well_formed(&format!("cyn_{}", "g".repeat(64))));
        assert!(!looks_like_key("eyJhbGciOiJIUzI1NiJ9.x.y"));
    }

    #[test]
    fn names_and_lifetimes_are_checked() {
        let req = |name: &str, days: Option<i64>| CreateApiKeyRequest {
            name: name.into(),
            expires_in_days: days,
        };
        for (bad, field) in [
            (req("", None), "name"),
            (req("  ", None), "name"),
            (req(&"a".repeat(129), None), "name"),
            (req("a\nb", None), "name"),
            (req("ok", Some(0)), "expires_in_days"),
            (req("ok", Some(-1)), "expires_in_days"),
            (req("ok", Some(3651)), "expires_in_days"),
        ] {
            let Err(Error::Problem(p, _)) = validate(&bad) else {
                panic!("{bad:?} passed");
            };
            assert!(p.detail.unwrap().contains(field), "{bad:?}");
        }
        assert!(validate(&req(&"é".repeat(128), Some(1))).is_ok());
        assert!(validate(&req("ci", Some(3650))).is_ok());
        assert!(validate(&req("ci", None)).is_ok());
    }
}
