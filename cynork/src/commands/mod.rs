//! One function per command. Each builds its client from the [`Context`] and prints through
//! [`crate::output`].

mod apikey;
mod artifacts;
mod audit;
mod auth;
mod chat;
mod docs;
mod group;
mod node;
mod prefs;
mod project;
mod rbac;
mod rule;
mod status;
mod task;
mod user;

use std::path::PathBuf;

use serde::Serialize;
use uuid::Uuid;

use crate::cli::{Cli, Command, DEFAULT_GATEWAY};
use crate::client::{self, Client, KeyOrigin, Session};
use crate::config::{self, Config};
use crate::error::{CliError, Result};
use crate::output::Format;

/// The global flags every command sees.
#[derive(Debug)]
pub struct Context {
    config_flag: Option<PathBuf>,
    gateway_flag: Option<String>,
    pub format: Format,
}

impl Context {
    pub fn config_path(&self) -> Result<PathBuf> {
        config::resolve_path(self.config_flag.as_deref())
    }

    /// The gateway: `--gateway`/`CYNORK_GATEWAY_URL`, else the saved one, else the default.
    fn gateway(&self, config: Option<&Config>) -> String {
        self.gateway_flag
            .clone()
            .filter(|g| !g.trim().is_empty())
            .or_else(|| config.and_then(|c| c.gateway_url.clone()))
            .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned())
    }

    fn has_gateway_flag(&self) -> bool {
        self.gateway_flag
            .as_ref()
            .is_some_and(|g| !g.trim().is_empty())
    }

    /// A client without a session (status, login). The config file is read only when it is
    /// needed for the gateway URL.
    pub fn anonymous_client(&self) -> Result<Client> {
        let config = if self.has_gateway_flag() {
            None
        } else {
            Some(config::load(&self.config_path()?)?)
        };
        Client::new(&self.gateway(config.as_ref()), None)
    }

    /// The active project saved by `cynork project set`, if any.
    pub fn active_project(&self) -> Result<Option<Uuid>> {
        Ok(config::load(&self.config_path()?)?.active_project)
    }

    /// A client with the credential [`client::resolve_session`] picks (`CYNORK_TOKEN`,
    /// `CYNORK_API_KEY`, the saved session, `api_key_file`). Without any, the first
    /// authenticated call fails with the auth exit code before sending anything.
    pub fn client(&self) -> Result<Client> {
        let env = |key: &str| std::env::var(key).ok().filter(|t| !t.is_empty());
        let (env_token, env_key) = (env("CYNORK_TOKEN"), env("CYNORK_API_KEY"));
        if self.has_gateway_flag() {
            let session = match (&env_token, &env_key) {
                (Some(token), _) => Some(Session::from_env(token.clone())),
                (None, Some(key)) => Some(Session::from_api_key(key.clone(), KeyOrigin::Env)),
                (None, None) => None,
            };
            if session.is_some() {
                return Client::new(&self.gateway(None), session);
            }
        }
        let path = self.config_path()?;
        let config = config::load(&path)?;
        let gateway = self.gateway(Some(&config));
        let session = client::resolve_session(env_token, env_key, path, config)?;
        Client::new(&gateway, session)
    }
}

pub async fn dispatch(cli: Cli) -> Result<()> {
    let ctx = Context {
        config_flag: cli.config,
        gateway_flag: cli.gateway,
        format: cli.output,
    };
    match cli.command {
        Command::Version => {
            status::version(&ctx);
            Ok(())
        }
        Command::Status => status::status(&ctx).await,
        Command::Auth(cmd) => auth::run(&ctx, cmd).await,
        Command::Task(cmd) => task::run(&ctx, cmd).await,
        Command::Apikey(cmd) => apikey::run(&ctx, cmd).await,
        Command::Usage { since, until } => apikey::usage(&ctx, since, until).await,
        Command::Node(cmd) => node::run(&ctx, cmd).await,
        Command::Audit(cmd) => audit::run(&ctx, cmd).await,
        Command::Prefs(cmd) => prefs::run(&ctx, cmd).await,
        Command::User(cmd) => user::run(&ctx, cmd).await,
        Command::Group(cmd) => group::run(&ctx, cmd).await,
        Command::Project(cmd) => project::run(&ctx, cmd).await,
        Command::Role(cmd) => rbac::roles(&ctx, cmd).await,
        Command::Rbac(cmd) => rbac::run(&ctx, cmd).await,
        Command::Rule(cmd) => rule::run(&ctx, cmd).await,
        Command::Chat(args) => chat::run(&ctx, args).await,
        Command::Completion { shell } => {
            docs::completion(shell);
            Ok(())
        }
        Command::Man { dir } => docs::man(dir.as_deref()),
    }
}

/// Reads one line from stdin (for `User:` and confirmations); EOF is an empty answer.
fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn prompt(text: &str) -> Result<String> {
    eprint!("{text}");
    read_line()
}

/// Asks `question [y/N] ` unless `yes`; only `y` or `Y` goes ahead.
fn confirmed(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    let answer = prompt(&format!("{question} [y/N] "))?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

/// A query type from the contracts as `key=value` pairs (absent fields left out).
fn query_of<T: Serialize>(query: &T) -> Vec<(String, String)> {
    let serde_json::Value::Object(fields) =
        serde_json::to_value(query).expect("query types serialise")
    else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some((key, text)),
            other => Some((key, other.to_string())),
        })
        .collect()
}

/// [`query_of`]'s pairs as [`client::Client::call`] takes them.
fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, String)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use cynode_contracts::user::{AuditQuery, Effect, UserListQuery};

    use super::*;

    #[test]
    fn queries_leave_out_what_is_absent() {
        let mut pairs = query_of(&UserListQuery {
            limit: Some(5),
            active: Some(false),
            q: Some("a b".into()),
            ..Default::default()
        });
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("active".to_owned(), "false".to_owned()),
                ("limit".to_owned(), "5".to_owned()),
                ("q".to_owned(), "a b".to_owned()),
            ]
        );
        let since: chrono::DateTime<chrono::Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let pairs = query_of(&AuditQuery {
            decision: Some(Effect::Deny),
            since: Some(since),
            ..Default::default()
        });
        assert!(
            pairs.contains(&("decision".into(), "deny".into())),
            "{pairs:?}"
        );
        assert!(
            pairs.contains(&("since".into(), "2026-01-02T03:04:05Z".into())),
            "{pairs:?}"
        );
        assert_eq!(pairs.len(), 2, "{pairs:?}");
    }
}
