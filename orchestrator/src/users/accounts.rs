//! The accounts admins manage: create, list, get, disable, enable, reset a password, end
//! sessions; a user's own password change; redeeming a set-password token. Users are disabled,
//! never deleted: their tasks, usage and audit keep naming them.

use chrono::{DateTime, Duration, Utc};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    ChangePasswordRequest, CreateUserRequest, CreatedUser, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
    PasswordReset, PasswordSetToken, SetPasswordRequest, UserAccount, UserList, UserListQuery,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{SYSTEM_HANDLE, audit as auth_audit, insert_user};
use crate::auth::{self, CurrentUser};
use crate::authz::Subject;
use crate::error::{Error, Result};
use crate::rbac::{self, Ref, bindings, well_formed_name};

/// How long a set-password token works.
pub const SET_PASSWORD_TTL: Duration = Duration::hours(72);

/// The password policy: long enough, not too long for the hash, not the handle.
pub fn check_password(handle: &str, password: &str, field: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Problem::validation(format!(
            "{field} must be at least {MIN_PASSWORD_CHARS} characters"
        ))
        .into());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Problem::validation(format!(
            "{field} must be at most {MAX_PASSWORD_BYTES} bytes"
        ))
        .into());
    }
    if password.to_lowercase().contains(&handle.to_lowercase()) {
        return Err(Problem::validation(format!("{field} must not contain the handle")).into());
    }
    Ok(())
}

/// Argon2id off the async workers (~100 ms of CPU).
async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(Error::internal)?
}

type Row = (
    Uuid,
    String,
    Option<String>,
    Option<String>,
    bool,
    Vec<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

const SELECT: &str = "SELECT u.id, u.handle, u.display_name, u.email, u.is_active,
        ARRAY(SELECT g.slug FROM group_memberships m JOIN groups g ON g.id = m.group_id
              WHERE m.user_id = u.id AND m.is_active ORDER BY g.slug),
        u.created_at, u.updated_at
     FROM users u";

fn account(row: Row) -> UserAccount {
    let (id, handle, display_name, email, is_active, groups, created_at, updated_at) = row;
    UserAccount {
        id,
        handle,
        display_name,
        email,
        is_active,
        groups,
        created_at,
        updated_at,
    }
}

async fn fetch(db: &mut PgConnection, r: &Ref) -> Result<UserAccount> {
    let (id, handle) = r.binds();
    let row: Option<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE (u.id = $1 OR u.handle = $2) AND u.handle <> '{SYSTEM_HANDLE}'"
    ))
    .bind(id)
    .bind(handle)
    .fetch_optional(db)
    .await?;
    row.map(account)
        .ok_or_else(|| Problem::not_found(format!("user {r} does not exist")).into())
}

pub async fn get(db: &PgPool, r: &Ref) -> Result<UserAccount> {
    fetch(&mut *db.acquire().await?, r).await
}

pub async fn list(db: &PgPool, q: &UserListQuery) -> Result<UserList> {
    let (limit, offset) = crate::rbac::page(q.limit, q.offset)?;
    let group = q
        .group
        .as_deref()
        .map(|g| Ref::parse("group", g))
        .transpose()?;
    let (group_id, group_slug) = group.as_ref().map_or((None, None), Ref::binds);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE u.handle <> '{SYSTEM_HANDLE}'
           AND ($1::text IS NULL OR strpos(lower(u.handle || ' ' || coalesce(u.display_name, '')
                || ' ' || coalesce(u.email, '')), lower($1)) > 0)
           AND ($2::boolean IS NULL OR u.is_active = $2)
           AND ($3::uuid IS NULL AND $4::text IS NULL OR EXISTS (
                SELECT 1 FROM group_memberships m JOIN groups g ON g.id = m.group_id
                WHERE m.user_id = u.id AND m.is_active AND (g.id = $3 OR g.slug = $4)))
         ORDER BY u.handle LIMIT $5 OFFSET $6"
    ))
    .bind(&q.q)
    .bind(q.active)
    .bind(group_id)
    .bind(group_slug)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    Ok(UserList {
        users: rows.into_iter().take(limit as usize).map(account).collect(),
        next_offset: more.then(|| (offset + limit) as u64),
    })
}

fn check_optional(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    if let Some(v) = value
        && (v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control))
    {
        return Err(Problem::validation(format!(
            "{field} must be 1 to {max} characters without control characters"
        ))
        .into());
    }
    Ok(())
}

/// A one-time set-password token for `user`, stored as its SHA-256.
async fn issue_token(
    tx: &mut PgConnection,
    user: Uuid,
    issued_by: Uuid,
) -> Result<PasswordSetToken> {
    let token = auth::random_token();
    let expires_at = Utc::now() + SET_PASSWORD_TTL;
    // A new token replaces any earlier unused one.
    sqlx::query(
        "UPDATE password_set_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO password_set_tokens (id, user_id, token_hash, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(user)
    .bind(auth::sha256(&token))
    .bind(expires_at)
    .bind(issued_by)
    .execute(&mut *tx)
    .await?;
    Ok(PasswordSetToken { token, expires_at })
}

pub async fn create(db: &PgPool, actor: &Subject, req: &CreateUserRequest) -> Result<CreatedUser> {
    if !well_formed_name(&req.handle) {
        return Err(Problem::validation(
            "handle must be lowercase letters, digits, '.', '_', '-', starting with a letter or digit, 1 to 64 characters",
        )
        .into());
    }
    if req.handle == SYSTEM_HANDLE {
        return Err(Problem::validation("handle 'system' is reserved").into());
    }
    check_optional("display_name", req.display_name.as_deref(), 200)?;
    check_optional("email", req.email.as_deref(), 320)?;
    if let Some(email) = &req.email
        && !email.contains('@')
    {
        return Err(Problem::validation("email must be an address (name@domain)").into());
    }
    let hash = match &req.password {
        Some(p) => {
            check_password(&req.handle, p, "password")?;
            Some(hash(p).await?)
        }
        None => None,
    };
    let mut tx = db.begin().await?;
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE handle = $1 OR ($2::text IS NOT NULL AND email = $2))",
    )
    .bind(&req.handle)
    .bind(&req.email)
    .fetch_one(&mut *tx)
    .await?;
    if taken {
        return Err(Problem::conflict(format!(
            "a user with handle {} or that email already exists",
            req.handle
        ))
        .into());
    }
    let id = insert_user(
        &mut tx,
        &req.handle,
        req.display_name.as_deref(),
        req.email.as_deref(),
        hash,
    )
    .await
    .map_err(|e| match e {
        // Two creates of one handle at once: the loser's insert hits the unique index.
        Error::Db(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            Problem::conflict(format!("a user with handle {} already exists", req.handle)).into()
        }
        other => other,
    })?;
    let set_password = match req.password {
        Some(_) => None,
        None => Some(issue_token(&mut tx, id, actor.user_id).await?),
    };
    rbac::audit::record(
        &mut *tx,
        &rbac::audit::Entry::change(actor, "user.create", "user", &req.handle),
    )
    .await?;
    let user = fetch(&mut tx, &Ref::Id(id)).await?;
    tx.commit().await?;
    Ok(CreatedUser { user, set_password })
}

/// Ends every session of `user` (their access tokens with them).
async fn end_sessions(tx: &mut PgConnection, user: Uuid, except: Option<Uuid>) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE refresh_sessions SET is_active = false, updated_at = now()
         WHERE user_id = $1 AND is_active AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user)
    .bind(except)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Disables or enables a user. Disabling ends every way in at once: sessions end here; API
/// keys, refresh tokens and the agent tokens of their tasks are refused because every check
/// reads `users.is_active`.
pub async fn set_enabled(
    db: &PgPool,
    actor: &Subject,
    r: &Ref,
    enabled: bool,
) -> Result<UserAccount> {
    let mut tx = db.begin().await?;
    let user = fetch(&mut tx, r).await?;
    let action = if enabled {
        "user.enable"
    } else {
        "user.disable"
    };
    sqlx::query("UPDATE users SET is_active = $2, updated_at = now() WHERE id = $1")
        .bind(user.id)
        .bind(enabled)
        .execute(&mut *tx)
        .await?;
    if !enabled {
        end_sessions(&mut tx, user.id, None).await?;
        if !bindings::an_admin_remains(&mut tx).await? {
            return Err(bindings::last_admin());
        }
    }
    let event = if enabled {
        "user_reenabled"
    } else {
        "user_disabled"
    };
    auth_audit(
        &mut *tx,
        event,
        Some(user.id),
        Some(&user.handle),
        true,
        None,
        None,
    )
    .await?;
    rbac::audit::record(
        &mut *tx,
        &rbac::audit::Entry::change(actor, action, "user", &user.handle),
    )
    .await?;
    let updated = fetch(&mut tx, &Ref::Id(user.id)).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Sets a new password (or issues a set-password token) and ends the user's sessions.
pub async fn reset_password(
    db: &PgPool,
    actor: &Subject,
    r: &Ref,
    password: Option<&str>,
) -> Result<PasswordReset> {
    let user = get(db, r).await?;
    let hash = match password {
        Some(p) => {
            check_password(&user.handle, p, "password")?;
            Some(hash(p).await?)
        }
        None => None,
    };
    let mut tx = db.begin().await?;
    let set_password = match hash {
        Some(h) => {
            store_hash(&mut tx, user.id, h).await?;
            None
        }
        None => Some(issue_token(&mut tx, user.id, actor.user_id).await?),
    };
    end_sessions(&mut tx, user.id, None).await?;
    auth_audit(
        &mut *tx,
        "password_reset",
        Some(user.id),
        Some(&user.handle),
        true,
        None,
        None,
    )
    .await?;
    rbac::audit::record(
        &mut *tx,
        &rbac::audit::Entry::change(actor, "user.reset_password", "user", &user.handle),
    )
    .await?;
    tx.commit().await?;
    Ok(PasswordReset { set_password })
}

async fn store_hash(tx: &mut PgConnection, user: Uuid, hash: String) -> Result<()> {
    sqlx::query(
        "INSERT INTO password_credentials (id, user_id, password_hash, hash_alg)
         VALUES ($1, $2, $3, 'argon2id')
         ON CONFLICT (user_id) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()",
    )
    .bind(Uuid::new_v4())
    .bind(user)
    .bind(hash.into_bytes())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `POST /v1/users/{id}/revoke_sessions`.
pub async fn revoke_sessions(db: &PgPool, actor: &Subject, r: &Ref) -> Result<()> {
    let mut tx = db.begin().await?;
    let user = fetch(&mut tx, r).await?;
    let ended = end_sessions(&mut tx, user.id, None).await?;
    let reason = format!("{ended} sessions ended");
    auth_audit(
        &mut *tx,
        "session_revoked",
        Some(user.id),
        Some(&user.handle),
        true,
        Some(&reason),
        None,
    )
    .await?;
    rbac::audit::record(
        &mut *tx,
        &rbac::audit::Entry {
            reason: Some(&reason),
            ..rbac::audit::Entry::change(actor, "user.revoke_sessions", "user", &user.handle)
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller changes their own password; their other sessions end, this one stays.
pub async fn change_password(
    db: &PgPool,
    user: &CurrentUser,
    req: &ChangePasswordRequest,
) -> Result<()> {
    if req.current_password.len() > MAX_PASSWORD_BYTES {
        return Err(Problem::validation("current_password is too long").into());
    }
    check_password(&user.handle, &req.new_password, "new_password")?;
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT password_hash FROM password_credentials WHERE user_id = $1")
            .bind(user.id)
            .fetch_optional(db)
            .await?;
    let stored = stored
        .and_then(|h| String::from_utf8(h).ok())
        .unwrap_or_else(|| auth::decoy_hash().to_owned());
    let candidate = req.current_password.clone();
    let matches = tokio::task::spawn_blocking(move || auth::verify_password(&candidate, &stored))
        .await
        .map_err(Error::internal)?;
    if !matches {
        auth_audit(
            db,
            "password_changed",
            Some(user.id),
            Some(&user.handle),
            false,
            Some("wrong current password"),
            None,
        )
        .await?;
        return Err(Problem::forbidden("current_password is wrong").into());
    }
    let new_hash = hash(&req.new_password).await?;
    let mut tx = db.begin().await?;
    store_hash(&mut tx, user.id, new_hash).await?;
    let keep = match user.credential {
        auth::Credential::Session(s) => Some(s),
        auth::Credential::ApiKey(_) => None,
    };
    end_sessions(&mut tx, user.id, keep).await?;
    auth_audit(
        &mut *tx,
        "password_changed",
        Some(user.id),
        Some(&user.handle),
        true,
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Redeems a set-password token: once, before it expires, for an enabled user.
pub async fn set_password(db: &PgPool, req: &SetPasswordRequest) -> Result<()> {
    let refused = || {
        Error::from(Problem::unauthorized(
            "the set-password token is invalid, used or expired",
        ))
    };
    if req.token.is_empty() || req.token.len() > 256 {
        return Err(refused());
    }
    let mut tx = db.begin().await?;
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE password_set_tokens t SET used_at = now() FROM users u
         WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()
           AND u.id = t.user_id AND u.is_active
         RETURNING u.id, u.handle",
    )
    .bind(auth::sha256(&req.token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user, handle)) = row else {
        return Err(refused());
    };
    // The policy is checked after the token: a wrong token learns nothing about the handle.
    check_password(&handle, &req.password, "password")?;
    store_hash(&mut tx, user, hash(&req.password).await?).await?;
    end_sessions(&mut tx, user, None).await?;
    auth_audit(
        &mut *tx,
        "password_set",
        Some(user),
        Some(&handle),
        true,
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy_names_what_is_wrong() {
        assert!(check_password("alice", "long-enough-secret", "password").is_ok());
        for bad in [
            "short",
            "xxalicexxxxxxxx",
            "ALICE-and-more-text",
            &"x".repeat(2000),
        ] {
            let err = check_password("alice", bad, "password").unwrap_err();
            assert!(err.to_string().contains("password"), "{bad}: {err}");
        }
    }
}
