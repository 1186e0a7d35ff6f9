//! Stored conversations: `chat_threads` and their append-only `chat_messages`, whose content is
//! already redacted when it arrives here.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use cynode_contracts::user::{ChatMessage, ChatMessageList, ChatThread, ChatThreadList};
use sqlx::PgPool;
use uuid::Uuid;

use super::ChatError;
use crate::error::Result;

/// A thread idle this long is finished; the next message starts a new one.
pub const IDLE: Duration = Duration::from_secs(2 * 60 * 60);
const TITLE_CHARS: usize = 80;

/// Stores the message a completion adds, in the thread `named` (the caller's, else 404) or in
/// the caller's newest thread of `project_id` that is not idle, or in a new one. Returns the
/// thread.
pub async fn store_user_message(
    db: &PgPool,
    user_id: Uuid,
    project_id: Option<Uuid>,
    named: Option<Uuid>,
    role: &str,
    content: &str,
) -> Result<Uuid, ChatError> {
    let mut tx = db.begin().await?;
    relaxed(&mut tx).await?;
    let thread = match named {
        Some(id) => {
            let owned: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM chat_threads WHERE id = $1 AND user_id = $2 FOR UPDATE",
            )
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let id = owned.ok_or_else(|| {
                ChatError::new(
                    StatusCode::NOT_FOUND,
                    "thread_not_found",
                    format!("thread {id} does not exist"),
                )
            })?;
            // A thread made empty (`create`) takes its title from its first message.
            sqlx::query("UPDATE chat_threads SET title = $2 WHERE id = $1 AND title IS NULL")
                .bind(id)
                .bind(title_of(content))
                .execute(&mut *tx)
                .await?;
            id
        }
        None => {
            // One active thread per (user, project): concurrent first messages must not open two.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 11))")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let active: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM chat_threads
                 WHERE user_id = $1 AND project_id IS NOT DISTINCT FROM $2
                   AND updated_at > now() - make_interval(secs => $3)
                 ORDER BY updated_at DESC, id DESC LIMIT 1",
            )
            .bind(user_id)
            .bind(project_id)
            .bind(IDLE.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            match active {
                Some(id) => id,
                None => {
                    let id = Uuid::new_v4();
                    sqlx::query(
                        "INSERT INTO chat_threads (id, user_id, project_id, title)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(user_id)
                    .bind(project_id)
                    .bind(title_of(content))
                    .execute(&mut *tx)
                    .await?;
                    id
                }
            }
        }
    };
    insert(&mut tx, thread, role, content, None).await?;
    tx.commit().await?;
    Ok(thread)
}

/// A thread's title from its first message: its start, or none for a blank message.
fn title_of(content: &str) -> Option<String> {
    let title: String = content.trim().chars().take(TITLE_CHARS).collect();
    (!title.is_empty()).then_some(title)
}

/// A new, empty thread of `user_id` in `project_id`.
pub async fn create(
    db: &PgPool,
    user_id: Uuid,
    project_id: Uuid,
    title: Option<&str>,
) -> Result<ChatThread> {
    let (id, creator, created_at): (Uuid, String, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO chat_threads (id, user_id, project_id, title) VALUES ($1, $2, $3, $4)
         RETURNING id, (SELECT handle FROM users WHERE id = $2), created_at",
    )
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(project_id)
    .bind(title)
    .fetch_one(db)
    .await?;
    Ok(ChatThread {
        id,
        creator: Some(creator),
        project_id: Some(project_id),
        title: title.map(str::to_owned),
        message_count: 0,
        created_at,
        updated_at: created_at,
    })
}

/// Chat writes do not wait for their commit to reach the disk (`synchronous_commit = off`):
/// a request's answer is not held up by an fsync. PostgreSQL stays consistent; a crash of the
/// database host can lose the last fraction of a second of chat rows, which the client already
/// has anyway.
pub async fn relaxed(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Appends a message to `thread` and marks the thread active.
pub(crate) async fn insert(
    tx: &mut sqlx::PgConnection,
    thread: Uuid,
    role: &str,
    content: &str,
    model: Option<&str>,
) -> Result<()> {
    let role: String = role.chars().take(64).collect();
    sqlx::query(
        "INSERT INTO chat_messages (id, thread_id, role, content, model) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(thread)
    .bind(role)
    .bind(content)
    .bind(model)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE chat_threads SET updated_at = now() WHERE id = $1")
        .bind(thread)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Whether any node's latest report lists `model`, dispatchable or not: such a model exists
/// but is unavailable now (503), others are unknown (404).
pub async fn model_known(db: &PgPool, model: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM nodes n CROSS JOIN LATERAL (
             SELECT c.capability_snapshot AS snapshot FROM node_capabilities c
             WHERE c.node_id = n.id ORDER BY c.created_at DESC LIMIT 1) latest
         WHERE jsonb_typeof(latest.snapshot->'inference'->'available_models') = 'array'
           AND latest.snapshot->'inference'->'available_models' ? $1)",
    )
    .bind(model)
    .fetch_one(db)
    .await?)
}

type ThreadRow = (
    Uuid,
    Option<String>,
    Option<Uuid>,
    Option<String>,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// Whose threads a list shows.
#[derive(Debug, Clone, Copy)]
pub enum Threads {
    /// The user's own.
    Of(Uuid),
    /// Everyone's in the project (the caller may read them).
    In(Uuid),
}

/// Threads, newest first.
pub async fn list(db: &PgPool, which: Threads, limit: i64, offset: i64) -> Result<ChatThreadList> {
    let (user, project) = match which {
        Threads::Of(u) => (Some(u), None),
        Threads::In(p) => (None, Some(p)),
    };
    let mut rows: Vec<ThreadRow> = sqlx::query_as(
        "SELECT t.id, (SELECT u.handle FROM users u WHERE u.id = t.user_id), t.project_id,
                t.title, (SELECT count(*) FROM chat_messages m WHERE m.thread_id = t.id),
                t.created_at, t.updated_at
         FROM chat_threads t
         WHERE ($1::uuid IS NULL OR t.user_id = $1) AND ($2::uuid IS NULL OR t.project_id = $2)
         ORDER BY t.updated_at DESC, t.id DESC LIMIT $3 OFFSET $4",
    )
    .bind(user)
    .bind(project)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let next_offset = next(&mut rows, limit, offset);
    Ok(ChatThreadList {
        threads: rows
            .into_iter()
            .map(
                |(id, creator, project_id, title, message_count, created_at, updated_at)| {
                    ChatThread {
                        id,
                        creator,
                        project_id,
                        title,
                        message_count,
                        created_at,
                        updated_at,
                    }
                },
            )
            .collect(),
        next_offset,
    })
}

/// The owner and project of a thread, if it exists.
pub async fn owner(db: &PgPool, thread: Uuid) -> Result<Option<(Uuid, Option<Uuid>)>> {
    Ok(
        sqlx::query_as("SELECT user_id, project_id FROM chat_threads WHERE id = $1")
            .bind(thread)
            .fetch_optional(db)
            .await?,
    )
}

/// Messages of thread `thread`, oldest first (whoever may read it is the caller's to decide).
pub async fn messages(
    db: &PgPool,
    thread: Uuid,
    limit: i64,
    offset: i64,
) -> Result<ChatMessageList> {
    type MessageRow = (Uuid, String, String, Option<String>, DateTime<Utc>);
    let mut rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT id, role, content, model, created_at FROM chat_messages WHERE thread_id = $1
         ORDER BY created_at, id LIMIT $2 OFFSET $3",
    )
    .bind(thread)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let next_offset = next(&mut rows, limit, offset);
    Ok(ChatMessageList {
        thread_id: thread,
        messages: rows
            .into_iter()
            .map(|(id, role, content, model, created_at)| ChatMessage {
                id,
                role,
                content,
                model,
                created_at,
            })
            .collect(),
        next_offset,
    })
}

fn next<T>(rows: &mut Vec<T>, limit: i64, offset: i64) -> Option<u64> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    (rows.len() > limit).then(|| {
        rows.truncate(limit);
        u64::try_from(offset).unwrap_or(0) + limit as u64
    })
}
