//! `cynork auth login|logout|whoami`.

use std::io::Read;

use cynode_contracts::user::UserInfo;
use reqwest::Method;
use serde::Serialize;

use super::{Context, prompt};
use crate::cli::AuthCommand;
use crate::client::{Client, TokenSource, store_tokens};
use crate::config::{self, Config};
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: AuthCommand) -> Result<()> {
    match cmd {
        AuthCommand::Login {
            user,
            password_stdin,
        } => login(ctx, user, password_stdin).await,
        AuthCommand::Logout => logout(ctx).await,
        AuthCommand::Whoami => whoami(ctx).await,
        AuthCommand::Refresh => refresh(ctx).await,
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
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("cannot read the password from stdin: {e}")))?;
        // Exactly one trailing newline is the `echo pw |` artefact; anything else is the password.
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.strip_suffix('\r').unwrap_or(text).to_owned()
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
