//! `cynork audit list|get`: the access audit (membership changes, role grants and revokes,
//! user state changes, denied requests); `cynork audit mcp`: the MCP gateway's audit. Both
//! newest first, for system admins. An MCP line is one tool call;
//! never its arguments or result, which are not kept.

use cynode_contracts::mcp::{McpAuditEntry, McpAuditPage};
use cynode_contracts::routes;
use cynode_contracts::user::{AuditEvent, AuditPage, AuditQuery};
use reqwest::Method;

use super::{Context, borrowed, query_of};
use crate::cli::{AuditCommand, AuditListArgs, McpAuditArgs};
use crate::error::Result;
use crate::output::{emit, kv_line, tsv_table};

pub async fn run(ctx: &Context, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::List(args) => list(ctx, args).await,
        AuditCommand::Get { id } => {
            let event: AuditEvent = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::AUDIT_EVENT, &[&id.to_string()]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &event, || event_line(&event));
            Ok(())
        }
        AuditCommand::Mcp(args) => mcp(ctx, args).await,
    }
}

async fn list(ctx: &Context, args: AuditListArgs) -> Result<()> {
    let query = query_of(&AuditQuery {
        resource_type: args.resource_type,
        actor_id: args.actor_id,
        action: args.action,
        decision: args.decision.map(|d| d.effect()),
        since: args.since,
        until: args.until,
        limit: Some(args.limit),
        offset: args.offset,
    });
    let page: AuditPage = ctx
        .client()?
        .call(
            Method::GET,
            &routes::fill(routes::user::AUDIT, &[]),
            &borrowed(&query),
            None,
        )
        .await?;
    emit(ctx.format, &page, || {
        let mut text = events_table(&page.events);
        if let Some(next) = page.next_offset {
            text.push('\n');
            text.push_str(&kv_line(&[("next_offset", next.to_string())]));
        }
        text
    });
    Ok(())
}

/// TSV: `event_id ts actor_id action resource_type resource_id decision`.
fn events_table(events: &[AuditEvent]) -> String {
    tsv_table(
        &[
            "event_id",
            "ts",
            "actor_id",
            "action",
            "resource_type",
            "resource_id",
            "decision",
        ],
        events.iter().map(|e| {
            vec![
                e.id.to_string(),
                e.created_at.to_rfc3339(),
                e.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                e.action.clone(),
                e.resource_type.clone(),
                e.resource_id.clone(),
                e.decision.as_str().to_owned(),
            ]
        }),
    )
}

/// One event in full; the optional fields only when present.
fn event_line(e: &AuditEvent) -> String {
    let mut pairs = vec![
        ("event_id", e.id.to_string()),
        ("ts", e.created_at.to_rfc3339()),
        ("actor_type", e.actor_type.clone()),
    ];
    if let Some(id) = e.actor_id {
        pairs.push(("actor_id", id.to_string()));
    }
    if let Some(handle) = &e.actor_handle {
        pairs.push(("actor", handle.clone()));
    }
    pairs.extend([
        ("action", e.action.clone()),
        ("resource_type", e.resource_type.clone()),
        ("resource_id", e.resource_id.clone()),
        ("decision", e.decision.as_str().to_owned()),
    ]);
    if let Some(reason) = &e.reason {
        pairs.push(("reason", reason.clone()));
    }
    if let Some(task) = e.task_id {
        pairs.push(("task_id", task.to_string()));
    }
    kv_line(&pairs)
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

#[cfg(test)]
mod tests {
    use cynode_contracts::user::Effect;

    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::nil(),
            created_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            actor_type: "user".into(),
            actor_id: Some(uuid::Uuid::nil()),
            actor_handle: Some("bob".into()),
            action: "task.cancel".into(),
            resource_type: "task".into(),
            resource_id: "t1".into(),
            decision: Effect::Deny,
            reason: Some("role viewer does not allow it".into()),
            task_id: None,
        }
    }

    #[test]
    fn events_list_as_tsv_in_the_spec_columns() {
        let mut anonymous = event();
        anonymous.actor_id = None;
        anonymous.decision = Effect::Allow;
        let nil = uuid::Uuid::nil();
        assert_eq!(
            events_table(&[event(), anonymous]),
            format!(
                "event_id\tts\tactor_id\taction\tresource_type\tresource_id\tdecision\n\
                 {nil}\t2026-01-02T03:04:05+00:00\t{nil}\ttask.cancel\ttask\tt1\tdeny\n\
                 {nil}\t2026-01-02T03:04:05+00:00\t-\ttask.cancel\ttask\tt1\tallow"
            )
        );
    }

    #[test]
    fn an_event_line_has_the_reason() {
        let nil = uuid::Uuid::nil();
        assert_eq!(
            event_line(&event()),
            format!(
                "event_id={nil} ts=2026-01-02T03:04:05+00:00 actor_type=user actor_id={nil} \
                 actor=bob action=task.cancel resource_type=task resource_id=t1 decision=deny \
                 reason=\"role viewer does not allow it\""
            )
        );
    }
}
