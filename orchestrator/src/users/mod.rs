//! Users and their sessions: bootstrap of the reserved accounts, login, refresh rotation, logout,
//! the auth audit log, and the accounts admins manage ([`accounts`]). The only writer of
//! `users`, `password_credentials`, `password_set_tokens`, `refresh_sessions` and
//! `auth_audit_log`.

pub mod accounts;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{TokenResponse, UserInfo};
use cynode_service_kit::secrets::Secret;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::auth::{self, Keys, TokenType};
use crate::config::Config;
use crate::error::{Error, Result};

pub const ADMIN_HANDLE: &str = "admin";
/// Owner of system-created work; it has no password and cannot log in.
pub const SYSTEM_HANDLE: &str = "system";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "the bootstrap admin does not exist yet and BOOTSTRAP_ADMIN_PASSWORD is not set: provide the systemd credential 'bootstrap-admin-password', BOOTSTRAP_ADMIN_PASSWORD_FILE or BOOTSTRAP_ADMIN_PASSWORD"
    )]
    MissingPassword,
    #[error(transparent)]
    Other(#[from] Error),
}

impl From<sqlx::Error> for BootstrapError {
    fn from(e: sqlx::Error) -> Self {
        Self::Other(e.into())
    }
}

/// Creates `system` and, on first start, `admin` with the given password. Idempotent; an existing
/// admin keeps its password.
pub async fn bootstrap(db: &PgPool, admin_password: Option<&Secret>) -> Result<(), BootstrapError> {
    let mut tx = db.begin().await?;
    // Two processes starting at once must not both create the admin.
    sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
        .execute(&mut *tx)
        .await?;
    if find_user_id(&mut *tx, SYSTEM_HANDLE).await?.is_none() {
        insert_user(&mut tx, SYSTEM_HANDLE, None, None, None).await?;
    }
    if find_user_id(&mut *tx, ADMIN_HANDLE).await?.is_none() {
        let password = admin_password.ok_or(BootstrapError::MissingPassword)?;
        let hash = auth::hash_password(password.expose())?;
        let admin = insert_user(&mut tx, ADMIN_HANDLE, None, None, Some(hash)).await?;
        crate::rbac::bindings::bind_system_admin(&mut tx, admin).await?;
        tracing::info!(handle = ADMIN_HANDLE, "bootstrap admin created");
    }
    tx.commit().await?;
    Ok(())
}

async fn find_user_id(db: impl PgExecutor<'_>, handle: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE handle = $1")
        .bind(handle)
        .fetch_optional(db)
        .await?)
}

/// The slug of a user's personal default project.
pub fn default_project_slug(user: Uuid) -> String {
    format!("default-{user}")
}

/// A user who owns a default project (`default-<uid>`) and, when given, has a password.
async fn insert_user(
    tx: &mut sqlx::PgConnection,
    handle: &str,
    display_name: Option<&str>,
    email: Option<&str>,
    password_hash: Option<String>,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, handle, display_name, email) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(handle)
        .bind(display_name)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    let project = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO projects (id, slug, display_name, updated_by) VALUES ($1, $2, $3, $4)",
    )
    .bind(project)
    .bind(default_project_slug(id))
    .bind(format!("Default project of {handle}"))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    crate::rbac::bindings::bind_owner(tx, id, project).await?;
    if let Some(hash) = password_hash {
        sqlx::query(
            "INSERT INTO password_credentials (id, user_id, password_hash, hash_alg)
             VALUES ($1, $2, $3, 'argon2id')",
        )
        .bind(Uuid::new_v4())
        .bind(id)
        .bind(hash.into_bytes())
        .execute(&mut *tx)
        .await?;
    }
    audit(
        &mut *tx,
        "user_created",
        Some(id),
        Some(handle),
        true,
        None,
        None,
    )
    .await?;
    Ok(id)
}

/// Request facts the audit log records.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

pub async fn audit(
    db: impl PgExecutor<'_>,
    event: &str,
    user_id: Option<Uuid>,
    handle: Option<&str>,
    success: bool,
    reason: Option<&str>,
    client: Option<&ClientInfo>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_audit_log
           (id, event_type, user_id, subject_handle, success, ip_address, user_agent, reason)
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7, $8)",
    )
    .bind(Uuid::new_v4())
    .bind(event)
    .bind(user_id)
    .bind(handle)
    .bind(success)
    .bind(client.and_then(|c| c.ip).map(|ip| ip.to_string()))
    .bind(client.and_then(|c| c.user_agent.clone()))
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}

/// What opening a session needs: the pool, the tokens' lifetimes and the key access JWTs are
/// signed with.
#[derive(Debug, Clone)]
pub struct Sessions {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub keys: Keys,
}

/// Who `user_id` is, with their groups, roles and rules, while the session `session_id` is
/// active and the user enabled: an access JWT is good only that long (logout, revocation and
/// disabling take effect at once). One query, authentication and subject together.
pub async fn session_subject(
    db: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<crate::authz::Subject>> {
    let row: Option<crate::rbac::SubjectRow> = sqlx::query_as(&format!(
        "WITH who AS (
            SELECT u.id, u.handle FROM refresh_sessions s JOIN users u ON u.id = s.user_id
            WHERE s.id = $1 AND s.user_id = $2 AND s.is_active AND u.is_active)
         {}",
        crate::rbac::SUBJECT_SELECT
    ))
    .bind(session_id)
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

fn invalid_credentials() -> Error {
    Problem::unauthorized("invalid handle or password").into()
}

/// A session just opened: its tokens, and its id (what the console's CSRF token is made of).
#[derive(Debug)]
pub struct Opened {
    pub tokens: TokenResponse,
    pub session_id: Uuid,
    pub user_id: Uuid,
}

/// Who a session is for, which decides how long its refresh token lasts: a program's login
/// for `JWT_REFRESH_DURATION` from each refresh, a console login for
/// `CONSOLE_SESSION_DURATION` from the password, however often it is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Api,
    Console,
}

/// Verifies a password and opens a session. The rate limit is checked by the caller first.
pub async fn login(
    state: &Sessions,
    handle: &str,
    password: &str,
    kind: SessionKind,
    client: &ClientInfo,
) -> Result<Opened> {
    let row: Option<(Uuid, bool, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT u.id, u.is_active, c.password_hash FROM users u
         LEFT JOIN password_credentials c ON c.user_id = u.id WHERE u.handle = $1",
    )
    .bind(handle)
    .fetch_optional(&state.db)
    .await?;
    let stored = row
        .as_ref()
        .and_then(|(_, _, hash)| hash.as_ref())
        .and_then(|h| String::from_utf8(h.clone()).ok())
        .unwrap_or_else(|| auth::decoy_hash().to_owned());
    let candidate = password.to_owned();
    // Argon2id takes ~100 ms of CPU; keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || auth::verify_password(&candidate, &stored))
        .await
        .map_err(Error::internal)?;
    let user = match row {
        Some((id, true, Some(_))) if matches => id,
        other => {
            let reason = match other {
                None => "unknown handle",
                Some((_, false, _)) => "user is disabled",
                Some((_, _, None)) => "user has no password",
                Some(_) => "wrong password",
            };
            let user_id = other.map(|(id, _, _)| id);
            audit(
                &state.db,
                "login_failure",
                user_id,
                Some(handle),
                false,
                Some(reason),
                Some(client),
            )
            .await?;
            return Err(invalid_credentials());
        }
    };
    let lifetime = match kind {
        SessionKind::Api => state.config.jwt_refresh_duration,
        SessionKind::Console => state.config.console.session_duration,
    };
    let refresh_expires =
        Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
    let mut tx = state.db.begin().await?;
    let opened = open_session(&mut tx, state, user, handle, refresh_expires).await?;
    audit(
        &mut *tx,
        "login_success",
        Some(user),
        Some(handle),
        true,
        None,
        Some(client),
    )
    .await?;
    tx.commit().await?;
    Ok(opened)
}

async fn open_session(
    tx: &mut sqlx::PgConnection,
    state: &Sessions,
    user_id: Uuid,
    handle: &str,
    refresh_expires: chrono::DateTime<Utc>,
) -> Result<Opened> {
    let session_id = Uuid::new_v4();
    let refresh_token = auth::random_token();
    sqlx::query(
        "INSERT INTO refresh_sessions (id, user_id, refresh_token_hash, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(auth::sha256(&refresh_token))
    .bind(refresh_expires)
    .execute(&mut *tx)
    .await?;
    let (mut claims, _) = Keys::claims(
        TokenType::Access,
        user_id.to_string(),
        state.config.jwt_access_duration,
    );
    claims.user_id = Some(user_id);
    claims.handle = Some(handle.to_owned());
    claims.sid = Some(session_id);
    Ok(Opened {
        tokens: TokenResponse {
            access_token: state.keys.sign(&claims)?,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in: state.config.jwt_access_duration.as_secs(),
        },
        session_id,
        user_id,
    })
}

/// Exchanges an active refresh token for a new pair; the old session ends (and with it the
/// access token issued alongside). A refresh token works exactly once. A program's session
/// starts a new refresh lifetime; a console session (`kind`) keeps the end it had, and is
/// refreshed only when the refresh token is that of `session` (the one the caller's CSRF token
/// was checked against).
pub async fn refresh(
    state: &Sessions,
    refresh_token: &str,
    kind: SessionKind,
    session: Option<Uuid>,
    client: &ClientInfo,
) -> Result<Opened> {
    let mut tx = state.db.begin().await?;
    let row: Option<(Uuid, String, chrono::DateTime<Utc>)> = sqlx::query_as(
        "UPDATE refresh_sessions s SET is_active = false, last_used_at = now(), updated_at = now()
         FROM users u
         WHERE s.refresh_token_hash = $1 AND s.is_active AND s.expires_at > now()
           AND ($2::uuid IS NULL OR s.id = $2)
           AND u.id = s.user_id AND u.is_active
         RETURNING u.id, u.handle, s.expires_at",
    )
    .bind(auth::sha256(refresh_token))
    .bind(session)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, handle, old_expires)) = row else {
        drop(tx);
        audit(
            &state.db,
            "refresh_failure",
            None,
            None,
            false,
            Some("unknown, used, expired or revoked refresh token"),
            Some(client),
        )
        .await?;
        return Err(Problem::unauthorized("refresh token is invalid, expired or revoked").into());
    };
    let refresh_expires = match kind {
        SessionKind::Api => {
            Utc::now()
                + chrono::Duration::from_std(state.config.jwt_refresh_duration)
                    .unwrap_or(chrono::Duration::MAX)
        }
        SessionKind::Console => old_expires,
    };
    let opened = open_session(&mut tx, state, user_id, &handle, refresh_expires).await?;
    audit(
        &mut *tx,
        "refresh_success",
        Some(user_id),
        Some(&handle),
        true,
        None,
        Some(client),
    )
    .await?;
    tx.commit().await?;
    Ok(opened)
}

/// Ends the caller's session and, when given, the session of `refresh_token` (if it is theirs).
pub async fn logout(
    db: &PgPool,
    user: &auth::CurrentUser,
    refresh_token: Option<&str>,
    client: &ClientInfo,
) -> Result<()> {
    let auth::Credential::Session(session_id) = user.credential else {
        // A 204 would suggest that the key stopped working; it did not.
        return Err(Problem::validation(
            "logout ends a login session, and this request came with an API key; revoke the key with DELETE /v1/users/me/api-keys/{id}",
        )
        .into());
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE refresh_sessions SET is_active = false, updated_at = now()
         WHERE user_id = $1 AND is_active AND (id = $2 OR refresh_token_hash = $3)",
    )
    .bind(user.id)
    .bind(session_id)
    .bind(refresh_token.map(auth::sha256))
    .execute(&mut *tx)
    .await?;
    audit(
        &mut *tx,
        "logout",
        Some(user.id),
        Some(&user.handle),
        true,
        None,
        Some(client),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The user of session `session_id` if `refresh_token` is its refresh token and it can still
/// be refreshed (active, not expired, the user enabled).
pub async fn refreshable(
    db: &PgPool,
    session_id: Uuid,
    refresh_token: &str,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT s.user_id FROM refresh_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id = $1 AND s.refresh_token_hash = $2 AND s.is_active AND s.expires_at > now()
           AND u.is_active",
    )
    .bind(session_id)
    .bind(auth::sha256(refresh_token))
    .fetch_optional(db)
    .await?)
}

/// Ends the console session `session_id` whose refresh token is `refresh_token`, if it is
/// still active: the logout of a console whose access cookie may already have expired.
pub async fn end_session(
    db: &PgPool,
    session_id: Uuid,
    refresh_token: &str,
    client: &ClientInfo,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let ended: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE refresh_sessions s SET is_active = false, updated_at = now()
         FROM users u
         WHERE s.id = $1 AND s.refresh_token_hash = $2 AND s.is_active AND u.id = s.user_id
         RETURNING u.id, u.handle",
    )
    .bind(session_id)
    .bind(auth::sha256(refresh_token))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((user_id, handle)) = ended {
        audit(
            &mut *tx,
            "logout",
            Some(user_id),
            Some(&handle),
            true,
            None,
            Some(client),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn me(db: &PgPool, user_id: Uuid) -> Result<UserInfo> {
    let (id, handle, email, is_active): (Uuid, String, Option<String>, bool) =
        sqlx::query_as("SELECT id, handle, email, is_active FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(db)
            .await?;
    Ok(UserInfo {
        id,
        handle,
        email,
        is_active,
    })
}
