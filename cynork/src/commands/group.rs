//! `cynork group create|list|get|update|members|add|remove`. Reading groups needs a system
//! role; changes need system admin.

use cynode_contracts::routes;
use cynode_contracts::user::{
    AddMemberRequest, CreateGroupRequest, Group, GroupList, GroupMember, GroupMembers,
    UpdateGroupRequest,
};
use reqwest::Method;

use super::Context;
use crate::cli::GroupCommand;
use crate::client::json_body;
use crate::error::Result;
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: GroupCommand) -> Result<()> {
    let mut client = ctx.client()?;
    match cmd {
        GroupCommand::Create { slug, display_name } => {
            let request = CreateGroupRequest { slug, display_name };
            let group: Group = client
                .call(
                    Method::POST,
                    &routes::fill(routes::user::GROUPS, &[]),
                    &[],
                    Some(&json_body(&request)),
                )
                .await?;
            emit(ctx.format, &group, || group_line(&group));
        }
        GroupCommand::List => {
            let list: GroupList = client
                .call(
                    Method::GET,
                    &routes::fill(routes::user::GROUPS, &[]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &list, || {
                list.groups
                    .iter()
                    .map(group_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        GroupCommand::Get(group) => {
            let group: Group = client
                .call(
                    Method::GET,
                    &routes::fill(routes::user::GROUP, &[&group.group]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &group, || group_line(&group));
        }
        GroupCommand::Update {
            group,
            display_name,
            active,
        } => {
            let request = UpdateGroupRequest {
                display_name,
                is_active: active,
            };
            let group: Group = client
                .call(
                    Method::PATCH,
                    &routes::fill(routes::user::GROUP, &[&group.group]),
                    &[],
                    Some(&json_body(&request)),
                )
                .await?;
            emit(ctx.format, &group, || group_line(&group));
        }
        GroupCommand::Members(group) => {
            let members: GroupMembers = client
                .call(
                    Method::GET,
                    &routes::fill(routes::user::GROUP_MEMBERS, &[&group.group]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &members, || {
                members
                    .members
                    .iter()
                    .map(member_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        GroupCommand::Add { group, user } => {
            let request = AddMemberRequest { user: user.clone() };
            client
                .call_discarding(
                    Method::POST,
                    &routes::fill(routes::user::GROUP_MEMBERS, &[&group]),
                    &json_body(&request),
                )
                .await?;
            membership(ctx, &group, &user, "added");
        }
        GroupCommand::Remove { group, user } => {
            client
                .call_no_content(
                    Method::DELETE,
                    &routes::fill(routes::user::GROUP_MEMBER, &[&group, &user]),
                    &[],
                )
                .await?;
            membership(ctx, &group, &user, "removed");
        }
    }
    Ok(())
}

/// `group=G user=U added=true` (or `removed=true`).
fn membership(ctx: &Context, group: &str, user: &str, change: &'static str) {
    let out = serde_json::json!({"group": group, "user": user, change: true});
    emit(ctx.format, &out, || {
        kv_line(&[("group", group), ("user", user), (change, "true")])
    });
}

pub fn group_line(group: &Group) -> String {
    kv_line(&[
        ("group_id", group.id.to_string()),
        ("slug", group.slug.clone()),
        ("display_name", group.display_name.clone()),
        ("active", group.is_active.to_string()),
        ("members", group.member_count.to_string()),
        ("created_at", group.created_at.to_rfc3339()),
    ])
}

fn member_line(member: &GroupMember) -> String {
    kv_line(&[
        ("user_id", member.user_id.to_string()),
        ("handle", member.handle.clone()),
        ("added_at", member.added_at.to_rfc3339()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_member_lines() {
        let at: chrono::DateTime<chrono::Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let group = Group {
            id: uuid::Uuid::nil(),
            slug: "ml".into(),
            display_name: "Machine learning".into(),
            is_active: true,
            member_count: 2,
            created_at: at,
            updated_at: at,
        };
        assert_eq!(
            group_line(&group),
            "group_id=00000000-0000-0000-0000-000000000000 slug=ml \
             display_name=\"Machine learning\" active=true members=2 \
             created_at=2026-01-02T03:04:05+00:00"
        );
        let member = GroupMember {
            user_id: uuid::Uuid::nil(),
            handle: "alice".into(),
            added_at: at,
        };
        assert_eq!(
            member_line(&member),
            "user_id=00000000-0000-0000-0000-000000000000 handle=alice \
             added_at=2026-01-02T03:04:05+00:00"
        );
    }
}
