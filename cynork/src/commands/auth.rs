//! `cynork auth login|logout|whoami|refresh|passwd`.

use cynode_contracts::routes;
use cynode_contracts::user::{ChangePasswordRequest, UserInfo};
use reqwest::Method;
use serde::Serialize;

use super::{Context, prompt};
use crate::cli::AuthCommand;
use crate::client::{Client, TokenSource, json_body, store_tokens};
use crate::config::{self, Config};
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line};
use crate::password;

pub async fn run(ctx: &Context, cmd: AuthCommand) -> Result<()> {
    match cmd {
        AuthCommand::Login {
            user,
            password_stdin,
        } => login(ctx, user, password_stdin).await,
        AuthCommand::Logout => logout(ctx).await,
        AuthCommand::Whoami => whoami(ctx).await,
        AuthCommand::Refresh => refresh(ctx).await,
        AuthCommand::Passwd { password_stdin } => passwd(ctx, password_stdin).await,
    }
}

/// Loads the config for a command that rewrites it anyway: a corrupt file is replaced, with a
/// warning, instead of locking the user out of the one command that repairs it.
fn load_for_rewrite(path: &std::path::Path) -> Config {
    match config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("warning: {e}; it will be rewritten");
            Config::default()
        }
    }
}

async fn login(ctx: &Context, user: Option<String>, password_stdin: bool) -> Result<()> {
    let path = ctx.config_path()?;
    let mut config = load_for_rewrite(&path);
    let user = match user {
        Some(user) => user,
        None => prompt("User: ")?,
    };
    let user = user.trim().to_owned();
    if user.is_empty() {
        return Err(CliError::Usage("no user given".into()));
    }
    let password = if password_stdin {
        password::read_stdin()?
    } else {
        // Reads from the controlling terminal with echo off, whatever stdin is.
        rpassword::prompt_password("Password: ").map_err(|e| {
            CliError::Usage(format!(
                "cannot prompt for the password ({e}); pipe it in with --password-stdin"
            ))
        })?
    };
    if password.is_empty() {
        return Err(CliError::Usage("the password is empty".into()));
    }

    let gateway = ctx.gateway(Some(&config));
    let client = Client::new(&gateway, None)?;
    let tokens = client.login(&user, &password).await?;
    store_tokens(&mut config, &tokens);
    config.gateway_url = Some(client.base().as_str().trim_end_matches('/').to_owned());
    config::save(&path, &config)?;

    #[derive(Serialize)]
    struct LoggedIn<'a> {
        logged_in: bool,
        user: &'a str,
    }
    emit(
        ctx.format,
        &LoggedIn {
            logged_in: true,
            user: &user,
        },
        || kv_line(&[("logged_in", "true"), ("user", &user)]),
    );
    Ok(())
}

/// Revokes the session on the gateway, then forgets it locally whatever the gateway said: a
/// user who asked to log out must not stay logged in because the network was down. A failed
/// revocation is still reported (and sets the exit code), since the server session lives on.
async fn logout(ctx: &Context) -> Result<()> {
    let path = ctx.config_path()?;
    let mut config = load_for_rewrite(&path);
    let revoke = match ctx.client() {
        Ok(mut client) if client.session().is_some() => {
            match client.logout().await {
                // The token was already dead: the session is over, which is what we want.
                Err(CliError::Auth(_)) => Ok(()),
                other => other,
            }
        }
        _ => Ok(()),
    };
    let had_session = config.token.is_some() || config.refresh_token.is_some();
    config.clear_session();
    if had_session || path.exists() {
        config::save(&path, &config)?;
    }
    if let Err(e) = revoke {
        return Err(match e {
            CliError::Network(m) => CliError::Network(format!(
                "{m}; the session was forgotten locally but the gateway could not revoke it"
            )),
            other => other,
        });
    }

    #[derive(Serialize)]
    struct LoggedOut {
        logged_out: bool,
    }
    emit(ctx.format, &LoggedOut { logged_out: true }, || {
        kv_line(&[("logged_out", "true")])
    });
    Ok(())
}

async fn whoami(ctx: &Context) -> Result<()> {
    let mut client = ctx.client()?;
    let me: UserInfo = client
        .call(Method::GET, &["v1", "users", "me"], &[], None)
        .await?;

    #[derive(Serialize)]
    struct Whoami<'a> {
        id: String,
        user: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<&'a str>,
        is_active: bool,
    }
    let out = Whoami {
        id: me.id.to_string(),
        user: &me.handle,
        email: me.email.as_deref(),
        is_active: me.is_active,
    };
    emit(ctx.format, &out, || {
        kv_line(&[("id", out.id.as_str()), ("user", out.user)])
    });
    Ok(())
}

async fn refresh(ctx: &Context) -> Result<()> {
    let mut client = ctx.client()?;
    if let Some(TokenSource::Env) = client.session().map(|s| &s.source) {
        return Err(CliError::Usage(
            "the token comes from CYNORK_TOKEN, which has no refresh token; unset it to refresh the saved session".into(),
        ));
    }
    client.refresh().await?;

    #[derive(Serialize)]
    struct Refreshed {
        refreshed: bool,
    }
    emit(ctx.format, &Refreshed { refreshed: true }, || {
        kv_line(&[("refreshed", "true")])
    });
    Ok(())
}

/// `POST /v1/users/me/password`. Everything is read and checked before the request.
async fn passwd(ctx: &Context, password_stdin: bool) -> Result<()> {
    let (current, new) = if password_stdin {
        password::read_stdin_pair()?
    } else {
        password::require_terminal("--password-stdin")?;
        let current = password::prompt_hidden("Current password: ")?;
        (current, password::prompt_new("--password-stdin")?)
    };
    if current.is_empty() {
        return Err(CliError::Usage("the current password is empty".into()));
    }
    password::check_new(&new)?;
    if new == current {
        return Err(CliError::Usage(
            "the new password is the current one".into(),
        ));
    }
    let request = ChangePasswordRequest {
        current_password: current,
        new_password: new,
    };
    ctx.client()?
        .call_discarding(
            Method::POST,
            &routes::fill(routes::user::USERS_ME_PASSWORD, &[]),
            &json_body(&request),
        )
        .await?;

    #[derive(Serialize)]
    struct Changed {
        password_changed: bool,
    }
    emit(
        ctx.format,
        &Changed {
            password_changed: true,
        },
        || kv_line(&[("password_changed", "true")]),
    );
    Ok(())
}
