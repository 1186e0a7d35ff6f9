//! `cynork apikey create|list|revoke`, and `cynork usage`: what the keys (and logins) used.

use cynode_contracts::routes;
use cynode_contracts::user::{
    ApiKeyInfo, ApiKeyList, CreateApiKeyRequest, CreatedApiKey, UsageReport, UsageTotals,
};
use reqwest::Method;
use serde::Serialize;
use uuid::Uuid;

use super::{Context, prompt};
use crate::cli::ApikeyCommand;
use crate::client::json_body;
use crate::error::Result;
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: ApikeyCommand) -> Result<()> {
    match cmd {
        ApikeyCommand::Create {
            name,
            expires_in_days,
        } => create(ctx, name, expires_in_days).await,
        ApikeyCommand::List => list(ctx).await,
        ApikeyCommand::Revoke { id, yes } => revoke(ctx, id, yes).await,
    }
}

async fn create(ctx: &Context, name: String, expires_in_days: Option<u32>) -> Result<()> {
    let request = CreateApiKeyRequest {
        name,
        expires_in_days: expires_in_days.map(i64::from),
    };
    let mut client = ctx.client()?;
    let created: CreatedApiKey = client
        .call(
            Method::POST,
            &routes::fill(routes::user::API_KEYS, &[]),
            &[],
            Some(&json_body(&request)),
        )
        .await?;
    eprintln!(
        "warning: this is the only time the key is shown; it cannot be shown again. Store it now \
         (e.g. in a file readable only by you, named by `api_key_file` in the cynork config)."
    );
    let expires = created
        .expires_at
        .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339());
    emit(ctx.format, &created, || {
        kv_line(&[
            ("id", created.id.to_string()),
            ("name", created.name.clone()),
            ("key", created.key.clone()),
            ("expires_at", expires.clone()),
        ])
    });
    Ok(())
}

fn key_line(key: &ApiKeyInfo) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| {
        t.map_or_else(|| none.to_owned(), |t| t.to_rfc3339())
    };
    kv_line(&[
        ("id", key.id.to_string()),
        ("name", key.name.clone()),
        ("status", key.status.as_str().to_owned()),
        ("hint", format!("{}...{}", key.prefix, key.last_four)),
        ("created_at", key.created_at.to_rfc3339()),
        ("expires_at", at(key.expires_at, "never")),
        ("last_used_at", at(key.last_used_at, "never")),
        (
            if key.revoked_at.is_some() {
                "revoked_at"
            } else {
                ""
            },
            at(key.revoked_at, ""),
        ),
    ])
}

async fn list(ctx: &Context) -> Result<()> {
    let mut client = ctx.client()?;
    let list: ApiKeyList = client
        .call(
            Method::GET,
            &routes::fill(routes::user::API_KEYS, &[]),
            &[],
            None,
        )
        .await?;
    emit(ctx.format, &list, || {
        list.api_keys
            .iter()
            .map(key_line)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn revoke(ctx: &Context, id: Uuid, yes: bool) -> Result<()> {
    if !yes {
        let answer = prompt(&format!("Revoke API key {id}? [y/N] "))?;
        if !matches!(answer.trim(), "y" | "Y") {
            return Ok(());
        }
    }
    let mut client = ctx.client()?;
    client
        .call_no_content(
            Method::DELETE,
            &routes::fill(routes::user::API_KEY, &[&id.to_string()]),
            &[],
        )
        .await?;

    #[derive(Serialize)]
    struct Revoked {
        id: Uuid,
        revoked: bool,
    }
    emit(ctx.format, &Revoked { id, revoked: true }, || {
        kv_line(&[("id", id.to_string()), ("revoked", "true".to_owned())])
    });
    Ok(())
}

/// `cynork usage`: one `total` line, then one line per model, per key (`key=session` for calls
/// made with a login) and per UTC day, each with the same counters.
pub async fn usage(
    ctx: &Context,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    let mut query = Vec::new();
    if let Some(since) = since {
        query.push(("since", since.to_rfc3339()));
    }
    if let Some(until) = until {
        query.push(("until", until.to_rfc3339()));
    }
    let mut client = ctx.client()?;
    let report: UsageReport = client
        .call(
            Method::GET,
            &routes::fill(routes::user::USAGE, &[]),
            &query,
            None,
        )
        .await?;
    emit(ctx.format, &report, || {
        let line = |what: (&str, String), t: &UsageTotals| {
            kv_line(&[
                what,
                ("requests", t.requests.to_string()),
                ("prompt_tokens", t.prompt_tokens.to_string()),
                ("completion_tokens", t.completion_tokens.to_string()),
                ("total_tokens", t.total_tokens.to_string()),
            ])
        };
        let mut lines = vec![line(("total", "all".to_owned()), &report.total)];
        lines.extend(
            report
                .by_model
                .iter()
                .map(|m| line(("model", m.model.clone()), &m.totals)),
        );
        lines.extend(report.by_api_key.iter().map(|k| {
            let name = match (&k.name, k.api_key_id) {
                (Some(name), _) => name.clone(),
                (None, Some(id)) => id.to_string(),
                (None, None) => "session".to_owned(),
            };
            line(("key", name), &k.totals)
        }));
        lines.extend(
            report
                .by_day
                .iter()
                .map(|d| line(("day", d.day.to_string()), &d.totals)),
        );
        lines.join("\n")
    });
    Ok(())
}
