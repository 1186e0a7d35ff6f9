//! Role bindings: grant, revoke, list; and the rule that the system never locks itself out (at
//! least one enabled user keeps the system admin role through every change).

use chrono::{DateTime, Utc};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{GrantRequest, Role, RoleBinding, RoleBindingList, ScopeType};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::audit::{self, Entry};
use super::{Ref, find_subject};
use crate::authz::{Scope, Subject, policy};
use crate::error::{Error, Result};

type Row = (
    Uuid,
    String,
    String,
    Uuid,
    Option<String>,
    String,
    Option<Uuid>,
    DateTime<Utc>,
);

const SELECT: &str = "SELECT b.id, r.name, b.subject_type, b.subject_id,
        coalesce(u.handle, g.slug), b.scope_type, b.scope_id, b.created_at
     FROM role_bindings b JOIN roles r ON r.id = b.role_id
     LEFT JOIN users u ON b.subject_type = 'user' AND u.id = b.subject_id
     LEFT JOIN groups g ON b.subject_type = 'group' AND g.id = b.subject_id";

fn binding(row: Row) -> Result<RoleBinding> {
    let (id, role, subject_type, subject_id, name, scope_type, scope_id, created_at) = row;
    Ok(RoleBinding {
        id,
        role: role.parse().map_err(Error::internal)?,
        subject_type: subject_type.parse().map_err(Error::internal)?,
        subject_id,
        subject_name: name.unwrap_or_default(),
        scope_type: scope_type.parse().map_err(Error::internal)?,
        scope_id,
        created_at,
    })
}

/// The bindings of one scope.
pub async fn list(db: &PgPool, scope: Scope) -> Result<RoleBindingList> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE b.is_active AND b.scope_id IS NOT DISTINCT FROM $1
         ORDER BY r.name, coalesce(u.handle, g.slug)"
    ))
    .bind(match scope {
        Scope::System => None,
        Scope::Project(p) => Some(p),
    })
    .fetch_all(db)
    .await?;
    Ok(RoleBindingList {
        bindings: rows.into_iter().map(binding).collect::<Result<_>>()?,
    })
}

pub async fn get(db: &PgPool, id: Uuid) -> Result<RoleBinding> {
    let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(binding)
        .transpose()?
        .ok_or_else(|| Problem::not_found(format!("role binding {id} does not exist")).into())
}

fn scope_text(scope: Scope) -> String {
    match scope {
        Scope::System => "system".into(),
        Scope::Project(p) => format!("project:{p}"),
    }
}

/// Grants `role` at `scope`; the granter must hold the role, or a stronger one, there. A
/// refusal writes nothing (the gateway audits it).
pub async fn grant(
    db: &PgPool,
    actor: &Subject,
    req: &GrantRequest,
    scope: Scope,
) -> Result<RoleBinding> {
    let role: Role = req
        .role
        .parse()
        .map_err(|e: String| Error::from(Problem::not_found(e)))?;
    if scope == Scope::System && role == Role::Owner {
        return Err(Problem::validation(
            "owner is a project role; at system scope grant admin, operator, member or viewer",
        )
        .into());
    }
    let subject_ref = Ref::parse("subject", &req.subject)?;
    let resource = format!(
        "{} {}:{} at {}",
        role,
        req.subject_type.as_str(),
        req.subject,
        scope_text(scope)
    );
    if !policy().covers(&actor.roles_in(scope), role) {
        return Err(Problem::forbidden(format!(
            "you may not grant {role}: the granter does not hold {role} at this scope"
        ))
        .into());
    }
    let mut tx = db.begin().await?;
    let (subject, _) = find_subject(&mut tx, req.subject_type, &subject_ref).await?;
    let id = Uuid::new_v4();
    let (scope_type, scope_id) = match scope {
        Scope::System => (ScopeType::System, None),
        Scope::Project(p) => (ScopeType::Project, Some(p)),
    };
    let inserted = sqlx::query(
        "INSERT INTO role_bindings (id, subject_type, subject_id, role_id, scope_type, scope_id, updated_by)
         SELECT $1, $2, $3, r.id, $5, $6, $7 FROM roles r WHERE r.name = $4
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(req.subject_type.as_str())
    .bind(subject)
    .bind(role.as_str())
    .bind(scope_type.as_str())
    .bind(scope_id)
    .bind(actor.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(Problem::conflict(format!(
            "{} {} already holds {role} there",
            req.subject_type.as_str(),
            req.subject
        ))
        .into());
    }
    audit::record(
        &mut *tx,
        &Entry::change(actor, "rbac.grant", "role_binding", &resource),
    )
    .await?;
    tx.commit().await?;
    get(db, id).await
}

/// Revokes a binding. The revoker must hold its role (or a stronger one) at its scope, and the
/// last system admin stays; a refusal writes nothing (the gateway audits it).
pub async fn revoke(db: &PgPool, actor: &Subject, binding: &RoleBinding) -> Result<()> {
    let scope = match binding.scope_id {
        None => Scope::System,
        Some(p) => Scope::Project(p),
    };
    let resource = format!(
        "{} {}:{} at {}",
        binding.role,
        binding.subject_type.as_str(),
        binding.subject_name,
        scope_text(scope)
    );
    if !policy().covers(&actor.roles_in(scope), binding.role) {
        return Err(Problem::forbidden(format!(
            "you may not revoke it: the revoker does not hold {} at this scope",
            binding.role
        ))
        .into());
    }
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM role_bindings WHERE id = $1")
        .bind(binding.id)
        .execute(&mut *tx)
        .await?;
    if !an_admin_remains(&mut tx).await? {
        return Err(last_admin());
    }
    audit::record(
        &mut *tx,
        &Entry::change(actor, "rbac.revoke", "role_binding", &resource),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The 409 of a change that would leave no enabled system admin (the transaction it was tried
/// in is rolled back by the caller's early return).
pub fn last_admin() -> Error {
    Problem::conflict("refused: it would leave no enabled system admin").into()
}

/// Whether, as the transaction sees it, some enabled user holds the system admin role
/// (directly or through an enabled group). Checked after a change that could remove the last
/// one, so that the change is rolled back instead.
pub async fn an_admin_remains(tx: &mut PgConnection) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM users u
            JOIN role_bindings b ON b.scope_type = 'system' AND b.is_active
            JOIN roles r ON r.id = b.role_id AND r.name = 'admin'
            WHERE u.is_active AND (
                (b.subject_type = 'user' AND b.subject_id = u.id)
             OR (b.subject_type = 'group' AND b.subject_id IN (
                    SELECT m.group_id FROM group_memberships m JOIN groups g ON g.id = m.group_id
                    WHERE m.user_id = u.id AND m.is_active AND g.is_active))))",
    )
    .fetch_one(&mut *tx)
    .await?)
}

/// Makes `user` the owner of `project` (its creator, or a personal project's user).
pub async fn bind_owner(tx: &mut PgConnection, user: Uuid, project: Uuid) -> Result<()> {
    sqlx::query(
        "INSERT INTO role_bindings (id, subject_type, subject_id, role_id, scope_type, scope_id, updated_by)
         SELECT $1, 'user', $2, r.id, 'project', $3, $2 FROM roles r WHERE r.name = 'owner'",
    )
    .bind(Uuid::new_v4())
    .bind(user)
    .bind(project)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Binds the bootstrap admin to the system admin role (idempotent).
pub async fn bind_system_admin(tx: &mut PgConnection, user: Uuid) -> Result<()> {
    sqlx::query(
        "INSERT INTO role_bindings (id, subject_type, subject_id, role_id, scope_type)
         SELECT $1, 'user', $2, r.id, 'system' FROM roles r WHERE r.name = 'admin'
         ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(user)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
