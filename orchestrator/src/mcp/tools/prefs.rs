//! `db.preference.*`: the preferences store (`crate::preferences`, the tables' only writer)
//! for agents. The Project Manager reads and writes every scope; an analyst reads the system and
//! project scopes, its own user's and its own task's.

use cynode_contracts::preferences::{ScopeType, ValueType};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::agent::{Agent, AgentType};
use super::super::failure::ToolFailure;
use crate::mcp::Mcp;
use crate::preferences::{self, PrefError, Scope};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefKey {
    pub scope_type: ScopeType,
    /// The user, project or task; absent for the system scope.
    pub scope_id: Option<Uuid>,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefList {
    pub scope_type: ScopeType,
    pub scope_id: Option<Uuid>,
    #[schemars(length(max = 256))]
    pub key_prefix: Option<String>,
    /// 1 to 100; default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefEffective {
    pub task_id: Uuid,
    /// Also say which scope each value came from.
    #[serde(default)]
    pub include_sources: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefCreate {
    pub scope_type: ScopeType,
    pub scope_id: Option<Uuid>,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    pub value: Value,
    pub value_type: ValueType,
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefUpdate {
    pub scope_type: ScopeType,
    pub scope_id: Option<Uuid>,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    pub value: Value,
    pub value_type: Option<ValueType>,
    /// The version the change is based on; another one is a `conflict` and changes nothing.
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefDelete {
    pub scope_type: ScopeType,
    pub scope_id: Option<Uuid>,
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

fn failed(e: PrefError) -> ToolFailure {
    ToolFailure::from(crate::error::Error::from(e))
}

/// The project of the agent's task: the token's, else the task's.
async fn own_project(state: &Mcp, agent: &Agent) -> Result<Option<Uuid>, ToolFailure> {
    if agent.project_id.is_some() {
        return Ok(agent.project_id);
    }
    let Some(task) = agent.task_id else {
        return Ok(None);
    };
    Ok(
        sqlx::query_scalar::<_, Option<Uuid>>("SELECT project_id FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_optional(&state.db)
            .await?
            .flatten(),
    )
}

/// The scope named, if this agent may read it.
async fn readable(
    state: &Mcp,
    agent: &Agent,
    scope_type: ScopeType,
    scope_id: Option<Uuid>,
) -> Result<Scope, ToolFailure> {
    let scope = Scope::new(scope_type, scope_id).map_err(failed)?;
    let allowed = match (agent.agent_type, &scope) {
        (AgentType::Pm, _) | (_, Scope::System) => true,
        // Its task's project only: the owner's roles were checked there, nowhere else.
        (_, Scope::Project(project)) => own_project(state, agent).await? == Some(*project),
        (_, Scope::User(user)) => agent.user_id == Some(*user),
        (_, Scope::Task(task)) => agent.task_id == Some(*task),
        // A user's group entries reach their agent folded into db.preference.effective.
        (_, Scope::Group(_)) => false,
    };
    if !allowed {
        return Err(ToolFailure::mismatch(
            "this agent may read only the system's, its own user's, task's and project's preferences (group entries come with db.preference.effective)",
        ));
    }
    Ok(scope)
}

fn to_json(value: impl serde::Serialize) -> Result<Value, ToolFailure> {
    serde_json::to_value(value).map_err(ToolFailure::internal)
}

pub async fn get(state: &Mcp, agent: &Agent, args: PrefKey) -> Result<Value, ToolFailure> {
    let scope = readable(state, agent, args.scope_type, args.scope_id).await?;
    let entry = preferences::get(&state.db, scope, &args.key)
        .await
        .map_err(failed)?
        .ok_or_else(|| {
            ToolFailure::not_found(format!("no preference {:?} in that scope", args.key))
        })?;
    to_json(entry)
}

pub async fn list(state: &Mcp, agent: &Agent, args: PrefList) -> Result<Value, ToolFailure> {
    let scope = readable(state, agent, args.scope_type, args.scope_id).await?;
    let page = preferences::list(
        &state.db,
        scope,
        args.key_prefix.as_deref(),
        args.limit.unwrap_or(50),
        args.cursor.as_deref(),
    )
    .await
    .map_err(failed)?;
    to_json(page)
}

pub async fn effective(
    state: &Mcp,
    _agent: &Agent,
    args: PrefEffective,
) -> Result<Value, ToolFailure> {
    let folded = preferences::effective_for_task(&state.db, args.task_id)
        .await
        .map_err(failed)?;
    let mut value = json!({"effective": folded.effective});
    if args.include_sources {
        value["sources"] = to_json(folded.sources)?;
    }
    Ok(value)
}

pub async fn create(state: &Mcp, _agent: &Agent, args: PrefCreate) -> Result<Value, ToolFailure> {
    let scope = Scope::new(args.scope_type, args.scope_id).map_err(failed)?;
    let entry = preferences::create(
        &state.db,
        scope,
        &args.key,
        args.value,
        args.value_type,
        None,
        args.reason.as_deref(),
    )
    .await
    .map_err(failed)?;
    to_json(entry)
}

pub async fn update(state: &Mcp, _agent: &Agent, args: PrefUpdate) -> Result<Value, ToolFailure> {
    let scope = Scope::new(args.scope_type, args.scope_id).map_err(failed)?;
    let entry = preferences::update(
        &state.db,
        scope,
        &args.key,
        args.value,
        args.value_type,
        args.expected_version,
        None,
        args.reason.as_deref(),
    )
    .await
    .map_err(failed)?;
    to_json(entry)
}

pub async fn delete(state: &Mcp, _agent: &Agent, args: PrefDelete) -> Result<Value, ToolFailure> {
    let scope = Scope::new(args.scope_type, args.scope_id).map_err(failed)?;
    preferences::delete(
        &state.db,
        scope,
        &args.key,
        args.expected_version,
        None,
        args.reason.as_deref(),
    )
    .await
    .map_err(failed)?;
    Ok(json!({"key": args.key, "deleted": true}))
}
