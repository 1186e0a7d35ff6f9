//! `memory.*`: notes a sandbox agent keeps while its job lives (`agent_memory`, removed with
//! the job). This module is the table's only writer. Capped per job so that an agent in a loop
//! cannot fill the database.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::agent::Agent;
use super::super::failure::ToolFailure;
use crate::mcp::Mcp;

/// Most notes one job keeps.
pub const MAX_ENTRIES: i64 = 100;
/// Longest note, in bytes.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
const MAX_SUMMARY_CHARS: usize = 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryAdd {
    pub task_id: Uuid,
    pub job_id: Uuid,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    #[schemars(length(max = 65536))]
    pub content: String,
    #[schemars(length(max = 1024))]
    pub summary: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryList {
    pub task_id: Uuid,
    pub job_id: Uuid,
    /// 1 to 100; default 100.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryKey {
    pub task_id: Uuid,
    pub job_id: Uuid,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
}

fn check_key(key: &str) -> Result<(), ToolFailure> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(ToolFailure::invalid(
            "key must be 1 to 256 bytes without control characters",
        ));
    }
    Ok(())
}

/// The job exists and belongs to the task (the token matched both ids to itself already; this
/// guards a PM-issued call in the future and a job removed meanwhile).
async fn job_of_task(state: &Mcp, task_id: Uuid, job_id: Uuid) -> Result<(), ToolFailure> {
    let found: Option<Uuid> = sqlx::query_scalar("SELECT task_id FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&state.db)
        .await?;
    match found {
        Some(t) if t == task_id => Ok(()),
        _ => Err(ToolFailure::not_found(format!(
            "job {job_id} of task {task_id} does not exist"
        ))),
    }
}

pub async fn add(state: &Mcp, _agent: &Agent, args: MemoryAdd) -> Result<Value, ToolFailure> {
    check_key(&args.key)?;
    if args.content.len() > MAX_CONTENT_BYTES || args.content.contains('\0') {
        return Err(ToolFailure::invalid(format!(
            "content must be at most {MAX_CONTENT_BYTES} bytes without NUL"
        )));
    }
    if args
        .summary
        .as_ref()
        .is_some_and(|s| s.chars().count() > MAX_SUMMARY_CHARS || s.contains('\0'))
    {
        return Err(ToolFailure::invalid(format!(
            "summary must be at most {MAX_SUMMARY_CHARS} characters without NUL"
        )));
    }
    job_of_task(state, args.task_id, args.job_id).await?;
    let mut tx = state.db.begin().await?;
    // Serialise a job's adds so that two at once cannot both pass the cap.
    sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(args.job_id)
        .execute(&mut *tx)
        .await?;
    let (count, exists): (i64, bool) = sqlx::query_as(
        "SELECT count(*), coalesce(bool_or(key = $2), false) FROM agent_memory WHERE job_id = $1",
    )
    .bind(args.job_id)
    .bind(&args.key)
    .fetch_one(&mut *tx)
    .await?;
    if !exists && count >= MAX_ENTRIES {
        return Err(ToolFailure::conflict(format!(
            "this job already keeps {MAX_ENTRIES} notes; delete one first"
        )));
    }
    sqlx::query(
        "INSERT INTO agent_memory (job_id, key, content, summary) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (job_id, key) DO UPDATE \
         SET content = excluded.content, summary = excluded.summary, updated_at = now()",
    )
    .bind(args.job_id)
    .bind(&args.key)
    .bind(&args.content)
    .bind(&args.summary)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(json!({"key": args.key, "replaced": exists}))
}

pub async fn list(state: &Mcp, _agent: &Agent, args: MemoryList) -> Result<Value, ToolFailure> {
    let limit = args.limit.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(ToolFailure::invalid("limit must be 1 to 100"));
    }
    job_of_task(state, args.task_id, args.job_id).await?;
    let rows: Vec<(String, Option<String>, i32)> = sqlx::query_as(
        "SELECT key, summary, octet_length(content) FROM agent_memory \
         WHERE job_id = $1 AND ($2::text IS NULL OR key > $2) ORDER BY key LIMIT $3",
    )
    .bind(args.job_id)
    .bind(args.cursor.as_deref())
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.db)
    .await?;
    let more = rows.len() > limit as usize;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = more.then(|| page.last().map(|r| r.0.clone())).flatten();
    Ok(json!({
        "entries": page
            .into_iter()
            .map(|(key, summary, bytes)| json!({"key": key, "summary": summary, "size_bytes": bytes}))
            .collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}

pub async fn retrieve(state: &Mcp, _agent: &Agent, args: MemoryKey) -> Result<Value, ToolFailure> {
    check_key(&args.key)?;
    job_of_task(state, args.task_id, args.job_id).await?;
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT content, summary FROM agent_memory WHERE job_id = $1 AND key = $2")
            .bind(args.job_id)
            .bind(&args.key)
            .fetch_optional(&state.db)
            .await?;
    let (content, summary) =
        row.ok_or_else(|| ToolFailure::not_found(format!("no note {:?}", args.key)))?;
    Ok(json!({"key": args.key, "content": content, "summary": summary}))
}

pub async fn delete(state: &Mcp, _agent: &Agent, args: MemoryKey) -> Result<Value, ToolFailure> {
    check_key(&args.key)?;
    job_of_task(state, args.task_id, args.job_id).await?;
    let gone = sqlx::query("DELETE FROM agent_memory WHERE job_id = $1 AND key = $2")
        .bind(args.job_id)
        .bind(&args.key)
        .execute(&state.db)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(ToolFailure::not_found(format!("no note {:?}", args.key)));
    }
    Ok(json!({"key": args.key, "deleted": true}))
}
