//! `cynork user create|list|get|disable|enable|reset-password|revoke-sessions` (reading needs
//! a system role; changes need system admin).

use cynode_contracts::routes;
use cynode_contracts::user::{
    CreateUserRequest, CreatedUser, PasswordReset, PasswordSetToken, ResetPasswordRequest,
    UserAccount, UserList, UserListQuery,
};
use reqwest::Method;
use serde::Serialize;

use super::{Context, borrowed, query_of};
use crate::cli::{UserCommand, UserCreateArgs, UserListArgs};
use crate::client::json_body;
use crate::error::Result;
use crate::output::{emit, kv_line};
use crate::password;

pub async fn run(ctx: &Context, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create(args) => create(ctx, args).await,
        UserCommand::List(args) => list(ctx, args).await,
        UserCommand::Get(user) => {
            let account: UserAccount = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::USER, &[&user.user]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &account, || user_line(&account));
            Ok(())
        }
        UserCommand::Disable(user) => set_state(ctx, routes::user::USER_DISABLE, &user.user).await,
        UserCommand::Enable(user) => set_state(ctx, routes::user::USER_ENABLE, &user.user).await,
        UserCommand::ResetPassword {
            user,
            password_stdin,
            token,
        } => reset_password(ctx, &user.user, password_stdin, token).await,
        UserCommand::RevokeSessions(user) => {
            ctx.client()?
                .call_no_content(
                    Method::POST,
                    &routes::fill(routes::user::USER_REVOKE_SESSIONS, &[&user.user]),
                    &[],
                )
                .await?;
            #[derive(Serialize)]
            struct Revoked<'a> {
                user: &'a str,
                sessions_revoked: bool,
            }
            let done = Revoked {
                user: &user.user,
                sessions_revoked: true,
            };
            emit(ctx.format, &done, || {
                kv_line(&[("user", done.user), ("sessions_revoked", "true")])
            });
            Ok(())
        }
    }
}

async fn create(ctx: &Context, args: UserCreateArgs) -> Result<()> {
    // The password is read before anything is sent, and checked as the gateway would.
    let password = if args.no_password {
        None
    } else if args.password_stdin {
        let pw = password::read_stdin()?;
        password::check_new(&pw)?;
        Some(pw)
    } else {
        Some(password::prompt_new("--password-stdin or --no-password")?)
    };
    let request = CreateUserRequest {
        handle: args.handle,
        display_name: args.display_name,
        email: args.email,
        password,
    };
    let created: CreatedUser = ctx
        .client()?
        .call(
            Method::POST,
            &routes::fill(routes::user::USERS, &[]),
            &[],
            Some(&json_body(&request)),
        )
        .await?;
    if created.set_password.is_some() {
        warn_token_shown_once();
    }
    emit(ctx.format, &created, || {
        let mut line = user_line(&created.user);
        if let Some(token) = &created.set_password {
            line.push(' ');
            line.push_str(&token_pairs(token));
        }
        line
    });
    Ok(())
}

async fn list(ctx: &Context, args: UserListArgs) -> Result<()> {
    let query = query_of(&UserListQuery {
        limit: Some(args.limit),
        offset: args.offset,
        q: args.q,
        active: args.active,
        group: args.group,
    });
    let list: UserList = ctx
        .client()?
        .call(
            Method::GET,
            &routes::fill(routes::user::USERS, &[]),
            &borrowed(&query),
            None,
        )
        .await?;
    emit(ctx.format, &list, || {
        let mut lines: Vec<String> = list.users.iter().map(user_line).collect();
        if let Some(next) = list.next_offset {
            lines.push(kv_line(&[("next_offset", next.to_string())]));
        }
        lines.join("\n")
    });
    Ok(())
}

/// `disable` or `enable`: the account as it is now.
async fn set_state(ctx: &Context, template: &str, user: &str) -> Result<()> {
    let account: UserAccount = ctx
        .client()?
        .call(Method::POST, &routes::fill(template, &[user]), &[], None)
        .await?;
    emit(ctx.format, &account, || user_line(&account));
    Ok(())
}

async fn reset_password(ctx: &Context, user: &str, stdin: bool, token: bool) -> Result<()> {
    let password = if token {
        None
    } else if stdin {
        let pw = password::read_stdin()?;
        password::check_new(&pw)?;
        Some(pw)
    } else {
        Some(password::prompt_new("--password-stdin or --token")?)
    };
    let reset: PasswordReset = ctx
        .client()?
        .call(
            Method::POST,
            &routes::fill(routes::user::USER_RESET_PASSWORD, &[user]),
            &[],
            Some(&json_body(&ResetPasswordRequest { password })),
        )
        .await?;
    if reset.set_password.is_some() {
        warn_token_shown_once();
    }
    emit(ctx.format, &reset, || {
        let line = kv_line(&[("user", user), ("password_reset", "true")]);
        match &reset.set_password {
            Some(token) => format!("{line} {}", token_pairs(token)),
            None => line,
        }
    });
    Ok(())
}

fn warn_token_shown_once() {
    eprintln!(
        "note: the set-password token is shown this once; hand it to the user, who sets a \
         password with it before it expires"
    );
}

/// The one-time token: printed on purpose, it is what the admin asked for.
fn token_pairs(token: &PasswordSetToken) -> String {
    kv_line(&[
        ("set_password_token", token.token.clone()),
        ("expires_at", token.expires_at.to_rfc3339()),
    ])
}

/// One account: id, handle, state and groups, then the optional names.
pub fn user_line(user: &UserAccount) -> String {
    let mut pairs = vec![
        ("user_id", user.id.to_string()),
        ("handle", user.handle.clone()),
        ("active", user.is_active.to_string()),
        (
            "groups",
            if user.groups.is_empty() {
                "-".to_owned()
            } else {
                user.groups.join(",")
            },
        ),
    ];
    if let Some(name) = &user.display_name {
        pairs.push(("display_name", name.clone()));
    }
    if let Some(email) = &user.email {
        pairs.push(("email", email.clone()));
    }
    pairs.push(("created_at", user.created_at.to_rfc3339()));
    kv_line(&pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_line_has_the_id_handle_state_and_groups() {
        let at: chrono::DateTime<chrono::Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let mut user = UserAccount {
            id: uuid::Uuid::nil(),
            handle: "alice".into(),
            display_name: Some("Alice Liddell".into()),
            email: None,
            is_active: true,
            groups: vec!["ml".into(), "ops".into()],
            created_at: at,
            updated_at: at,
        };
        assert_eq!(
            user_line(&user),
            "user_id=00000000-0000-0000-0000-000000000000 handle=alice active=true groups=ml,ops \
             display_name=\"Alice Liddell\" created_at=2026-01-02T03:04:05+00:00"
        );
        user.groups.clear();
        user.is_active = false;
        user.display_name = None;
        assert!(user_line(&user).contains(" active=false groups=- created_at="));
    }

    #[test]
    fn the_token_is_shown_with_its_expiry() {
        let token = PasswordSetToken {
            token: "tok123".into(),
            expires_at: "2026-01-02T03:04:05Z".parse().unwrap(),
        };
        assert_eq!(
            token_pairs(&token),
            "set_password_token=tok123 expires_at=2026-01-02T03:04:05+00:00"
        );
    }
}
