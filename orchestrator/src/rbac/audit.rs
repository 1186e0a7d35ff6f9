//! `access_control_audit_log`: membership changes, role grants and revokes, user state
//! changes, and every denied request of any route or tool. Only this module writes it.

use chrono::{DateTime, Utc};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{AuditEvent, AuditPage, AuditQuery, Effect};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::error::Result;

/// One audit row.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The acting user (id, handle); `None` when nobody logged in.
    pub actor: Option<(Uuid, &'a str)>,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource: &'a str,
    pub allowed: bool,
    pub reason: Option<&'a str>,
    pub task_id: Option<Uuid>,
}

impl<'a> Entry<'a> {
    /// A change `actor` made (allowed; a refusal is recorded by the gateway).
    pub fn change(
        actor: &'a crate::authz::Subject,
        action: &'a str,
        resource_type: &'a str,
        resource: &'a str,
    ) -> Self {
        Self {
            actor: Some((actor.user_id, &actor.handle)),
            action,
            resource_type,
            resource,
            allowed: true,
            reason: None,
            task_id: None,
        }
    }
}

pub async fn record(db: impl PgExecutor<'_>, e: &Entry<'_>) -> Result<()> {
    let effect = if e.allowed {
        Effect::Allow
    } else {
        Effect::Deny
    };
    // A caller's garbage name must still be auditable: cut, and without NUL.
    let resource: String = e.resource.chars().take(512).collect();
    sqlx::query(
        "INSERT INTO access_control_audit_log
           (id, subject_type, subject_id, subject_handle, action, resource_type, resource,
            decision, reason, task_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::new_v4())
    .bind(if e.actor.is_some() {
        "user"
    } else {
        "anonymous"
    })
    .bind(e.actor.map(|(id, _)| id))
    .bind(e.actor.map(|(_, h)| h))
    .bind(e.action)
    .bind(e.resource_type)
    .bind(resource.replace('\0', "\u{FFFD}"))
    .bind(effect.as_str())
    .bind(e.reason)
    .bind(e.task_id)
    .execute(db)
    .await?;
    Ok(())
}

type Row = (
    Uuid,
    DateTime<Utc>,
    String,
    Option<Uuid>,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<Uuid>,
);

const COLUMNS: &str = "id, created_at, subject_type, subject_id, subject_handle, action, \
                       resource_type, resource, decision, reason, task_id";

fn event(row: Row) -> AuditEvent {
    let (id, created_at, actor_type, actor_id, actor_handle, action, resource_type, resource_id) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    AuditEvent {
        id,
        created_at,
        actor_type,
        actor_id,
        actor_handle,
        action,
        resource_type,
        resource_id,
        decision: if row.8 == Effect::Allow.as_str() {
            Effect::Allow
        } else {
            Effect::Deny
        },
        reason: row.9,
        task_id: row.10,
    }
}

/// Newest first, filtered, paged by offset.
pub async fn list(db: &PgPool, q: &AuditQuery) -> Result<AuditPage> {
    let (limit, offset) = crate::rbac::page(q.limit, q.offset)?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM access_control_audit_log
         WHERE ($1::text IS NULL OR resource_type = $1)
           AND ($2::uuid IS NULL OR subject_id = $2)
           AND ($3::text IS NULL OR action = $3)
           AND ($4::text IS NULL OR decision = $4)
           AND ($5::timestamptz IS NULL OR created_at >= $5)
           AND ($6::timestamptz IS NULL OR created_at < $6)
         ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
    ))
    .bind(&q.resource_type)
    .bind(q.actor_id)
    .bind(&q.action)
    .bind(q.decision.map(Effect::as_str))
    .bind(q.since)
    .bind(q.until)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    Ok(AuditPage {
        events: rows.into_iter().take(limit as usize).map(event).collect(),
        next_offset: more.then(|| (offset + limit) as u64),
    })
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<AuditEvent> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM access_control_audit_log WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(event)
        .ok_or_else(|| Problem::not_found(format!("audit event {id} does not exist")).into())
}
