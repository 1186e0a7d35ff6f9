//! Teams' state: groups and memberships, role bindings, access rules and the access audit.
//! The only writer of `groups`, `group_memberships`, `role_bindings`, `access_control_rules`
//! and `access_control_audit_log`. [`Access`] is how every route and tool asks
//! [`crate::authz`] and gets a denial audited; [`subject_of`] loads who is asking.

pub mod audit;
pub mod bindings;
pub mod groups;
pub mod rules;

use cynode_contracts::problem::Problem;
use cynode_contracts::user::{Role, SubjectType};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::authz::{Action, Check, Decision, Rule, Scope, Subject};
use crate::error::{Error, Result};

/// The columns a subject is read from, after a `WITH who(id, handle) AS (…)` that selects the
/// authenticated, enabled user (or nothing): their active groups, every active binding that
/// reaches them (`role:project-id`, the project empty at system scope) and the rules naming
/// them, their groups or everyone. One round trip, whatever the user has.
pub const SUBJECT_SELECT: &str = "
    , grp AS (
        SELECT m.group_id FROM group_memberships m
        JOIN groups g ON g.id = m.group_id
        JOIN who ON who.id = m.user_id
        WHERE m.is_active AND g.is_active)
    SELECT who.id, who.handle,
        ARRAY(SELECT group_id FROM grp) AS groups,
        ARRAY(SELECT r.name || ':' || coalesce(b.scope_id::text, '')
              FROM role_bindings b JOIN roles r ON r.id = b.role_id
              WHERE b.is_active
                AND ((b.subject_type = 'user' AND b.subject_id = who.id)
                  OR (b.subject_type = 'group' AND b.subject_id IN (SELECT group_id FROM grp))))
            AS bindings,
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'id', a.id, 'subject_type', a.subject_type, 'subject_id', a.subject_id,
                'action', a.action, 'resource_type', a.resource_type,
                'resource_pattern', a.resource_pattern, 'effect', a.effect,
                'priority', a.priority)), '[]'::jsonb)
         FROM access_control_rules a
         WHERE a.subject_id IS NULL OR a.subject_id = who.id
            OR a.subject_id IN (SELECT group_id FROM grp)) AS rules
    FROM who";

pub type SubjectRow = (Uuid, String, Vec<Uuid>, Vec<String>, Json<Vec<Rule>>);

impl From<SubjectRow> for Subject {
    fn from((user_id, handle, groups, bindings, Json(rules)): SubjectRow) -> Self {
        let bindings = bindings
            .iter()
            .filter_map(|b| {
                let (role, scope) = b.split_once(':')?;
                let role: Role = role.parse().ok()?;
                let scope = if scope.is_empty() {
                    None
                } else {
                    Some(scope.parse().ok()?)
                };
                Some((role, scope))
            })
            .collect();
        Subject {
            user_id,
            handle,
            groups,
            bindings,
            rules,
        }
    }
}

/// The subject of an enabled user; `None` for a disabled or unknown one.
pub async fn subject_of(db: &PgPool, user_id: Uuid) -> Result<Option<Subject>> {
    let row: Option<SubjectRow> = sqlx::query_as(&format!(
        "WITH who AS (SELECT id, handle FROM users WHERE id = $1 AND is_active) {SUBJECT_SELECT}"
    ))
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Subject::from))
}

/// Asks [`crate::authz`] and audits every denial: the one way routes and tools check access.
#[derive(Debug, Clone)]
pub struct Access {
    pub db: PgPool,
}

/// How a denial is told to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the caller may know the resource exists.
    Forbidden,
    /// 404: the caller may not read the project the resource is in, so it does not exist for
    /// them.
    Hidden,
}

impl Access {
    /// Allowed, or an audited denial as a 403 (or a 404 when the subject may not even read
    /// the resource's project).
    pub async fn require(&self, subject: &Subject, check: Check) -> Result<()> {
        match subject.decide(&check) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                let refusal = match check.scope {
                    Scope::Project(p)
                        if !subject
                            .decide(&Check::new(Action::ProjectRead, "project", p).in_project(p))
                            .allowed() =>
                    {
                        Refusal::Hidden
                    }
                    _ => Refusal::Forbidden,
                };
                self.deny(subject, &check, &reason, None).await?;
                Err(match refusal {
                    Refusal::Forbidden => Problem::forbidden(format!(
                        "{} is not allowed: {reason}",
                        check.action.as_str()
                    )),
                    Refusal::Hidden => Problem::not_found(format!(
                        "{} {} does not exist",
                        check.resource_type, check.resource
                    )),
                }
                .into())
            }
        }
    }

    /// Records a denial (`task_id` when a task's agent was refused).
    pub async fn deny(
        &self,
        subject: &Subject,
        check: &Check,
        reason: &str,
        task_id: Option<Uuid>,
    ) -> Result<()> {
        audit::record(
            &self.db,
            &audit::Entry {
                actor: Some((subject.user_id, &subject.handle)),
                action: check.action.as_str(),
                resource_type: check.resource_type,
                resource: &check.resource,
                allowed: false,
                reason: Some(reason),
                task_id,
            },
        )
        .await
    }
}

/// 400 naming the field, for an id that is neither a UUID nor a well-formed handle or slug.
pub fn bad_reference(field: &str) -> Error {
    Problem::validation(format!(
        "{field} must be a UUID or a handle/slug (lowercase letters, digits, '.', '_', '-', 1 to 64 characters)"
    ))
    .into()
}

/// `(limit, offset)` of the team lists: `limit` 1..=200 (default 50), as SQL integers.
pub fn page(limit: Option<u32>, offset: Option<u64>) -> Result<(i64, i64)> {
    use cynode_contracts::user::{DEFAULT_PAGE, MAX_PAGE};
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(l) if (1..=MAX_PAGE).contains(&l) => l,
        Some(_) => {
            return Err(Problem::validation(format!(
                "limit must be a whole number from 1 to {MAX_PAGE}"
            ))
            .into());
        }
    };
    let offset = i64::try_from(offset.unwrap_or(0))
        .map_err(|_| Problem::validation("offset is too large"))?;
    Ok((i64::from(limit), offset))
}

/// The user a reference names (by id or handle; never the reserved `system`): id and handle,
/// or 404.
pub(crate) async fn find_user(db: &mut PgConnection, r: &Ref) -> Result<(Uuid, String)> {
    let (id, handle) = r.binds();
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT id, handle FROM users WHERE (id = $1 OR handle = $2) AND handle <> 'system'",
    )
    .bind(id)
    .bind(handle)
    .fetch_optional(db)
    .await?;
    row.ok_or_else(|| Problem::not_found(format!("user {r} does not exist")).into())
}

/// The subject a binding or a rule names: a user (id or handle) or a group (id or slug), as id
/// and name, or 404.
pub(crate) async fn find_subject(
    db: &mut PgConnection,
    kind: SubjectType,
    r: &Ref,
) -> Result<(Uuid, String)> {
    match kind {
        SubjectType::User => find_user(db, r).await,
        SubjectType::Group => {
            let (id, slug) = r.binds();
            let row: Option<(Uuid, String)> =
                sqlx::query_as("SELECT id, slug FROM groups WHERE id = $1 OR slug = $2")
                    .bind(id)
                    .bind(slug)
                    .fetch_optional(db)
                    .await?;
            row.ok_or_else(|| Problem::not_found(format!("group {r} does not exist")).into())
        }
    }
}

/// A UUID path or body field, or 400 naming the field.
pub fn parse_id(field: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Problem::validation(format!("{field} must be a UUID")).into())
}

/// A handle or slug: lowercase letters, digits, `.`, `_`, `-`, starting with a letter or
/// digit, 1 to 64 characters.
pub fn well_formed_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= cynode_contracts::user::MAX_HANDLE_CHARS
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// A reference by id or by name, checked for shape.
#[derive(Debug, Clone)]
pub enum Ref {
    Id(Uuid),
    Name(String),
}

impl Ref {
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        if let Ok(id) = Uuid::parse_str(text) {
            return Ok(Self::Id(id));
        }
        if well_formed_name(text) {
            return Ok(Self::Name(text.to_owned()));
        }
        Err(bad_reference(field))
    }

    /// `(id, name)` binds for `WHERE id = $1 OR name = $2`.
    pub fn binds(&self) -> (Option<Uuid>, Option<&str>) {
        match self {
            Self::Id(id) => (Some(*id), None),
            Self::Name(n) => (None, Some(n)),
        }
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_told_apart_and_garbage_refused() {
        assert!(matches!(Ref::parse("id", "alice"), Ok(Ref::Name(_))));
        assert!(matches!(
            Ref::parse("id", "6f1c1b9e-3f5e-4c39-9a59-0e7f6c8e2a11"),
            Ok(Ref::Id(_))
        ));
        for bad in ["", "Alice", "a b", "-x", "x/y", &"a".repeat(65)] {
            assert!(Ref::parse("id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bindings_are_parsed_from_their_row_form() {
        let p = Uuid::new_v4();
        let s = Subject::from((
            Uuid::new_v4(),
            "a".to_owned(),
            vec![],
            vec![
                "admin:".to_owned(),
                format!("viewer:{p}"),
                "bogus:".to_owned(),
            ],
            Json(vec![]),
        ));
        assert_eq!(
            s.bindings,
            vec![(Role::Admin, None), (Role::Viewer, Some(p))]
        );
    }
}
