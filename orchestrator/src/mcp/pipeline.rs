//! The enforcement pipeline every tool call goes through, in the spec's order, failing closed
//! (`workflow_mcp_agents.md` §2):
//!
//! 1. token → agent type and context;
//! 2. the tool exists and is enabled (`MCP_TOOLS_DISABLED`);
//! 3. the caller's role may use it (each tool lists its roles: the spec's PM / PA / sandbox
//!    allowlists);
//! 4. gates (none of the built tools has one yet);
//! 5. arguments: the size cap, the tool's schema (typed, unknown fields refused), and the ids
//!    they name must be the token's own for a scoped caller;
//! 6. the agent-type `mcp.tool.invoke` rules (`mcp_access_rules`: deny wins, default deny);
//! 7. for a user's agent (sandbox, analyst): [`crate::authz`] over the task owner, in the
//!    task's project: `mcp.tool.invoke` access rules, else the role the tool's action needs
//!    (`policy.toml` `[tools]`); a disabled owner's agents are refused, and a denial is also a
//!    row of the access audit;
//! 8. the tool runs under its time cap;
//! 9. one audit row, whatever happened.
//!
//! [`invoke`] is the only way a tool runs: the MCP server calls it for remote agents, the
//! workflow engine for the in-process Project Manager.

use std::time::Instant;

use cynode_contracts::mcp::{CallStatus, Decision};
use cynode_contracts::user::JobStatus;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::agent::{Agent, AgentType, TokenError};
use super::audit;
use super::failure::{FailureKind, ToolFailure};
use super::tools::{self, ToolDef};
use crate::authz::{self, Action, Check, Decision as AccessDecision};
use crate::mcp::Mcp;
use crate::rbac;

/// Who is calling: an agent, or why its token was refused.
pub type Caller = Result<Agent, TokenError>;

/// Runs one tool call through the pipeline and audits it.
pub async fn invoke(
    state: &Mcp,
    caller: &Caller,
    tool_name: &str,
    arguments: Option<Map<String, Value>>,
) -> Result<Value, ToolFailure> {
    let started = Instant::now();
    let arguments = Value::Object(arguments.unwrap_or_default());
    let outcome = enforce_and_run(state, caller, tool_name, &arguments).await;
    let agent = caller.as_ref().ok();
    // The ids the row is filed under: the token's, else (a system caller) the arguments'.
    let id =
        |key: &str, own: Option<Uuid>| own.or_else(|| arguments.get(key)?.as_str()?.parse().ok());
    let (decision, status, error_type) = match &outcome {
        Ok(_) => (Decision::Allow, CallStatus::Success, None),
        Err(f) => (f.kind.decision(), CallStatus::Error, Some(f.kind.code())),
    };
    let record = audit::Record {
        tool_name,
        subject_type: agent.map_or("anonymous", |a| a.agent_type.as_str()),
        subject_id: agent.map(|a| a.jti.to_string()),
        user_id: agent.and_then(|a| a.user_id),
        task_id: id("task_id", agent.and_then(|a| a.task_id)),
        project_id: id("project_id", agent.and_then(|a| a.project_id)),
        job_id: id("job_id", agent.and_then(|a| a.job_id)),
        run_id: None,
        decision,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        error_type,
    };
    if let Err(e) = audit::record(&state.db, &record).await {
        // Fail closed: a call that cannot be audited does not count as done.
        tracing::error!(error = %e, tool = tool_name, "writing the MCP audit row failed");
        return Err(ToolFailure::new(
            FailureKind::Internal,
            "the call could not be audited; try again",
        ));
    }
    state.metrics.mcp_call(
        tools::find(tool_name).map_or("unknown", |t| t.name),
        error_type.unwrap_or("ok"),
        started.elapsed(),
    );
    outcome
}

async fn enforce_and_run(
    state: &Mcp,
    caller: &Caller,
    tool_name: &str,
    arguments: &Value,
) -> Result<Value, ToolFailure> {
    // 1. token
    let agent = caller
        .as_ref()
        .map_err(|e| ToolFailure::new(FailureKind::Unauthenticated, e.to_string()))?;
    // 2. known and enabled
    let tool = tools::find(tool_name).ok_or_else(|| {
        ToolFailure::new(
            FailureKind::UnknownTool,
            "no such tool; tools/list names the tools you may call",
        )
    })?;
    if state
        .config
        .mcp_tools_disabled
        .iter()
        .any(|t| t == tool.name)
    {
        return Err(ToolFailure::new(
            FailureKind::ToolDisabled,
            format!("{} is disabled on this orchestrator", tool.name),
        ));
    }
    // 3. role allowlist
    if !tool.roles.contains(&agent.agent_type) {
        return Err(ToolFailure::new(
            FailureKind::NotAllowed,
            format!(
                "{} is not available to a {} agent",
                tool.name,
                agent.agent_type.as_str()
            ),
        ));
    }
    // 5. size cap, then the ids the arguments name against the token's context; the schema
    // is checked where the tool parses them (`tools::run`).
    let size = serde_json::to_vec(arguments).map_or(usize::MAX, |b| b.len());
    if size > tool.max_args_bytes {
        return Err(ToolFailure::new(
            FailureKind::TooLarge,
            format!(
                "arguments are {size} bytes; {} takes at most {}",
                tool.name, tool.max_args_bytes
            ),
        ));
    }
    check_context(agent, tool, arguments)?;
    job_still_open(state, agent).await?;
    // 6. access rules
    if !access_allowed(state, agent.agent_type, tool.name).await? {
        return Err(ToolFailure::new(
            FailureKind::AccessDenied,
            format!("an access rule denies {} to this agent", tool.name),
        ));
    }
    // 7. the task owner's access
    owner_allows(state, agent, tool.name).await?;
    // 8. run under the time cap
    match tokio::time::timeout(tool.timeout, tools::run(state, agent, tool.name, arguments)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(ToolFailure::new(
            FailureKind::Timeout,
            format!("{} took longer than {:?}", tool.name, tool.timeout),
        )),
    }
}

/// A scoped caller (sandbox agent, analyst) may only name its own task and job; the tool's
/// required ids must be present (the schema requires them) and well-formed.
fn check_context(agent: &Agent, tool: &ToolDef, arguments: &Value) -> Result<(), ToolFailure> {
    if agent.agent_type == AgentType::Pm {
        return Ok(());
    }
    for (key, own) in [("task_id", agent.task_id), ("job_id", agent.job_id)] {
        let Some(given) = arguments.get(key) else {
            continue;
        };
        // An analyst's token names a task, not a job: any job of its task is its own (the tool
        // looks the job up within the token's task).
        if key == "job_id" && own.is_none() && agent.agent_type == AgentType::Pa {
            given
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
                .ok_or_else(|| ToolFailure::invalid("job_id must be a UUID"))?;
            continue;
        }
        let given: Uuid = given
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ToolFailure::invalid(format!("{key} must be a UUID")))?;
        if own != Some(given) {
            return Err(ToolFailure::mismatch(format!(
                "{key} is not the {} this agent's token is for",
                key.trim_end_matches("_id")
            )));
        }
    }
    if tool.needs_task && arguments.get("task_id").is_none() {
        return Err(ToolFailure::invalid("task_id is required"));
    }
    Ok(())
}

/// A sandbox agent's token is good only while its job has not ended: one that leaked from a
/// finished run opens nothing, whatever its remaining lifetime.
async fn job_still_open(state: &Mcp, agent: &Agent) -> Result<(), ToolFailure> {
    let (AgentType::Sandbox, Some(job)) = (agent.agent_type, agent.job_id) else {
        return Ok(());
    };
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_optional(&state.db)
        .await?;
    match status.as_deref().map(str::parse::<JobStatus>) {
        Some(Ok(JobStatus::Queued | JobStatus::Running)) => Ok(()),
        _ => Err(ToolFailure::new(
            FailureKind::Unauthenticated,
            "the job this token was issued for has ended",
        )),
    }
}

/// `mcp.tool.invoke`: deny wins, then allow, else deny.
async fn access_allowed(state: &Mcp, agent: AgentType, tool: &str) -> Result<bool, ToolFailure> {
    let effects: Vec<String> = sqlx::query_scalar(
        "SELECT effect FROM mcp_access_rules \
         WHERE agent_type IN ($1, '*') \
           AND (tool_pattern = $2 OR (right(tool_pattern, 1) = '*' \
                AND starts_with($2, left(tool_pattern, -1))))",
    )
    .bind(agent.as_str())
    .bind(tool)
    .fetch_all(&state.db)
    .await?;
    Ok(effects.iter().any(|e| e == "allow") && !effects.iter().any(|e| e == "deny"))
}

/// A user's agent acts for the task's owner: their roles in the task's project (and the access
/// rules naming them) decide, read afresh on every call, so that removing them from a group or
/// disabling them holds for their running tasks' next call. The Project Manager is the
/// system's own agent and passes.
async fn owner_allows(state: &Mcp, agent: &Agent, tool: &str) -> Result<(), ToolFailure> {
    if agent.agent_type == AgentType::Pm {
        return Ok(());
    }
    let Some(user) = agent.user_id else {
        return Err(ToolFailure::new(
            FailureKind::Unauthenticated,
            "the token names no user; a user's agent acts for one",
        ));
    };
    let subject = rbac::subject_of(&state.db, user).await?.ok_or_else(|| {
        ToolFailure::new(
            FailureKind::Unauthenticated,
            "the user this agent works for is disabled",
        )
    })?;
    let project = match (agent.project_id, agent.task_id) {
        (Some(p), _) => p,
        (None, Some(task)) => {
            sqlx::query_scalar::<_, Option<Uuid>>("SELECT project_id FROM tasks WHERE id = $1")
                .bind(task)
                .fetch_optional(&state.db)
                .await?
                .flatten()
                .unwrap_or_default()
        }
        (None, None) => Uuid::nil(),
    };
    let Some(needs) = authz::policy().tool(tool) else {
        return Err(ToolFailure::new(
            FailureKind::AccessDenied,
            format!("{tool} is not open to a user's agent"),
        ));
    };
    let mut check = Check::new(Action::McpToolInvoke, "mcp.tool", tool)
        .in_project(project)
        .owned_by(user);
    check.role_action = Some(needs);
    match subject.decide(&check) {
        AccessDecision::Allow => Ok(()),
        AccessDecision::Deny(reason) => {
            let access = rbac::Access {
                db: state.db.clone(),
            };
            access
                .deny(&subject, &check, &reason, agent.task_id)
                .await?;
            Err(ToolFailure::new(
                FailureKind::AccessDenied,
                format!("{tool} is not allowed: {reason}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Agent {
        Agent::sandbox(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), None)
    }

    #[test]
    fn a_scoped_agent_may_name_only_its_own_ids() {
        let agent = sandbox();
        let tool = tools::find("memory.list").unwrap();
        let own = serde_json::json!({"task_id": agent.task_id, "job_id": agent.job_id});
        assert_eq!(check_context(&agent, tool, &own), Ok(()));
        let other_task = serde_json::json!({"task_id": Uuid::new_v4(), "job_id": agent.job_id});
        assert_eq!(
            check_context(&agent, tool, &other_task).unwrap_err().kind,
            FailureKind::ContextMismatch
        );
        let other_job = serde_json::json!({"task_id": agent.task_id, "job_id": Uuid::new_v4()});
        assert_eq!(
            check_context(&agent, tool, &other_job).unwrap_err().kind,
            FailureKind::ContextMismatch
        );
        let garbage = serde_json::json!({"task_id": "nope"});
        assert_eq!(
            check_context(&agent, tool, &garbage).unwrap_err().kind,
            FailureKind::InvalidArguments
        );
        assert_eq!(
            check_context(&agent, tool, &serde_json::json!({}))
                .unwrap_err()
                .kind,
            FailureKind::InvalidArguments
        );
        // The system-level PM names any task.
        assert_eq!(check_context(&Agent::pm(), tool, &other_task), Ok(()));
    }

    #[test]
    fn refusals_are_denials_and_tool_errors_are_allowed_calls() {
        assert_eq!(FailureKind::NotAllowed.decision(), Decision::Deny);
        assert_eq!(FailureKind::InvalidArguments.decision(), Decision::Deny);
        assert_eq!(FailureKind::Unauthenticated.decision(), Decision::Deny);
        assert_eq!(FailureKind::NotFound.decision(), Decision::Allow);
        assert_eq!(FailureKind::Conflict.decision(), Decision::Allow);
    }
}
