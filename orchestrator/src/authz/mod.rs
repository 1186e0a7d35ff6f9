//! The authorization decision: may this subject do this action on this resource in this
//! scope? The only place that decides (ARCHITECTURE.md "Authorization"); every gateway route,
//! every MCP tool of a user's agent and every admin route asks it, through
//! [`crate::rbac::Access`], which also audits every denial.
//!
//! The answer comes from two sources, in order:
//! 1. access rules (`access_control_rules`) that match the subject (the user, one of their
//!    groups, or everyone), the action and the resource: the highest priority wins, deny over
//!    allow;
//! 2. else the role × action table (`policy.toml`) over the subject's effective roles in the
//!    scope: direct and group bindings at system scope, and at the project's scope for a
//!    project action.
//!
//! Nothing matches: deny. The subject is loaded once per request (with the session check), so
//! a decision is pure and costs no query.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use cynode_contracts::user::{Effect, Role, SubjectType};
use serde::Deserialize;
use uuid::Uuid;

/// Every action a route or tool may need; its name is the key in `policy.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    UserRead,
    UserManage,
    GroupRead,
    GroupManage,
    NodeRead,
    NodeManage,
    AuditRead,
    RuleManage,
    PreferenceSystemWrite,
    ProjectRead,
    ProjectUpdate,
    ProjectDelete,
    RbacRead,
    RbacManage,
    TaskCreate,
    TaskRead,
    TaskCancel,
    TaskUpdate,
    ArtifactRead,
    ArtifactWrite,
    ThreadRead,
    ChatUse,
    ModelUse,
    /// An MCP tool call; the role check uses the tool's own action from the table.
    McpToolInvoke,
}

impl Action {
    pub const ALL: [Action; 24] = [
        Self::UserRead,
        Self::UserManage,
        Self::GroupRead,
        Self::GroupManage,
        Self::NodeRead,
        Self::NodeManage,
        Self::AuditRead,
        Self::RuleManage,
        Self::PreferenceSystemWrite,
        Self::ProjectRead,
        Self::ProjectUpdate,
        Self::ProjectDelete,
        Self::RbacRead,
        Self::RbacManage,
        Self::TaskCreate,
        Self::TaskRead,
        Self::TaskCancel,
        Self::TaskUpdate,
        Self::ArtifactRead,
        Self::ArtifactWrite,
        Self::ThreadRead,
        Self::ChatUse,
        Self::ModelUse,
        Self::McpToolInvoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRead => "user.read",
            Self::UserManage => "user.manage",
            Self::GroupRead => "group.read",
            Self::GroupManage => "group.manage",
            Self::NodeRead => "node.read",
            Self::NodeManage => "node.manage",
            Self::AuditRead => "audit.read",
            Self::RuleManage => "rule.manage",
            Self::PreferenceSystemWrite => "preference.system.write",
            Self::ProjectRead => "project.read",
            Self::ProjectUpdate => "project.update",
            Self::ProjectDelete => "project.delete",
            Self::RbacRead => "rbac.read",
            Self::RbacManage => "rbac.manage",
            Self::TaskCreate => "task.create",
            Self::TaskRead => "task.read",
            Self::TaskCancel => "task.cancel",
            Self::TaskUpdate => "task.update",
            Self::ArtifactRead => "artifact.read",
            Self::ArtifactWrite => "artifact.write",
            Self::ThreadRead => "thread.read",
            Self::ChatUse => "chat.use",
            Self::ModelUse => "model.use",
            Self::McpToolInvoke => "mcp.tool.invoke",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Where an action applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    System,
    Project(Uuid),
}

/// What is asked about: an action on one resource (its type and id or name, as the audit
/// records it), in a scope, created by `owner` when it is a user's own thing (a task).
#[derive(Debug, Clone)]
pub struct Check {
    pub action: Action,
    pub resource_type: &'static str,
    pub resource: String,
    pub scope: Scope,
    pub owner: Option<Uuid>,
    /// For [`Action::McpToolInvoke`]: the action the tool needs of the roles.
    pub role_action: Option<Action>,
}

impl Check {
    pub fn new(action: Action, resource_type: &'static str, resource: impl ToString) -> Self {
        Self {
            action,
            resource_type,
            resource: resource.to_string(),
            scope: Scope::System,
            owner: None,
            role_action: None,
        }
    }

    /// The system-level action itself (`node.manage` on `system`).
    pub fn system(action: Action) -> Self {
        Self::new(action, "system", "system")
    }

    pub fn in_project(mut self, project: Uuid) -> Self {
        self.scope = Scope::Project(project);
        self
    }

    pub fn owned_by(mut self, owner: Uuid) -> Self {
        self.owner = Some(owner);
        self
    }
}

/// An access rule as the decision reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rule {
    pub id: Uuid,
    pub subject_type: SubjectType,
    pub subject_id: Option<Uuid>,
    pub action: String,
    pub resource_type: String,
    pub resource_pattern: String,
    pub effect: Effect,
    pub priority: i32,
}

impl Rule {
    fn matches(&self, subject: &Subject, check: &Check) -> bool {
        let who = match (self.subject_type, self.subject_id) {
            (_, None) => true,
            (SubjectType::User, Some(id)) => id == subject.user_id,
            (SubjectType::Group, Some(id)) => subject.groups.contains(&id),
        };
        who && self.action == check.action.as_str()
            && self.resource_type == check.resource_type
            && pattern_matches(&self.resource_pattern, &check.resource)
    }
}

/// `*` matches all; `abc*` every name starting with `abc`; anything else only itself.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Who is asking: an enabled user, their groups, every role binding that reaches them (direct
/// or through a group) and the access rules that name them, their groups or everyone.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub user_id: Uuid,
    pub handle: String,
    pub groups: Vec<Uuid>,
    /// (role, project); `None` is system scope.
    pub bindings: Vec<(Role, Option<Uuid>)>,
    pub rules: Vec<Rule>,
}

impl Subject {
    /// The roles the subject holds in `scope`: at system scope its system bindings; in a
    /// project, that project's bindings and what its system bindings count as there.
    pub fn roles_in(&self, scope: Scope) -> BTreeSet<Role> {
        let policy = policy();
        self.bindings
            .iter()
            .filter_map(|&(role, at)| match (scope, at) {
                (_, None) if scope == Scope::System => Some(role),
                (Scope::Project(_), None) => policy.system_in_projects.get(&role).copied(),
                (Scope::Project(p), Some(q)) if p == q => Some(role),
                _ => None,
            })
            .collect()
    }

    /// The projects the subject holds any role in through a project binding.
    pub fn projects(&self) -> BTreeSet<Uuid> {
        self.bindings.iter().filter_map(|(_, p)| *p).collect()
    }

    /// Whether a system binding gives the subject `action` in every project.
    pub fn everywhere(&self, action: Action) -> bool {
        let roles: BTreeSet<Role> = self
            .bindings
            .iter()
            .filter(|(_, p)| p.is_none())
            .filter_map(|(r, _)| policy().system_in_projects.get(r).copied())
            .collect();
        policy().allows(action, &roles, false)
    }

    /// The decision, with the reason a denial is recorded with.
    pub fn decide(&self, check: &Check) -> Decision {
        let mut matching: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches(self, check))
            .collect();
        if let Some(top) = matching.iter().map(|r| r.priority).max() {
            matching.retain(|r| r.priority == top);
            return if matching.iter().any(|r| r.effect == Effect::Deny) {
                Decision::Deny(format!(
                    "access rule {} denies {} on {} {}",
                    matching
                        .iter()
                        .find(|r| r.effect == Effect::Deny)
                        .map_or(Uuid::nil(), |r| r.id),
                    check.action.as_str(),
                    check.resource_type,
                    check.resource
                ))
            } else {
                Decision::Allow
            };
        }
        let action = check.role_action.unwrap_or(check.action);
        let policy = policy();
        let scope = match policy.scope_of(action) {
            PolicyScope::System => Scope::System,
            PolicyScope::Project => check.scope,
        };
        let roles = self.roles_in(scope);
        let own = check.owner == Some(self.user_id);
        if policy.allows(action, &roles, own) {
            Decision::Allow
        } else if roles.is_empty() {
            Decision::Deny(format!("no role in this scope allows {}", action.as_str()))
        } else {
            Decision::Deny(format!(
                "roles {} do not allow {}{}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                action.as_str(),
                if check.owner.is_some() && !own {
                    " on another user's resource"
                } else {
                    ""
                }
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        *self == Self::Allow
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyScope {
    System,
    Project,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRoles {
    pub scope: PolicyScope,
    #[serde(default)]
    pub any: BTreeSet<Role>,
    #[serde(default)]
    pub own: BTreeSet<Role>,
}

/// What a route needs, as `policy.toml` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Public,
    OwnThings,
    Action(Action),
}

/// `policy.toml`, parsed and checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub system_in_projects: BTreeMap<Role, Role>,
    pub actions: BTreeMap<String, ActionRoles>,
    pub routes: BTreeMap<String, String>,
    pub tools: BTreeMap<String, String>,
}

/// The table's text, for the docs check and the matrix test.
pub const POLICY_TOML: &str = include_str!("policy.toml");

/// The policy every decision uses; the table is checked by the unit tests, so a release with a
/// broken table does not build green.
pub fn policy() -> &'static Policy {
    static POLICY: LazyLock<Policy> = LazyLock::new(|| {
        toml::from_str(POLICY_TOML).expect("policy.toml parses (checked by authz::tests)")
    });
    &POLICY
}

impl Policy {
    fn roles(&self, action: Action) -> Option<&ActionRoles> {
        self.actions.get(action.as_str())
    }

    pub fn scope_of(&self, action: Action) -> PolicyScope {
        self.roles(action).map_or(PolicyScope::System, |a| a.scope)
    }

    pub fn allows(&self, action: Action, roles: &BTreeSet<Role>, own: bool) -> bool {
        self.roles(action).is_some_and(|a| {
            roles
                .iter()
                .any(|r| a.any.contains(r) || (own && a.own.contains(r)))
        })
    }

    /// What `METHOD /path` needs; `None` for a route the table does not list.
    pub fn route(&self, method: &str, path: &str) -> Option<Need> {
        let need = self.routes.get(&format!("{method} {path}"))?;
        Some(match need.as_str() {
            "public" => Need::Public,
            "self" => Need::OwnThings,
            action => Need::Action(Action::parse(action)?),
        })
    }

    /// The action a user's agent needs to call `tool`; `None` for a tool only the Project
    /// Manager calls.
    pub fn tool(&self, tool: &str) -> Option<Action> {
        Action::parse(self.tools.get(tool)?)
    }

    /// The roles the table lets do `action` on anything, and on their own things.
    pub fn grants(&self, role: Role) -> (Vec<&str>, Vec<&str>) {
        let mut any = Vec::new();
        let mut own = Vec::new();
        for (name, a) in &self.actions {
            if a.any.contains(&role) {
                any.push(name.as_str());
            } else if a.own.contains(&role) {
                own.push(name.as_str());
            }
        }
        (any, own)
    }

    /// Whether holding `held` lets one grant or revoke `wanted`: one of them is at least as
    /// strong (roles are ordered viewer < member < operator < admin < owner).
    pub fn covers(&self, held: &BTreeSet<Role>, wanted: Role) -> bool {
        held.iter().any(|h| *h >= wanted)
    }
}

/// The markdown role × action table ARCHITECTURE.md shows, rendered from the policy.
pub fn markdown_table() -> String {
    let policy = policy();
    let mut out = String::from("| action | scope |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|---|");
    for _ in Role::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for (name, a) in &policy.actions {
        let scope = match a.scope {
            PolicyScope::System => "system",
            PolicyScope::Project => "project",
        };
        out.push_str(&format!("| `{name}` | {scope} |"));
        for role in Role::ALL {
            let cell = if a.any.contains(&role) {
                "yes"
            } else if a.own.contains(&role) {
                "own"
            } else {
                ""
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_action_and_only_those() {
        let policy = policy();
        let named: BTreeSet<&str> = policy.actions.keys().map(String::as_str).collect();
        let coded: BTreeSet<&str> = Action::ALL
            .into_iter()
            .filter(|a| *a != Action::McpToolInvoke)
            .map(Action::as_str)
            .collect();
        assert_eq!(named, coded);
        for (route, need) in &policy.routes {
            assert!(
                matches!(need.as_str(), "public" | "self") || Action::parse(need).is_some(),
                "{route} needs unknown action {need}"
            );
        }
        for (tool, action) in &policy.tools {
            assert!(Action::parse(action).is_some(), "{tool}: {action}");
        }
        for a in policy.actions.values() {
            assert!(a.own.is_disjoint(&a.any));
            if a.scope == PolicyScope::System {
                assert!(!a.any.contains(&Role::Owner), "owner is a project role");
            }
        }
    }

    fn subject(bindings: &[(Role, Option<Uuid>)]) -> Subject {
        Subject {
            user_id: Uuid::new_v4(),
            handle: "u".into(),
            bindings: bindings.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn roles_reach_their_scope_and_system_roles_reach_every_project() {
        let p = Uuid::new_v4();
        let other = Uuid::new_v4();
        let viewer = subject(&[(Role::Viewer, Some(p))]);
        let read = Check::new(Action::TaskRead, "task", "t").in_project(p);
        assert!(viewer.decide(&read).allowed());
        assert!(
            !viewer
                .decide(&Check::new(Action::TaskRead, "task", "t").in_project(other))
                .allowed()
        );
        assert!(
            !viewer
                .decide(&Check::new(Action::TaskCreate, "project", "p").in_project(p))
                .allowed()
        );
        let admin = subject(&[(Role::Admin, None)]);
        assert!(
            admin
                .decide(&Check::new(Action::ProjectDelete, "project", "p").in_project(other))
                .allowed()
        );
        assert!(admin.decide(&Check::system(Action::UserManage)).allowed());
        // A project binding never reaches system actions.
        let owner = subject(&[(Role::Owner, Some(p))]);
        assert!(!owner.decide(&Check::system(Action::NodeRead)).allowed());
    }

    #[test]
    fn own_grants_hold_only_for_the_creator() {
        let p = Uuid::new_v4();
        let member = subject(&[(Role::Member, Some(p))]);
        let cancel = |owner| {
            Check::new(Action::TaskCancel, "task", "t")
                .in_project(p)
                .owned_by(owner)
        };
        assert!(member.decide(&cancel(member.user_id)).allowed());
        assert!(!member.decide(&cancel(Uuid::new_v4())).allowed());
        let operator = subject(&[(Role::Operator, Some(p))]);
        assert!(operator.decide(&cancel(Uuid::new_v4())).allowed());
    }

    #[test]
    fn rules_decide_first_highest_priority_then_deny_wins() {
        let p = Uuid::new_v4();
        let group = Uuid::new_v4();
        let mut s = subject(&[(Role::Member, Some(p))]);
        s.groups = vec![group];
        let rule = |effect, priority, subject_id| Rule {
            id: Uuid::new_v4(),
            subject_type: SubjectType::Group,
            subject_id,
            action: "model.use".into(),
            resource_type: "model".into(),
            resource_pattern: "smol*".into(),
            effect,
            priority,
        };
        let check = Check::new(Action::ModelUse, "model", "smollm2").in_project(p);
        assert!(s.decide(&check).allowed());
        s.rules = vec![rule(Effect::Deny, 0, Some(group))];
        assert!(!s.decide(&check).allowed());
        let other_model = Check::new(Action::ModelUse, "model", "llama").in_project(p);
        assert!(
            s.decide(&other_model).allowed(),
            "the pattern does not match"
        );
        s.rules.push(rule(Effect::Allow, 0, Some(group)));
        assert!(!s.decide(&check).allowed(), "deny wins at equal priority");
        s.rules.push(rule(Effect::Allow, 5, None));
        assert!(s.decide(&check).allowed(), "a higher priority wins");
        s.rules = vec![rule(Effect::Deny, 0, Some(Uuid::new_v4()))];
        assert!(s.decide(&check).allowed(), "another group's rule");
    }

    #[test]
    fn an_allow_rule_grants_what_no_role_does() {
        let mut s = subject(&[]);
        let check = Check::system(Action::NodeRead);
        assert!(!s.decide(&check).allowed());
        s.rules = vec![Rule {
            id: Uuid::new_v4(),
            subject_type: SubjectType::User,
            subject_id: Some(s.user_id),
            action: "node.read".into(),
            resource_type: "system".into(),
            resource_pattern: "*".into(),
            effect: Effect::Allow,
            priority: 0,
        }];
        assert!(s.decide(&check).allowed());
    }

    #[test]
    fn the_architecture_page_shows_this_table() {
        let doc = include_str!("../../../ARCHITECTURE.md");
        let start = "<!-- authz-table:start -->\n";
        let shown = doc
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once("<!-- authz-table:end -->"))
            .map(|(table, _)| table)
            .expect("ARCHITECTURE.md has the authz-table markers");
        assert_eq!(
            shown,
            markdown_table(),
            "ARCHITECTURE.md's role × action table is not policy.toml's; paste markdown_table()"
        );
    }

    #[test]
    fn every_route_and_tool_entry_parses() {
        let policy = policy();
        assert_eq!(
            policy.route("GET", "/v1/tasks/{id}"),
            Some(Need::Action(Action::TaskRead))
        );
        assert_eq!(policy.route("GET", "/nope"), None);
        assert_eq!(policy.tool("artifact.put"), Some(Action::ArtifactWrite));
        assert_eq!(policy.tool("sandbox.exec"), None);
        assert!(markdown_table().contains("| `task.cancel` | project |"));
    }
}
