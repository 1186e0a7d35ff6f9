//! `cynork prefs list|get|set|delete|effective` (`cli_console_acceptance.md` §1.5).

use cynode_contracts::preferences::{
    EffectivePreferences, MAX_VALUE_BYTES, PreferenceEntry, PreferencePage, ScopeType,
    SetPreferenceRequest,
};
use cynode_contracts::routes;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::Context;
use crate::cli::{PrefScope, PrefsCommand};
use crate::client::json_body;
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: PrefsCommand) -> Result<()> {
    match cmd {
        PrefsCommand::List {
            scope,
            key_prefix,
            limit,
            cursor,
        } => {
            let mut query = scope_query(&scope)?;
            query.push(("scope_type", scope.scope_type.as_str().to_owned()));
            query.push(("limit", limit.to_string()));
            query.extend(key_prefix.map(|p| ("key_prefix", p)));
            query.extend(cursor.map(|c| ("cursor", c)));
            let page: PreferencePage = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::PREFS, &[]),
                    &query,
                    None,
                )
                .await?;
            emit(ctx.format, &page, || {
                let mut lines = vec!["key\tvalue_json\tupdated_at".to_owned()];
                lines.extend(
                    page.entries
                        .iter()
                        .map(|e| format!("{}\t{}\t{}", e.key, e.value, e.updated_at.to_rfc3339())),
                );
                if let Some(cursor) = &page.next_cursor {
                    lines.push(kv_line(&[("next_cursor", cursor.as_str())]));
                }
                lines.join("\n")
            });
            Ok(())
        }
        PrefsCommand::Get { scope, key } => {
            let query = scope_query(&scope)?;
            let entry: PreferenceEntry = ctx
                .client()?
                .call(Method::GET, &entry_path(&scope, &key), &query, None)
                .await?;
            emit(ctx.format, &entry, || {
                kv_line(&[
                    ("key", entry.key.clone()),
                    ("value", entry.value.to_string()),
                ])
            });
            Ok(())
        }
        PrefsCommand::Set {
            scope,
            key,
            value,
            value_file,
            value_type,
            expected_version,
            reason,
        } => {
            let query = scope_query(&scope)?;
            let text = match (value, value_file) {
                (Some(text), _) => text,
                (None, Some(path)) => read_value_file(&path)?,
                (None, None) => return Err(CliError::Usage("give --value or --value-file".into())),
            };
            let value: Value = serde_json::from_str(&text).map_err(|e| {
                CliError::Usage(format!(
                    "the value is not JSON ({e}); a string needs quotes: --value '\"text\"'"
                ))
            })?;
            let request = SetPreferenceRequest {
                value,
                value_type,
                expected_version,
                reason,
            };
            let entry: PreferenceEntry = ctx
                .client()?
                .call(
                    Method::PUT,
                    &entry_path(&scope, &key),
                    &query,
                    Some(&json_body(&request)),
                )
                .await?;
            emit(ctx.format, &entry, || {
                kv_line(&[
                    ("ok", "true".to_owned()),
                    ("key", entry.key.clone()),
                    ("version", entry.version.to_string()),
                ])
            });
            Ok(())
        }
        PrefsCommand::Delete {
            scope,
            key,
            expected_version,
            reason,
        } => {
            let mut query = scope_query(&scope)?;
            query.extend(expected_version.map(|v| ("expected_version", v.to_string())));
            query.extend(reason.map(|r| ("reason", r)));
            ctx.client()?
                .call_no_content(Method::DELETE, &entry_path(&scope, &key), &query)
                .await?;
            #[derive(Serialize)]
            struct Deleted {
                key: String,
                deleted: bool,
            }
            let done = Deleted { key, deleted: true };
            emit(ctx.format, &done, || {
                kv_line(&[("deleted", "true"), ("key", done.key.as_str())])
            });
            Ok(())
        }
        PrefsCommand::Effective {
            task_id,
            project_id,
        } => {
            let mut query = Vec::new();
            query.extend(task_id.map(|id| ("task_id", id.to_string())));
            query.extend(project_id.map(|id| ("project_id", id.to_string())));
            let view: EffectivePreferences = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::PREFS_EFFECTIVE, &[]),
                    &query,
                    None,
                )
                .await?;
            emit(ctx.format, &view, || effective_lines(&view));
            Ok(())
        }
    }
}

/// The scope as query parameters. Group, project and task scopes name their id, the system
/// scope none; the user scope defaults to the caller on the gateway.
fn scope_query(scope: &PrefScope) -> Result<Vec<(&'static str, String)>> {
    match (scope.scope_type, scope.scope_id) {
        (ScopeType::Group | ScopeType::Project | ScopeType::Task, None) => Err(CliError::Usage(
            format!("the {} scope needs --scope-id", scope.scope_type),
        )),
        (ScopeType::System, Some(_)) => Err(CliError::Usage(
            "the system scope takes no --scope-id".into(),
        )),
        (_, id) => Ok(id
            .map(|id| ("scope_id", id.to_string()))
            .into_iter()
            .collect()),
    }
}

fn entry_path<'a>(scope: &PrefScope, key: &'a str) -> Vec<&'a str> {
    routes::fill(routes::user::PREF, &[scope.scope_type.as_str(), key])
}

fn read_value_file(path: &std::path::Path) -> Result<String> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::Usage(format!("value file {shown} cannot be read: {e}")))?;
    // JSON escapes can make the stored value smaller than the file, but not by much.
    if meta.len() > 2 * MAX_VALUE_BYTES as u64 {
        return Err(CliError::Usage(format!(
            "value file {shown} is {} bytes; a value may be at most {MAX_VALUE_BYTES} bytes",
            meta.len()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("value file {shown} cannot be read: {e}")))
}

/// One line per effective key: its value and where it comes from.
fn effective_lines(view: &EffectivePreferences) -> String {
    view.sources
        .iter()
        .map(|source| {
            let value = view
                .effective
                .get(&source.key)
                .map_or_else(String::new, Value::to_string);
            let mut pairs = vec![
                ("key", source.key.clone()),
                ("value", value),
                ("scope_type", source.scope_type.as_str().to_owned()),
            ];
            if let Some(id) = source.scope_id {
                pairs.push(("scope_id", id.to_string()));
            }
            kv_line(&pairs)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
