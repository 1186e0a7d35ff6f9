//! Access rules: list, create, delete. Each change is audited.

use chrono::{DateTime, Utc};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{AccessRule, AccessRuleList, CreateAccessRuleRequest};
use sqlx::PgPool;
use uuid::Uuid;

use super::audit::{self, Entry};
use super::{Ref, find_subject};
use crate::authz::Subject;
use crate::error::{Error, Result};

type Row = (
    Uuid,
    String,
    Option<Uuid>,
    String,
    String,
    String,
    String,
    i32,
    Option<String>,
    DateTime<Utc>,
);

const SELECT: &str = "SELECT id, subject_type, subject_id, action, resource_type, \
     resource_pattern, effect, priority, reason, created_at FROM access_control_rules";

fn rule(row: Row) -> Result<AccessRule> {
    let (
        id,
        st,
        subject_id,
        action,
        resource_type,
        resource_pattern,
        effect,
        priority,
        reason,
        created_at,
    ) = row;
    Ok(AccessRule {
        id,
        subject_type: st.parse().map_err(Error::internal)?,
        subject_id,
        action,
        resource_type,
        resource_pattern,
        effect: effect.parse().map_err(Error::internal)?,
        priority,
        reason,
        created_at,
    })
}

pub async fn list(db: &PgPool) -> Result<AccessRuleList> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY priority DESC, created_at"))
        .fetch_all(db)
        .await?;
    Ok(AccessRuleList {
        rules: rows.into_iter().map(rule).collect::<Result<_>>()?,
    })
}

fn dotted(field: &str, text: &str) -> Result<()> {
    let ok = text.len() <= 128
        && text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Problem::validation(format!(
            "{field} must be lowercase words joined by '.' (e.g. mcp.tool.invoke), at most 128 characters"
        ))
        .into())
    }
}

pub async fn create(
    db: &PgPool,
    actor: &Subject,
    req: &CreateAccessRuleRequest,
) -> Result<AccessRule> {
    dotted("action", &req.action)?;
    dotted("resource_type", &req.resource_type)?;
    if req.action == crate::authz::Action::RuleManage.as_str() {
        // Whoever manages rules must always be able to remove a bad one.
        return Err(Problem::validation(
            "rules cannot govern rule.manage; the system admin role always manages rules",
        )
        .into());
    }
    let pattern = &req.resource_pattern;
    if pattern.is_empty() || pattern.len() > 256 || pattern.chars().any(char::is_control) {
        return Err(Problem::validation(
            "resource_pattern must be 1 to 256 characters without control characters",
        )
        .into());
    }
    let subject_ref = req
        .subject
        .as_deref()
        .map(|s| Ref::parse("subject", s))
        .transpose()?;
    let mut tx = db.begin().await?;
    let subject_id = match (&subject_ref, req.subject_type) {
        (None, _) => None,
        (Some(r), kind) => Some(find_subject(&mut tx, kind, r).await?.0),
    };
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO access_control_rules (id, subject_type, subject_id, action, resource_type,
             resource_pattern, effect, priority, reason, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(req.subject_type.as_str())
    .bind(subject_id)
    .bind(&req.action)
    .bind(&req.resource_type)
    .bind(pattern)
    .bind(req.effect.as_str())
    .bind(req.priority)
    .bind(&req.reason)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?;
    let resource = describe(req, subject_ref.as_ref());
    audit::record(
        &mut *tx,
        &Entry {
            actor: Some((actor.user_id, &actor.handle)),
            action: "rule.create",
            resource_type: "access_rule",
            resource: &resource,
            allowed: true,
            reason: req.reason.as_deref(),
            task_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    get(db, id).await
}

fn describe(req: &CreateAccessRuleRequest, subject: Option<&Ref>) -> String {
    format!(
        "{} {} {} on {}:{} for {}:{}",
        req.effect.as_str(),
        req.action,
        req.priority,
        req.resource_type,
        req.resource_pattern,
        req.subject_type.as_str(),
        subject.map_or("*".to_owned(), ToString::to_string)
    )
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<AccessRule> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(rule)
        .transpose()?
        .ok_or_else(|| Problem::not_found(format!("access rule {id} does not exist")).into())
}

pub async fn delete(db: &PgPool, actor: &Subject, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    let removed = sqlx::query("DELETE FROM access_control_rules WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(Problem::not_found(format!("access rule {id} does not exist")).into());
    }
    audit::record(
        &mut *tx,
        &audit::Entry::change(actor, "rule.delete", "access_rule", &id.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
