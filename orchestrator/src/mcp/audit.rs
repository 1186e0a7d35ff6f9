//! `mcp_tool_call_audit_log`: one row per tool call, allowed or denied, succeeded or failed
//! (REQ-MCPGAT-0107..0110). This module is its only writer; the row never holds a call's
//! arguments or result.

use chrono::{DateTime, Utc};
use cynode_contracts::mcp::{CallStatus, Decision, McpAuditEntry, McpAuditPage, McpAuditQuery};
use cynode_contracts::problem::Problem;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Error, Result};

/// One call's audit row.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub tool_name: &'a str,
    /// `pm`, `pa`, `sandbox` or `anonymous`.
    pub subject_type: &'a str,
    pub subject_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub decision: Decision,
    pub status: CallStatus,
    pub duration_ms: u64,
    pub error_type: Option<&'a str>,
}

/// Writes the row. A tool name longer than the audit keeps is cut (a caller's garbage name
/// must still be auditable).
pub async fn record(db: &PgPool, r: &Record<'_>) -> Result<()> {
    let tool: String = r.tool_name.chars().take(200).collect();
    sqlx::query(
        "INSERT INTO mcp_tool_call_audit_log (id, task_id, project_id, run_id, job_id, \
         subject_type, subject_id, user_id, tool_name, decision, status, duration_ms, error_type) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(Uuid::new_v4())
    .bind(r.task_id)
    .bind(r.project_id)
    .bind(r.run_id)
    .bind(r.job_id)
    .bind(r.subject_type)
    .bind(&r.subject_id)
    .bind(r.user_id)
    // NUL cannot be stored in text; the name is the caller's and only for the audit.
    .bind(tool.replace('\0', "\u{FFFD}"))
    .bind(r.decision.as_str())
    .bind(r.status.as_str())
    .bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
    .bind(r.error_type)
    .execute(db)
    .await?;
    Ok(())
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;

/// Keyset cursor: the last row's `created_at` and id.
fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{id}", at.timestamp_micros())
}

fn decode_cursor(text: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = text.split_once('_')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id.parse().ok()?,
    ))
}

type Row = (
    Uuid,
    DateTime<Utc>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    String,
    Option<String>,
    Option<Uuid>,
    String,
    String,
    String,
    i64,
    Option<String>,
);

/// A page of the audit, newest first, filtered as asked.
pub async fn list(db: &PgPool, q: &McpAuditQuery) -> Result<McpAuditPage> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::validation(format!(
            "query parameter limit: must be 1 to {MAX_LIMIT}"
        ))
        .into());
    }
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            decode_cursor(c).ok_or_else(|| {
                Error::from(Problem::validation(
                    "query parameter cursor: not a cursor this endpoint returned",
                ))
            })
        })
        .transpose()?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, created_at, task_id, project_id, run_id, job_id, subject_type, subject_id, \
                user_id, tool_name, decision, status, duration_ms, error_type \
         FROM mcp_tool_call_audit_log \
         WHERE ($1::uuid IS NULL OR task_id = $1) \
           AND ($2::uuid IS NULL OR job_id = $2) \
           AND ($3::text IS NULL OR tool_name = $3) \
           AND ($4::text IS NULL OR decision = $4) \
           AND ($5::text IS NULL OR subject_type = $5) \
           AND ($6::timestamptz IS NULL OR created_at >= $6) \
           AND ($7::timestamptz IS NULL OR created_at < $7) \
           AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9)) \
         ORDER BY created_at DESC, id DESC LIMIT $10",
    )
    .bind(q.task_id)
    .bind(q.job_id)
    .bind(q.tool_name.as_deref())
    .bind(q.decision.map(|d| match d {
        Decision::Allow => "allow",
        Decision::Deny => "deny",
    }))
    .bind(q.subject_type.as_deref())
    .bind(q.since)
    .bind(q.until)
    .bind(cursor.map(|c| c.0))
    .bind(cursor.map(|c| c.1))
    .bind(i64::from(limit) + 1)
    .fetch_all(db)
    .await?;
    let more = rows.len() > limit as usize;
    let entries = rows
        .into_iter()
        .take(limit as usize)
        .map(entry)
        .collect::<Result<Vec<_>>>()?;
    let next_cursor = more
        .then(|| entries.last().map(|e| encode_cursor(e.created_at, e.id)))
        .flatten();
    Ok(McpAuditPage {
        entries,
        next_cursor,
    })
}

fn entry(
    (
        id,
        created_at,
        task_id,
        project_id,
        run_id,
        job_id,
        subject_type,
        subject_id,
        user_id,
        tool_name,
        decision,
        status,
        duration_ms,
        error_type,
    ): Row,
) -> Result<McpAuditEntry> {
    Ok(McpAuditEntry {
        id,
        created_at,
        task_id,
        project_id,
        run_id,
        job_id,
        subject_type,
        subject_id,
        user_id,
        tool_name,
        // Anything but the stored words of an allowed, succeeded call reads as the safer one.
        decision: if decision == Decision::Allow.as_str() {
            Decision::Allow
        } else {
            Decision::Deny
        },
        status: if status == CallStatus::Success.as_str() {
            CallStatus::Success
        } else {
            CallStatus::Error
        },
        duration_ms,
        error_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("x_y"), None);
        assert_eq!(decode_cursor("12"), None);
    }
}
