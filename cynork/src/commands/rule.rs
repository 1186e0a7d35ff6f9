//! `cynork rule list|create|delete`: access rules, which allow or deny one action on the
//! resources their pattern matches before roles decide (system admin only).

use cynode_contracts::routes;
use cynode_contracts::user::{AccessRule, AccessRuleList, CreateAccessRuleRequest};
use reqwest::Method;
use serde::Serialize;
use uuid::Uuid;

use super::{Context, confirmed};
use crate::cli::RuleCommand;
use crate::client::json_body;
use crate::error::Result;
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: RuleCommand) -> Result<()> {
    match cmd {
        RuleCommand::List => {
            let list: AccessRuleList = ctx
                .client()?
                .call(
                    Method::GET,
                    &routes::fill(routes::user::ACCESS_RULES, &[]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &list, || {
                list.rules
                    .iter()
                    .map(rule_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RuleCommand::Create(args) => {
            let request = CreateAccessRuleRequest {
                subject_type: args.subject_type.subject_type(),
                subject: args.subject,
                action: args.action,
                resource_type: args.resource_type,
                resource_pattern: args.pattern,
                effect: args.effect.effect(),
                priority: args.priority,
                reason: args.reason,
            };
            let rule: AccessRule = ctx
                .client()?
                .call(
                    Method::POST,
                    &routes::fill(routes::user::ACCESS_RULES, &[]),
                    &[],
                    Some(&json_body(&request)),
                )
                .await?;
            emit(ctx.format, &rule, || rule_line(&rule));
        }
        RuleCommand::Delete { id, yes } => {
            if !confirmed(yes, &format!("Delete access rule {id}?"))? {
                return Ok(());
            }
            ctx.client()?
                .call_no_content(
                    Method::DELETE,
                    &routes::fill(routes::user::ACCESS_RULE, &[&id.to_string()]),
                    &[],
                )
                .await?;
            #[derive(Serialize)]
            struct Deleted {
                rule_id: Uuid,
                deleted: bool,
            }
            emit(
                ctx.format,
                &Deleted {
                    rule_id: id,
                    deleted: true,
                },
                || kv_line(&[("rule_id", id.to_string()), ("deleted", "true".into())]),
            );
        }
    }
    Ok(())
}

/// One rule; `subject=*` when it is for every user (or every group).
fn rule_line(rule: &AccessRule) -> String {
    let mut pairs = vec![
        ("rule_id", rule.id.to_string()),
        ("effect", rule.effect.as_str().to_owned()),
        ("action", rule.action.clone()),
        ("resource_type", rule.resource_type.clone()),
        ("pattern", rule.resource_pattern.clone()),
        ("subject_type", rule.subject_type.as_str().to_owned()),
        (
            "subject",
            rule.subject_id
                .map_or_else(|| "*".to_owned(), |id| id.to_string()),
        ),
        ("priority", rule.priority.to_string()),
    ];
    if let Some(reason) = &rule.reason {
        pairs.push(("reason", reason.clone()));
    }
    kv_line(&pairs)
}

#[cfg(test)]
mod tests {
    use cynode_contracts::user::{Effect, SubjectType};

    use super::*;

    #[test]
    fn a_rule_line_says_what_it_decides_for_whom() {
        let mut rule = AccessRule {
            id: Uuid::nil(),
            subject_type: SubjectType::Group,
            subject_id: None,
            action: "model.use".into(),
            resource_type: "model".into(),
            resource_pattern: "qwen*".into(),
            effect: Effect::Deny,
            priority: 10,
            reason: Some("too big".into()),
            created_at: "2026-01-02T03:04:05Z".parse().unwrap(),
        };
        assert_eq!(
            rule_line(&rule),
            "rule_id=00000000-0000-0000-0000-000000000000 effect=deny action=model.use \
             resource_type=model pattern=qwen* subject_type=group subject=* priority=10 \
             reason=\"too big\""
        );
        rule.subject_id = Some(Uuid::nil());
        rule.reason = None;
        assert!(
            rule_line(&rule).ends_with("subject=00000000-0000-0000-0000-000000000000 priority=10")
        );
    }
}
