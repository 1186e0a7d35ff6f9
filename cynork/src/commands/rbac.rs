//! Role bindings, at system scope or in one project (`cynork rbac`, `cynork project rbac`),
//! and the roles themselves (`cynork role list`).
//!
//! Revoking names a role and a subject, not a binding id: cynork lists the scope's bindings
//! and deletes the one that matches.

use cynode_contracts::routes;
use cynode_contracts::user::{
    GrantRequest, RoleBinding, RoleBindingList, RoleBindingQuery, RoleInfo, RoleList, ScopeType,
    SubjectType,
};
use reqwest::Method;
use serde::Serialize;
use uuid::Uuid;

use super::{Context, borrowed, query_of};
use crate::cli::{BindingArgs, RbacCommand, RoleCommand, ScopeArgs};
use crate::client::{Client, json_body};
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line, tsv_table};

/// Where bindings hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    System,
    /// A project, by id or slug.
    Project(String),
}

impl Scope {
    fn from_args(args: ScopeArgs) -> Self {
        match args.project {
            Some(project) if !args.system => Self::Project(project),
            _ => Self::System,
        }
    }

    fn scope_type(&self) -> ScopeType {
        match self {
            Self::System => ScopeType::System,
            Self::Project(_) => ScopeType::Project,
        }
    }

    fn scope_id(&self) -> Option<String> {
        match self {
            Self::System => None,
            Self::Project(project) => Some(project.clone()),
        }
    }

    /// "in project P" or "at system scope", for messages.
    fn describe(&self) -> String {
        match self {
            Self::System => "at system scope".to_owned(),
            Self::Project(project) => format!("in project {project}"),
        }
    }
}

/// The subject of `--user U` or `--group G`.
fn subject(args: &BindingArgs) -> Result<(SubjectType, String)> {
    match (&args.user, &args.group) {
        (Some(user), None) => Ok((SubjectType::User, user.clone())),
        (None, Some(group)) => Ok((SubjectType::Group, group.clone())),
        _ => Err(CliError::Usage(
            "give exactly one of --user and --group".into(),
        )),
    }
}

pub async fn run(ctx: &Context, cmd: RbacCommand) -> Result<()> {
    match cmd {
        RbacCommand::List { scope } => list(ctx, &Scope::from_args(scope)).await,
        RbacCommand::Grant { scope, binding } => {
            grant(ctx, &Scope::from_args(scope), &binding).await
        }
        RbacCommand::Revoke { scope, binding } => {
            revoke(ctx, &Scope::from_args(scope), &binding).await
        }
    }
}

async fn bindings(client: &mut Client, scope: &Scope) -> Result<RoleBindingList> {
    let query = query_of(&RoleBindingQuery {
        scope_type: Some(scope.scope_type()),
        scope_id: scope.scope_id(),
    });
    client
        .call(
            Method::GET,
            &routes::fill(routes::user::ROLE_BINDINGS, &[]),
            &borrowed(&query),
            None,
        )
        .await
}

pub async fn list(ctx: &Context, scope: &Scope) -> Result<()> {
    let list = bindings(&mut ctx.client()?, scope).await?;
    emit(ctx.format, &list, || bindings_table(&list.bindings));
    Ok(())
}

pub async fn grant(ctx: &Context, scope: &Scope, args: &BindingArgs) -> Result<()> {
    let (subject_type, subject) = subject(args)?;
    let request = GrantRequest {
        role: args.role.clone(),
        subject_type,
        subject,
        scope_type: scope.scope_type(),
        scope_id: scope.scope_id(),
    };
    let binding: RoleBinding = ctx
        .client()?
        .call(
            Method::POST,
            &routes::fill(routes::user::ROLE_BINDINGS, &[]),
            &[],
            Some(&json_body(&request)),
        )
        .await?;
    emit(ctx.format, &binding, || granted_line(&binding));
    Ok(())
}

pub async fn revoke(ctx: &Context, scope: &Scope, args: &BindingArgs) -> Result<()> {
    let (subject_type, subject) = subject(args)?;
    let mut client = ctx.client()?;
    let list = bindings(&mut client, scope).await?;
    let binding =
        matching(&list.bindings, &args.role, subject_type, &subject).ok_or_else(|| {
            CliError::NotFound(format!(
                "{} {subject} holds no role {} {}",
                subject_type.as_str(),
                args.role,
                scope.describe()
            ))
        })?;
    let id = binding.id;
    client
        .call_no_content(
            Method::DELETE,
            &routes::fill(routes::user::ROLE_BINDING, &[&id.to_string()]),
            &[],
        )
        .await?;

    #[derive(Serialize)]
    struct Revoked {
        binding_id: Uuid,
        revoked: bool,
    }
    emit(
        ctx.format,
        &Revoked {
            binding_id: id,
            revoked: true,
        },
        || kv_line(&[("binding_id", id.to_string()), ("revoked", "true".into())]),
    );
    Ok(())
}

/// The binding of `role` held by the subject named by handle, slug or id.
fn matching<'a>(
    bindings: &'a [RoleBinding],
    role: &str,
    subject_type: SubjectType,
    subject: &str,
) -> Option<&'a RoleBinding> {
    bindings.iter().find(|b| {
        b.role.as_str() == role
            && b.subject_type == subject_type
            && (b.subject_name == subject || b.subject_id.to_string() == subject)
    })
}

fn scope_text(binding: &RoleBinding) -> String {
    match (binding.scope_type, binding.scope_id) {
        (ScopeType::Project, Some(id)) => format!("project:{id}"),
        (scope, _) => scope.as_str().to_owned(),
    }
}

/// TSV: `binding_id role subject_type subject scope`.
pub fn bindings_table(bindings: &[RoleBinding]) -> String {
    tsv_table(
        &["binding_id", "role", "subject_type", "subject", "scope"],
        bindings.iter().map(|b| {
            vec![
                b.id.to_string(),
                b.role.as_str().to_owned(),
                b.subject_type.as_str().to_owned(),
                b.subject_name.clone(),
                scope_text(b),
            ]
        }),
    )
}

fn granted_line(binding: &RoleBinding) -> String {
    let mut pairs = vec![
        ("binding_id", binding.id.to_string()),
        ("scope", binding.scope_type.as_str().to_owned()),
    ];
    if let Some(id) = binding.scope_id {
        pairs.push(("scope_id", id.to_string()));
    }
    pairs.extend([
        ("role", binding.role.as_str().to_owned()),
        ("subject_type", binding.subject_type.as_str().to_owned()),
        ("subject", binding.subject_name.clone()),
    ]);
    kv_line(&pairs)
}

/// `cynork role list`: the policy table.
pub async fn roles(ctx: &Context, cmd: RoleCommand) -> Result<()> {
    match cmd {
        RoleCommand::List => {
            let list: RoleList = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::ROLES, &[]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &list, || {
                list.roles
                    .iter()
                    .map(role_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
    }
}

fn role_line(role: &RoleInfo) -> String {
    let joined = |actions: &[String]| {
        if actions.is_empty() {
            "-".to_owned()
        } else {
            actions.join(",")
        }
    };
    kv_line(&[
        ("role", role.name.as_str().to_owned()),
        ("actions", joined(&role.actions)),
        ("own_actions", joined(&role.own_actions)),
        ("description", role.description.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use cynode_contracts::user::Role;

    use super::*;

    fn binding(role: Role, subject_type: SubjectType, name: &str) -> RoleBinding {
        RoleBinding {
            id: Uuid::new_v4(),
            role,
            subject_type,
            subject_id: Uuid::new_v4(),
            subject_name: name.into(),
            scope_type: ScopeType::Project,
            scope_id: Some(Uuid::nil()),
            created_at: "2026-01-02T03:04:05Z".parse().unwrap(),
        }
    }

    #[test]
    fn revoke_finds_the_binding_by_role_and_subject() {
        let list = [
            binding(Role::Viewer, SubjectType::User, "bob"),
            binding(Role::Member, SubjectType::Group, "ml"),
            binding(Role::Member, SubjectType::User, "ml"),
        ];
        let found = matching(&list, "member", SubjectType::Group, "ml").unwrap();
        assert_eq!(found.id, list[1].id);
        let by_id = list[0].subject_id.to_string();
        let found = matching(&list, "viewer", SubjectType::User, &by_id).unwrap();
        assert_eq!(found.id, list[0].id);
        assert!(matching(&list, "member", SubjectType::User, "bob").is_none());
        assert!(matching(&list, "viewer", SubjectType::Group, "bob").is_none());
        assert!(matching(&list, "root", SubjectType::User, "bob").is_none());
    }

    #[test]
    fn bindings_print_as_tsv_with_a_header() {
        let mut system = binding(Role::Admin, SubjectType::User, "carol");
        system.scope_type = ScopeType::System;
        system.scope_id = None;
        let project = binding(Role::Member, SubjectType::Group, "ml");
        let table = bindings_table(&[project.clone(), system.clone()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "binding_id\trole\tsubject_type\tsubject\tscope");
        assert_eq!(
            lines[1],
            format!(
                "{}\tmember\tgroup\tml\tproject:00000000-0000-0000-0000-000000000000",
                project.id
            )
        );
        assert_eq!(
            lines[2],
            format!("{}\tadmin\tuser\tcarol\tsystem", system.id)
        );
        assert!(
            granted_line(&project).starts_with(&format!(
                "binding_id={} scope=project scope_id=00000000-0000-0000-0000-000000000000 role=member",
                project.id
            )),
            "{}",
            granted_line(&project)
        );
        assert!(granted_line(&system).contains(" scope=system role=admin "));
    }

    #[test]
    fn scopes_come_from_the_flags() {
        let args = |system: bool, project: Option<&str>| ScopeArgs {
            system,
            project: project.map(Into::into),
        };
        assert_eq!(Scope::from_args(args(true, None)), Scope::System);
        assert_eq!(
            Scope::from_args(args(false, Some("vision"))),
            Scope::Project("vision".into())
        );
        assert_eq!(Scope::Project("v".into()).scope_id().as_deref(), Some("v"));
        assert_eq!(Scope::System.scope_id(), None);
    }
}
