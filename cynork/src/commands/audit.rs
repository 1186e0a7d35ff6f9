//! `cynork audit mcp`: the MCP gateway's audit, newest first (the gateway allows it to the
//! admin only). One line per tool call; never its arguments or result, which are not kept.

use cynode_contracts::mcp::{McpAuditEntry, McpAuditPage};
use cynode_contracts::routes;
use reqwest::Method;

use super::Context;
use crate::cli::{AuditCommand, McpAuditArgs};
use crate::error::Result;
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Mcp(args) => mcp(ctx, args).await,
    }
}

async fn mcp(ctx: &Context, args: McpAuditArgs) -> Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    let mut put = |key: &'static str, value: Option<String>| {
        if let Some(v) = value {
            query.push((key, v));
        }
    };
    put("task_id", args.task_id.map(|v| v.to_string()));
    put("job_id", args.job_id.map(|v| v.to_string()));
    put("tool_name", args.tool);
    put("decision", args.decision.map(|d| d.as_str().to_owned()));
    put("subject_type", args.agent);
    put("since", args.since);
    put("until", args.until);
    put("limit", args.limit.map(|v| v.to_string()));
    put("cursor", args.cursor);
    let page: McpAuditPage = ctx
        .client()?
        .call(
            Method::GET,
            &routes::fill(routes::user::AUDIT_MCP, &[]),
            &query,
            None,
        )
        .await?;
    emit(ctx.format, &page, || {
        let mut lines: Vec<String> = page.entries.iter().map(line).collect();
        if let Some(cursor) = &page.next_cursor {
            lines.push(kv_line(&[("next_cursor", cursor.as_str())]));
        }
        lines.join("\n")
    });
    Ok(())
}

/// One call; the error, task and job only when it has them.
fn line(e: &McpAuditEntry) -> String {
    let mut pairs = vec![
        ("at", e.created_at.to_rfc3339()),
        ("tool", e.tool_name.clone()),
        ("agent", e.subject_type.clone()),
        ("decision", e.decision.as_str().to_owned()),
        ("status", e.status.as_str().to_owned()),
    ];
    if let Some(error) = &e.error_type {
        pairs.push(("error", error.clone()));
    }
    if let Some(task) = e.task_id {
        pairs.push(("task", task.to_string()));
    }
    if let Some(job) = e.job_id {
        pairs.push(("job", job.to_string()));
    }
    pairs.push(("ms", e.duration_ms.to_string()));
    pairs.push(("id", e.id.to_string()));
    kv_line(&pairs)
}
