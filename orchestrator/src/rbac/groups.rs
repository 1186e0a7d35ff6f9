//! Groups and their members. Every change is one audit row, written in the change's
//! transaction.

use chrono::{DateTime, Utc};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    CreateGroupRequest, Group, GroupList, GroupMember, GroupMembers, UpdateGroupRequest,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::audit::{self, Entry};
use super::{Ref, bindings, find_user, well_formed_name};
use crate::authz::Subject;
use crate::error::Result;

type Row = (
    Uuid,
    String,
    String,
    bool,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
);

const SELECT: &str = "SELECT g.id, g.slug, g.display_name, g.is_active,
        (SELECT count(*) FROM group_memberships m WHERE m.group_id = g.id AND m.is_active),
        g.created_at, g.updated_at
     FROM groups g";

fn group((id, slug, display_name, is_active, member_count, created_at, updated_at): Row) -> Group {
    Group {
        id,
        slug,
        display_name,
        is_active,
        member_count,
        created_at,
        updated_at,
    }
}

fn check_display_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Problem::validation(
            "display_name must be 1 to 200 characters without control characters",
        )
        .into());
    }
    Ok(())
}

fn audit_entry<'a>(actor: &'a Subject, action: &'a str, resource: &'a str) -> Entry<'a> {
    Entry::change(actor, action, "group", resource)
}

pub async fn create(db: &PgPool, actor: &Subject, req: &CreateGroupRequest) -> Result<Group> {
    if !well_formed_name(&req.slug) {
        return Err(Problem::validation(
            "slug must be lowercase letters, digits, '.', '_', '-', 1 to 64 characters",
        )
        .into());
    }
    let display = req.display_name.clone().unwrap_or_else(|| req.slug.clone());
    check_display_name(&display)?;
    let mut tx = db.begin().await?;
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO groups (id, slug, display_name, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(id)
    .bind(&req.slug)
    .bind(&display)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(Problem::conflict(format!("group {} already exists", req.slug)).into());
    }
    audit::record(&mut *tx, &audit_entry(actor, "group.create", &req.slug)).await?;
    let created = fetch(&mut tx, &Ref::Id(id)).await?;
    tx.commit().await?;
    Ok(created)
}

async fn fetch(db: &mut PgConnection, r: &Ref) -> Result<Group> {
    let (id, slug) = r.binds();
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE g.id = $1 OR g.slug = $2"))
        .bind(id)
        .bind(slug)
        .fetch_optional(db)
        .await?;
    row.map(group)
        .ok_or_else(|| Problem::not_found(format!("group {r} does not exist")).into())
}

pub async fn get(db: &PgPool, r: &Ref) -> Result<Group> {
    fetch(&mut *db.acquire().await?, r).await
}

pub async fn list(db: &PgPool) -> Result<GroupList> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY g.slug"))
        .fetch_all(db)
        .await?;
    Ok(GroupList {
        groups: rows.into_iter().map(group).collect(),
    })
}

pub async fn update(
    db: &PgPool,
    actor: &Subject,
    r: &Ref,
    req: &UpdateGroupRequest,
) -> Result<Group> {
    if let Some(name) = &req.display_name {
        check_display_name(name)?;
    }
    let mut tx = db.begin().await?;
    let current = fetch(&mut tx, r).await?;
    sqlx::query(
        "UPDATE groups SET display_name = coalesce($2, display_name),
             is_active = coalesce($3, is_active), updated_at = now(), updated_by = $4
         WHERE id = $1",
    )
    .bind(current.id)
    .bind(&req.display_name)
    .bind(req.is_active)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?;
    let action = match req.is_active {
        Some(false) if current.is_active => "group.disable",
        Some(true) if !current.is_active => "group.enable",
        _ => "group.update",
    };
    if !bindings::an_admin_remains(&mut tx).await? {
        return Err(bindings::last_admin());
    }
    audit::record(&mut *tx, &audit_entry(actor, action, &current.slug)).await?;
    let updated = fetch(&mut tx, &Ref::Id(current.id)).await?;
    tx.commit().await?;
    Ok(updated)
}

pub async fn members(db: &PgPool, r: &Ref) -> Result<GroupMembers> {
    let g = get(db, r).await?;
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT u.id, u.handle, m.created_at FROM group_memberships m
         JOIN users u ON u.id = m.user_id
         WHERE m.group_id = $1 AND m.is_active ORDER BY u.handle",
    )
    .bind(g.id)
    .fetch_all(db)
    .await?;
    Ok(GroupMembers {
        members: rows
            .into_iter()
            .map(|(user_id, handle, added_at)| GroupMember {
                user_id,
                handle,
                added_at,
            })
            .collect(),
    })
}

/// Adds a member; adding one who already is changes nothing (and is 409, so that the caller
/// knows).
pub async fn add_member(db: &PgPool, actor: &Subject, group: &Ref, user: &Ref) -> Result<()> {
    let mut tx = db.begin().await?;
    let g = fetch(&mut tx, group).await?;
    let (user_id, handle) = find_user(&mut tx, user).await?;
    let added = sqlx::query(
        "INSERT INTO group_memberships (id, group_id, user_id, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (group_id, user_id) DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(g.id)
    .bind(user_id)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if added == 0 {
        return Err(Problem::conflict(format!("{handle} is already in {}", g.slug)).into());
    }
    let resource = format!("{}/{handle}", g.slug);
    audit::record(&mut *tx, &audit_entry(actor, "group.member.add", &resource)).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a member; it takes effect on their next request (subjects are loaded per request).
pub async fn remove_member(db: &PgPool, actor: &Subject, group: &Ref, user: &Ref) -> Result<()> {
    let mut tx = db.begin().await?;
    let g = fetch(&mut tx, group).await?;
    let (user_id, handle) = find_user(&mut tx, user).await?;
    let removed = sqlx::query("DELETE FROM group_memberships WHERE group_id = $1 AND user_id = $2")
        .bind(g.id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(Problem::not_found(format!("{handle} is not in {}", g.slug)).into());
    }
    let resource = format!("{}/{handle}", g.slug);
    if !bindings::an_admin_remains(&mut tx).await? {
        return Err(bindings::last_admin());
    }
    audit::record(
        &mut *tx,
        &audit_entry(actor, "group.member.remove", &resource),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
