//! `cynork project create|list|get|update|delete|set|rbac`. Anyone may create a project (and
//! owns it); what else one may do in a project depends on one's roles there.
//!
//! `project set` keeps the active project in the config file; `task create` and `chat` use it
//! when they are given no `--project-id`.

use cynode_contracts::routes;
use cynode_contracts::user::{
    CreateProjectRequest, Project, ProjectList, ProjectListQuery, UpdateProjectRequest,
};
use reqwest::Method;
use serde::Serialize;
use uuid::Uuid;

use super::rbac::{self, Scope};
use super::{Context, borrowed, confirmed, query_of};
use crate::cli::{ProjectCommand, ProjectRbacCommand};
use crate::client::{Client, json_body};
use crate::config;
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line, tsv_table};

/// What `project set` takes to clear the active project.
pub const NONE: &str = "none";

pub async fn run(ctx: &Context, cmd: ProjectCommand) -> Result<()> {
    match cmd {
        ProjectCommand::Create {
            slug,
            title,
            description,
        } => {
            let request = CreateProjectRequest {
                slug,
                display_name: title,
                description,
            };
            let project: Project = ctx
                .client()?
                .call(
                    Method::POST,
                    &routes::fill(routes::user::PROJECTS, &[]),
                    &[],
                    Some(&json_body(&request)),
                )
                .await?;
            emit(ctx.format, &project, || project_line(&project));
            Ok(())
        }
        ProjectCommand::List { active_only } => {
            // Archived projects too, unless --active-only (the gateway's default leaves them out).
            let query = query_of(&ProjectListQuery {
                active_only: Some(active_only),
            });
            let list: ProjectList = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::PROJECTS, &[]),
                    &borrowed(&query),
                    None,
                )
                .await?;
            emit(ctx.format, &list, || projects_table(&list.projects));
            Ok(())
        }
        ProjectCommand::Get(project) => {
            let project = get(&mut ctx.client()?, &project.project).await?;
            emit(ctx.format, &project, || project_line(&project));
            Ok(())
        }
        ProjectCommand::Update {
            project,
            title,
            description,
        } => {
            let request = UpdateProjectRequest {
                display_name: title,
                description,
            };
            let project: Project = ctx
                .client()?
                .call(
                    Method::PATCH,
                    &routes::fill(routes::user::PROJECT, &[&project.project]),
                    &[],
                    Some(&json_body(&request)),
                )
                .await?;
            emit(ctx.format, &project, || {
                let mut pairs = vec![
                    ("project_id", project.id.to_string()),
                    ("updated", "true".to_owned()),
                    ("slug", project.slug.clone()),
                    ("title", project.display_name.clone()),
                ];
                if let Some(description) = &project.description {
                    pairs.push(("description", description.clone()));
                }
                kv_line(&pairs)
            });
            Ok(())
        }
        ProjectCommand::Delete { project, yes } => delete(ctx, &project.project, yes).await,
        ProjectCommand::Set { project } => set(ctx, &project).await,
        ProjectCommand::Rbac(cmd) => match cmd {
            ProjectRbacCommand::List(project) => {
                rbac::list(ctx, &Scope::Project(project.project)).await
            }
            ProjectRbacCommand::Grant { project, binding } => {
                rbac::grant(ctx, &Scope::Project(project.project), &binding).await
            }
            ProjectRbacCommand::Revoke { project, binding } => {
                rbac::revoke(ctx, &Scope::Project(project.project), &binding).await
            }
        },
    }
}

/// One project, by id or slug.
pub async fn get(client: &mut Client, project: &str) -> Result<Project> {
    client
        .call(
            Method::GET,
            &routes::fill(routes::user::PROJECT, &[project]),
            &[],
            None,
        )
        .await
}

/// A project's id: a UUID as it is, a slug looked up on the gateway.
pub async fn resolve(client: &mut Client, project: &str) -> Result<Uuid> {
    match project.parse::<Uuid>() {
        Ok(id) => Ok(id),
        Err(_) => Ok(get(client, project).await?.id),
    }
}

/// The project a command runs in: the one it was given (a slug is looked up), else the
/// active one (see [`hint_active`] for errors about it).
pub async fn chosen(
    ctx: &Context,
    client: &mut Client,
    given: Option<&str>,
) -> Result<Option<Uuid>> {
    if let Some(project) = given {
        return resolve(client, project).await.map(Some);
    }
    ctx.active_project()
}

/// An error about the active project, with how to change it.
pub fn hint_active(e: CliError) -> CliError {
    const HINT: &str =
        "(the active project from `cynork project set`; `cynork project set none` clears it)";
    match e {
        CliError::NotFound(m) => CliError::NotFound(format!("{m} {HINT}")),
        CliError::Auth(m) => CliError::Auth(format!("{m} {HINT}")),
        other => other,
    }
}

async fn delete(ctx: &Context, project: &str, yes: bool) -> Result<()> {
    let mut client = ctx.client()?;
    // Looked up first: an unknown project is an error, not a question.
    let found = get(&mut client, project).await?;
    if !confirmed(
        yes,
        &format!(
            "Delete project {}? It is archived: its tasks stay, read-only.",
            found.slug
        ),
    )? {
        return Ok(());
    }
    let id = found.id.to_string();
    client
        .call_no_content(
            Method::DELETE,
            &routes::fill(routes::user::PROJECT, &[&id]),
            &[],
        )
        .await?;

    #[derive(Serialize)]
    struct Deleted<'a> {
        project_id: Uuid,
        slug: &'a str,
        deleted: bool,
    }
    let out = Deleted {
        project_id: found.id,
        slug: &found.slug,
        deleted: true,
    };
    emit(ctx.format, &out, || {
        kv_line(&[
            ("project_id", id.clone()),
            ("slug", found.slug.clone()),
            ("deleted", "true".to_owned()),
        ])
    });
    Ok(())
}

/// `project set P`: checks P on the gateway, then saves its id; `project set none` clears it.
async fn set(ctx: &Context, project: &str) -> Result<()> {
    let found = if project == NONE {
        None
    } else {
        let found = get(&mut ctx.client()?, project).await?;
        if !found.is_active {
            return Err(CliError::Conflict(format!(
                "project {} is archived; it takes no new tasks",
                found.slug
            )));
        }
        Some(found)
    };
    // Loaded after the request, which may have saved refreshed tokens.
    let path = ctx.config_path()?;
    let mut config = config::load(&path)?;
    config.active_project = found.as_ref().map(|p| p.id);
    config::save(&path, &config)?;

    #[derive(Serialize)]
    struct Active<'a> {
        active_project: Option<Uuid>,
        #[serde(skip_serializing_if = "Option::is_none")]
        slug: Option<&'a str>,
    }
    let out = Active {
        active_project: found.as_ref().map(|p| p.id),
        slug: found.as_ref().map(|p| p.slug.as_str()),
    };
    emit(ctx.format, &out, || match &found {
        Some(p) => kv_line(&[
            ("active_project", p.id.to_string()),
            ("slug", p.slug.clone()),
        ]),
        None => kv_line(&[("active_project", NONE)]),
    });
    Ok(())
}

/// One project in full.
pub fn project_line(project: &Project) -> String {
    let mut pairs = vec![
        ("project_id", project.id.to_string()),
        ("slug", project.slug.clone()),
        ("title", project.display_name.clone()),
    ];
    if let Some(description) = &project.description {
        pairs.push(("description", description.clone()));
    }
    pairs.extend([
        ("is_active", project.is_active.to_string()),
        ("is_personal", project.is_personal.to_string()),
        (
            "my_roles",
            if project.my_roles.is_empty() {
                "-".to_owned()
            } else {
                project
                    .my_roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            },
        ),
        ("created_at", project.created_at.to_rfc3339()),
        ("updated_at", project.updated_at.to_rfc3339()),
    ]);
    kv_line(&pairs)
}

/// TSV: `project_id slug title is_active updated_at`.
pub fn projects_table(projects: &[Project]) -> String {
    tsv_table(
        &["project_id", "slug", "title", "is_active", "updated_at"],
        projects.iter().map(|p| {
            vec![
                p.id.to_string(),
                p.slug.clone(),
                p.display_name.clone(),
                p.is_active.to_string(),
                p.updated_at.to_rfc3339(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use cynode_contracts::user::Role;

    use super::*;

    fn project() -> Project {
        let at: chrono::DateTime<chrono::Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        Project {
            id: Uuid::nil(),
            slug: "vision".into(),
            display_name: "Computer vision".into(),
            description: None,
            is_active: true,
            is_personal: false,
            my_roles: vec![Role::Member, Role::Viewer],
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn projects_list_as_tsv_in_the_spec_columns() {
        let mut archived = project();
        archived.slug = "old".into();
        archived.display_name = "tab\there".into();
        archived.is_active = false;
        assert_eq!(
            projects_table(&[project(), archived]),
            "project_id\tslug\ttitle\tis_active\tupdated_at\n\
             00000000-0000-0000-0000-000000000000\tvision\tComputer vision\ttrue\t2026-01-02T03:04:05+00:00\n\
             00000000-0000-0000-0000-000000000000\told\t\"tab\\there\"\tfalse\t2026-01-02T03:04:05+00:00"
        );
    }

    #[test]
    fn a_project_line_shows_my_roles() {
        let mut p = project();
        assert_eq!(
            project_line(&p),
            "project_id=00000000-0000-0000-0000-000000000000 slug=vision \
             title=\"Computer vision\" is_active=true is_personal=false my_roles=member,viewer \
             created_at=2026-01-02T03:04:05+00:00 updated_at=2026-01-02T03:04:05+00:00"
        );
        p.description = Some("Images".into());
        p.my_roles.clear();
        let line = project_line(&p);
        assert!(
            line.contains(" description=Images is_active=true "),
            "{line}"
        );
        assert!(line.contains(" my_roles=- "), "{line}");
    }

    #[test]
    fn active_project_errors_say_how_to_clear_it() {
        let e = hint_active(CliError::NotFound("Not found: project".into()));
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("cynork project set none"), "{e}");
        let e = hint_active(CliError::Rejected("bad".into()));
        assert_eq!(e.to_string(), "bad");
    }
}
