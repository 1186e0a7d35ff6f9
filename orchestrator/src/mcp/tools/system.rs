//! Reading the system: `db.project.*`, `node.*`, `model.*` and `help.get`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::agent::Agent;
use super::super::failure::ToolFailure;
use crate::mcp::Mcp;
use crate::nodes;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectRef {
    /// The project's id; or give `slug`.
    pub project_id: Option<Uuid>,
    #[schemars(length(min = 1, max = 200))]
    pub slug: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectQuery {
    /// Text the slug or display name contains (case-insensitive).
    #[schemars(length(max = 200))]
    pub q: Option<String>,
    /// 1 to 100; default 50.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRef {
    #[schemars(length(min = 1, max = 200))]
    pub node_slug: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    #[schemars(length(min = 1, max = 200))]
    pub model_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelpQuery {
    pub task_id: Uuid,
    /// A tool name or a topic (`tools`, `errors`, `scopes`); absent: an overview.
    #[schemars(length(max = 200))]
    pub topic: Option<String>,
}

type ProjectRow = (Uuid, String, String, Option<String>, bool);

fn project_json((id, slug, name, description, active): ProjectRow) -> Value {
    json!({"project_id": id, "slug": slug, "display_name": name, "description": description, "is_active": active})
}

pub async fn project(state: &Mcp, _agent: &Agent, args: ProjectRef) -> Result<Value, ToolFailure> {
    let row: Option<ProjectRow> = match (args.project_id, args.slug) {
        (Some(id), None) => {
            sqlx::query_as(
                "SELECT id, slug, display_name, description, is_active FROM projects WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&state.db)
            .await?
        }
        (None, Some(slug)) => sqlx::query_as(
            "SELECT id, slug, display_name, description, is_active FROM projects WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&state.db)
        .await?,
        _ => {
            return Err(ToolFailure::invalid(
                "give exactly one of project_id and slug",
            ));
        }
    };
    row.map(project_json)
        .ok_or_else(|| ToolFailure::not_found("no such project"))
}

pub async fn projects(
    state: &Mcp,
    _agent: &Agent,
    args: ProjectQuery,
) -> Result<Value, ToolFailure> {
    let limit = args.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ToolFailure::invalid("limit must be 1 to 100"));
    }
    // The cursor is the last slug of the previous page (slugs are unique).
    let rows: Vec<ProjectRow> = sqlx::query_as(
        "SELECT id, slug, display_name, description, is_active FROM projects \
         WHERE ($1::text IS NULL OR slug ILIKE '%' || $1 || '%' OR display_name ILIKE '%' || $1 || '%') \
           AND ($2::text IS NULL OR slug > $2) \
         ORDER BY slug LIMIT $3",
    )
    .bind(args.q.as_deref())
    .bind(args.cursor.as_deref())
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.db)
    .await?;
    let more = rows.len() > limit as usize;
    let page: Vec<ProjectRow> = rows.into_iter().take(limit as usize).collect();
    let next = more.then(|| page.last().map(|p| p.1.clone())).flatten();
    Ok(json!({
        "projects": page.into_iter().map(project_json).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}

pub async fn nodes(state: &Mcp, _agent: &Agent, _: NoArgs) -> Result<Value, ToolFailure> {
    let list = nodes::list(&state.db, state.config.node_stale_after).await?;
    serde_json::to_value(list).map_err(ToolFailure::internal)
}

pub async fn node(state: &Mcp, _agent: &Agent, args: NodeRef) -> Result<Value, ToolFailure> {
    let info = nodes::info(&state.db, state.config.node_stale_after, &args.node_slug).await?;
    serde_json::to_value(info).map_err(ToolFailure::internal)
}

/// Served models and the ready nodes serving each.
async fn served(state: &Mcp) -> Result<BTreeMap<String, Vec<String>>, ToolFailure> {
    let mut models: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in nodes::list(&state.db, state.config.node_stale_after)
        .await?
        .nodes
    {
        if !node.ready {
            continue;
        }
        for model in node.models {
            models
                .entry(model)
                .or_default()
                .push(node.node_slug.clone());
        }
    }
    Ok(models)
}

pub async fn models(state: &Mcp, _agent: &Agent, _: NoArgs) -> Result<Value, ToolFailure> {
    let models = served(state).await?;
    Ok(json!({
        "models": models
            .into_iter()
            .map(|(id, nodes)| json!({"model_id": id, "nodes": nodes}))
            .collect::<Vec<_>>(),
    }))
}

pub async fn model(state: &Mcp, _agent: &Agent, args: ModelRef) -> Result<Value, ToolFailure> {
    let nodes = served(state)
        .await?
        .remove(&args.model_id)
        .ok_or_else(|| ToolFailure::not_found(format!("no ready node serves {}", args.model_id)))?;
    Ok(json!({"model_id": args.model_id, "nodes": nodes}))
}

const OVERVIEW: &str = "This is the CyNodeAI MCP gateway. Every call is checked against your \
agent token (which the node attaches; you never see it), your role's tool list and the access \
rules, and is audited. Name your own task_id (and job_id where asked): other ids are refused. \
Results come as {\"status\":\"success\",\"result\":…} or {\"status\":\"error\",\"error\":{\"type\",\"message\"}}. \
Topics: tools, errors, scopes, or a tool's name.";

const ERRORS: &str = "Error types: unauthenticated (no or a bad token), unknown_tool, tool_disabled, \
not_allowed (not in your role's list), invalid_arguments (schema), context_mismatch (another \
task's or job's id), access_denied (an access rule), too_large (arguments over the cap), \
not_found, conflict (e.g. a stale expected_version), timeout, internal_error. The first seven \
change nothing.";

const SCOPES: &str = "Roles: pm (system-level: db, node, model, artifact, help), pa (reads for \
one user's task: the task, its jobs, preferences, artifacts), sandbox (its own task's artifacts, \
its job's memory, help).";

pub async fn help(_state: &Mcp, agent: &Agent, args: HelpQuery) -> Result<Value, ToolFailure> {
    let mine = || {
        super::all()
            .iter()
            .filter(|t| t.roles.contains(&agent.agent_type))
            .map(|t| json!({"name": t.name, "description": t.description}))
            .collect::<Vec<_>>()
    };
    let text = match args.topic.as_deref() {
        None | Some("") => json!({
            "topic": "overview",
            "text": OVERVIEW,
            "task_id": args.task_id,
            "tools": mine(),
        }),
        Some("tools") => json!({"topic": "tools", "tools": mine()}),
        Some("errors") => json!({"topic": "errors", "text": ERRORS}),
        Some("scopes") => json!({"topic": "scopes", "text": SCOPES}),
        Some(name) => match super::find(name) {
            Some(t) => json!({
                "topic": t.name,
                "text": t.description,
                "input_schema": Value::Object((*t.input_schema()).clone()),
            }),
            None => return Err(ToolFailure::not_found(format!("no help topic {name:?}"))),
        },
    };
    Ok(text)
}
