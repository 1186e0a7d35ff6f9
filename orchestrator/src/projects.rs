//! Projects: shared spaces for tasks, threads and artifacts. The only writer of `projects`.
//! Every user has a personal default project (`default-<user id>`, created with the user);
//! other projects are created by a user, who becomes their owner. Deleting archives: the
//! project's tasks and audit keep pointing at it.

use chrono::{DateTime, Utc};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    CreateProjectRequest, Project, ProjectList, ProjectListQuery, Role, UpdateProjectRequest,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::authz::{Action, Scope, Subject};
use crate::error::Result;
use crate::rbac::{self, Ref, well_formed_name};

type Row = (
    Uuid,
    String,
    String,
    Option<String>,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
);

const SELECT: &str =
    "SELECT id, slug, display_name, description, is_active, created_at, updated_at FROM projects";

/// Personal default projects are named after their user.
fn is_personal(slug: &str) -> bool {
    slug.strip_prefix("default-")
        .is_some_and(|rest| Uuid::parse_str(rest).is_ok())
}

fn project(row: Row, subject: &Subject) -> Project {
    let (id, slug, display_name, description, is_active, created_at, updated_at) = row;
    let my_roles: Vec<Role> = subject.roles_in(Scope::Project(id)).into_iter().collect();
    Project {
        id,
        is_personal: is_personal(&slug),
        slug,
        display_name,
        description,
        is_active,
        my_roles,
        created_at,
        updated_at,
    }
}

/// A project by id or slug (archived ones too), or 404.
pub async fn find(db: &mut PgConnection, r: &Ref) -> Result<(Uuid, String, bool)> {
    let (id, slug) = r.binds();
    let row: Option<(Uuid, String, bool)> =
        sqlx::query_as("SELECT id, slug, is_active FROM projects WHERE id = $1 OR slug = $2")
            .bind(id)
            .bind(slug)
            .fetch_optional(db)
            .await?;
    row.ok_or_else(|| Problem::not_found(format!("project {r} does not exist")).into())
}

pub async fn get(db: &PgPool, subject: &Subject, id: Uuid) -> Result<Project> {
    let row: Row = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_one(db)
        .await?;
    Ok(project(row, subject))
}

/// The projects the subject may read: those they hold a role in, or all of them when a system
/// role lets them read every project.
pub async fn list(db: &PgPool, subject: &Subject, q: &ProjectListQuery) -> Result<ProjectList> {
    let everywhere = subject.everywhere(Action::ProjectRead);
    let mine: Vec<Uuid> = subject.projects().into_iter().collect();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} WHERE ($1 OR id = ANY($2)) AND (NOT $3 OR is_active) ORDER BY slug"
    ))
    .bind(everywhere)
    .bind(&mine)
    .bind(q.active_only.unwrap_or(true))
    .fetch_all(db)
    .await?;
    Ok(ProjectList {
        projects: rows.into_iter().map(|r| project(r, subject)).collect(),
    })
}

fn check_text(field: &str, text: &str, max: usize) -> Result<()> {
    if text.trim().is_empty() || text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(Problem::validation(format!(
            "{field} must be 1 to {max} characters without control characters"
        ))
        .into());
    }
    Ok(())
}

fn check_description(text: &str) -> Result<()> {
    if text.chars().count() > 4000 {
        return Err(Problem::validation("description must be at most 4000 characters").into());
    }
    Ok(())
}

pub async fn create(db: &PgPool, subject: &Subject, req: &CreateProjectRequest) -> Result<Project> {
    if !well_formed_name(&req.slug) || req.slug.starts_with("default-") {
        return Err(Problem::validation(
            "slug must be lowercase letters, digits, '.', '_', '-', 1 to 64 characters, not starting with 'default-'",
        )
        .into());
    }
    check_text("display_name", &req.display_name, 200)?;
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let mut tx = db.begin().await?;
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO projects (id, slug, display_name, description, updated_by)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (slug) DO NOTHING",
    )
    .bind(id)
    .bind(&req.slug)
    .bind(&req.display_name)
    .bind(&req.description)
    .bind(subject.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(Problem::conflict(format!("project {} already exists", req.slug)).into());
    }
    rbac::bindings::bind_owner(&mut tx, subject.user_id, id).await?;
    rbac::audit::record(
        &mut *tx,
        &rbac::audit::Entry::change(subject, "project.create", "project", &req.slug),
    )
    .await?;
    tx.commit().await?;
    // The creator's subject was loaded before the binding existed.
    let mut owner = subject.clone();
    owner.bindings.push((Role::Owner, Some(id)));
    get(db, &owner, id).await
}

pub async fn update(
    db: &PgPool,
    subject: &Subject,
    id: Uuid,
    req: &UpdateProjectRequest,
) -> Result<Project> {
    if let Some(n) = &req.display_name {
        check_text("display_name", n, 200)?;
    }
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    sqlx::query(
        "UPDATE projects SET display_name = coalesce($2, display_name),
             description = coalesce($3, description), updated_at = now(), updated_by = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(&req.display_name)
    .bind(&req.description)
    .bind(subject.user_id)
    .execute(db)
    .await?;
    get(db, subject, id).await
}

/// Archives the project: it leaves lists and takes no new tasks; what it holds stays. A
/// personal project cannot be deleted (its user's work defaults to it).
pub async fn archive(db: &PgPool, subject: &Subject, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    let (_, slug, active) = find(&mut tx, &Ref::Id(id)).await?;
    if is_personal(&slug) {
        return Err(Problem::conflict("a personal default project cannot be deleted").into());
    }
    if !active {
        return Err(Problem::conflict(format!("project {slug} is already deleted")).into());
    }
    sqlx::query(
        "UPDATE projects SET is_active = false, updated_at = now(), updated_by = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(subject.user_id)
    .execute(&mut *tx)
    .await?;
    rbac::audit::record(
        &mut *tx,
        &rbac::audit::Entry::change(subject, "project.delete", "project", &slug),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The id of the user's personal default project.
pub async fn default_of(db: impl sqlx::PgExecutor<'_>, user: Uuid) -> Result<Uuid> {
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(crate::users::default_project_slug(user))
        .fetch_optional(db)
        .await?;
    id.ok_or_else(|| crate::error::Error::internal(format!("user {user} has no default project")))
}
