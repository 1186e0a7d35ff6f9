//! The tool catalog (`workflow_mcp_agents.md` §3): one [`catalog!`] entry per tool names it,
//! its roles, caps, argument type and function, and from that one entry come `tools/list`
//! (with the input schema generated from the argument type) and the dispatch in [`run`]. A tool
//! that is not built is not in the catalog: it is never listed and then refused.
//!
//! Tool functions get arguments already parsed (unknown fields refused) and the calling agent
//! after the pipeline's checks; they return JSON or a [`ToolFailure`].

mod artifact;
mod memory;
mod prefs;
mod sandbox;
mod system;
mod task;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::agent::{Agent, AgentType};
use super::failure::{DEFAULT_MAX_ARGS_BYTES, DEFAULT_TIMEOUT, ToolFailure};
use crate::config::{Config, ConfigError};
use crate::mcp::Mcp;

const PM: &[AgentType] = &[AgentType::Pm];
const PM_PA: &[AgentType] = &[AgentType::Pm, AgentType::Pa];
const SANDBOX: &[AgentType] = &[AgentType::Sandbox];
const ALL: &[AgentType] = &[AgentType::Pm, AgentType::Pa, AgentType::Sandbox];
const PM_SANDBOX: &[AgentType] = &[AgentType::Pm, AgentType::Sandbox];

/// One tool as the gateway knows it.
#[derive(Debug)]
pub struct ToolDef {
    /// `namespace.operation` (REQ-MCPTOO-0106).
    pub name: &'static str,
    pub description: &'static str,
    /// The agent types whose allowlist holds it (REQ-MCPGAT-0114's scope: sandbox, pm or both).
    pub roles: &'static [AgentType],
    /// Whether it only reads (the `readOnlyHint` annotation).
    pub read_only: bool,
    /// Whether the arguments must name a task (`task_id`).
    pub needs_task: bool,
    pub max_args_bytes: usize,
    pub timeout: Duration,
    schema: fn() -> Map<String, Value>,
}

impl ToolDef {
    /// The JSON schema of the arguments.
    pub fn input_schema(&self) -> Arc<Map<String, Value>> {
        Arc::new((self.schema)())
    }
}

/// The JSON schema of `T` as an object, as MCP's `inputSchema` wants it.
fn schema_of<T: JsonSchema>() -> Map<String, Value> {
    match serde_json::to_value(schemars::schema_for!(T)) {
        Ok(Value::Object(mut map)) => {
            map.remove("$schema");
            map
        }
        _ => unreachable!("schemars renders a struct's schema as an object"),
    }
}

/// Arguments as `T`, or `invalid_arguments` naming what is wrong.
fn parse<T: DeserializeOwned>(arguments: &Value) -> Result<T, ToolFailure> {
    serde_json::from_value(arguments.clone())
        .map_err(|e| ToolFailure::invalid(format!("arguments do not match the schema: {e}")))
}

macro_rules! catalog {
    ($( $name:literal => $run:path, $args:ty, roles: $roles:expr, read_only: $ro:expr,
        needs_task: $nt:expr, max_bytes: $max:expr, $desc:literal; )*) => {
        static CATALOG: LazyLock<Vec<ToolDef>> = LazyLock::new(|| vec![$(
            ToolDef {
                name: $name,
                description: $desc,
                roles: $roles,
                read_only: $ro,
                needs_task: $nt,
                max_args_bytes: $max,
                timeout: DEFAULT_TIMEOUT,
                schema: schema_of::<$args>,
            },
        )*]);

        /// Runs tool `name` (already through the pipeline's checks).
        pub async fn run(
            state: &Mcp,
            agent: &Agent,
            name: &str,
            arguments: &Value,
        ) -> Result<Value, ToolFailure> {
            match name {
                $( $name => $run(state, agent, parse::<$args>(arguments)?).await, )*
                _ => Err(ToolFailure::new(super::failure::FailureKind::UnknownTool, "no such tool")),
            }
        }
    };
}

const SMALL: usize = DEFAULT_MAX_ARGS_BYTES;
/// An artifact's content, base64 (4/3 of 10 MiB), and the rest of the arguments.
const ARTIFACT: usize = 14 * 1024 * 1024;

catalog! {
    "db.task.get" => task::get, task::TaskRef, roles: PM_PA, read_only: true, needs_task: true,
        max_bytes: SMALL, "A task: name, status, prompt, summary, project, owner, attachments and its jobs' statuses.";
    "db.task.update_status" => task::update_status, task::StatusChange, roles: PM, read_only: false,
        needs_task: true, max_bytes: SMALL,
        "End a task: completed (with a summary), failed (with a reason) or canceled (its running jobs are stopped).";
    "db.job.get" => task::job, task::JobRef, roles: PM_PA, read_only: true, needs_task: false,
        max_bytes: SMALL, "A job: its task, status, attempts, times and result (exit code, output).";
    "db.preference.get" => prefs::get, prefs::PrefKey, roles: PM_PA, read_only: true,
        needs_task: false, max_bytes: SMALL, "One preference entry of a scope (system, user, project, task) by key.";
    "db.preference.list" => prefs::list, prefs::PrefList, roles: PM_PA, read_only: true,
        needs_task: false, max_bytes: SMALL, "A scope's preference entries, optionally by key prefix; paged by cursor.";
    "db.preference.effective" => prefs::effective, prefs::PrefEffective, roles: PM_PA, read_only: true,
        needs_task: true, max_bytes: SMALL,
        "The preferences in force for a task: task over project over user over system; include_sources says where each came from.";
    "db.preference.create" => prefs::create, prefs::PrefCreate, roles: PM, read_only: false,
        needs_task: false, max_bytes: SMALL, "Create a preference entry (version 1); an existing key is a conflict.";
    "db.preference.update" => prefs::update, prefs::PrefUpdate, roles: PM, read_only: false,
        needs_task: false, max_bytes: SMALL,
        "Change a preference entry; with expected_version, a newer version is a conflict and nothing changes.";
    "db.preference.delete" => prefs::delete, prefs::PrefDelete, roles: PM, read_only: false,
        needs_task: false, max_bytes: SMALL, "Remove a preference entry (with expected_version as for update).";
    "artifact.put" => artifact::put, artifact::ArtifactPut, roles: PM_SANDBOX, read_only: false,
        needs_task: true, max_bytes: ARTIFACT,
        "Store a file of the task (base64 content, at most 10 MiB); the same path again replaces it.";
    "artifact.get" => artifact::get, artifact::ArtifactRef, roles: ALL, read_only: true, needs_task: true,
        max_bytes: SMALL, "A file of the task: metadata and base64 content.";
    "artifact.list" => artifact::list, artifact::ArtifactTask, roles: ALL, read_only: true,
        needs_task: true, max_bytes: SMALL, "The task's files: path, type, size and checksum.";
    "db.project.get" => system::project, system::ProjectRef, roles: PM, read_only: true,
        needs_task: false, max_bytes: SMALL, "A project by project_id or slug.";
    "db.project.list" => system::projects, system::ProjectQuery, roles: PM, read_only: true,
        needs_task: false, max_bytes: SMALL, "Projects, optionally filtered by a text in slug or name; paged by cursor.";
    "node.list" => system::nodes, system::NoArgs, roles: PM, read_only: true, needs_task: false,
        max_bytes: SMALL, "Every node: state, readiness, running jobs and capacity, labels, models, resources.";
    "node.get" => system::node, system::NodeRef, roles: PM, read_only: true, needs_task: false,
        max_bytes: SMALL, "One node by node_slug.";
    "model.list" => system::models, system::NoArgs, roles: PM, read_only: true, needs_task: false,
        max_bytes: SMALL, "Models served by ready nodes, and the nodes serving each.";
    "model.get" => system::model, system::ModelRef, roles: PM, read_only: true, needs_task: false,
        max_bytes: SMALL, "One model by model_id: the nodes serving it.";
    "memory.add" => memory::add, memory::MemoryAdd, roles: SANDBOX, read_only: false, needs_task: true,
        max_bytes: SMALL, "Keep a note for the rest of this job (key, content, optional summary); a key again replaces it.";
    "memory.list" => memory::list, memory::MemoryList, roles: SANDBOX, read_only: true, needs_task: true,
        max_bytes: SMALL, "This job's notes: keys and summaries, paged by cursor.";
    "memory.retrieve" => memory::retrieve, memory::MemoryKey, roles: SANDBOX, read_only: true,
        needs_task: true, max_bytes: SMALL, "One of this job's notes by key.";
    "memory.delete" => memory::delete, memory::MemoryKey, roles: SANDBOX, read_only: false,
        needs_task: true, max_bytes: SMALL, "Forget one of this job's notes.";
    "sandbox.create" => sandbox::create, sandbox::SandboxCreate, roles: PM, read_only: false,
        needs_task: true, max_bytes: SMALL,
        "Start a long-lived sandbox (job_id: its new id) for a task on a ready node: no network, the node's limits; removed by sandbox.destroy or when idle.";
    "sandbox.exec" => sandbox::exec, sandbox::SandboxExec, roles: PM, read_only: false,
        needs_task: true, max_bytes: SMALL,
        "Run command with argv in the sandbox (cwd relative to /workspace): exit_code, stdout, stderr (capped), timed_out.";
    "sandbox.put_file" => sandbox::put_file, sandbox::SandboxPutFile, roles: PM, read_only: false,
        needs_task: true, max_bytes: sandbox::MAX_FILE_ARGS_BYTES,
        "Write a file (content_bytes_base64, at most 10 MiB) at path relative to the sandbox's /workspace.";
    "sandbox.get_file" => sandbox::get_file, sandbox::SandboxFile, roles: PM, read_only: true,
        needs_task: true, max_bytes: SMALL,
        "Read a file at path relative to the sandbox's /workspace, as content_bytes_base64 (at most 10 MiB).";
    "sandbox.destroy" => sandbox::destroy, sandbox::SandboxRef, roles: PM, read_only: false,
        needs_task: true, max_bytes: SMALL, "Remove the sandbox and its files.";
    "help.get" => system::help, system::HelpQuery, roles: ALL, read_only: true, needs_task: true,
        max_bytes: SMALL, "How to use this gateway: the tools you may call, or one topic.";
}

/// The catalog entry of `name`.
pub fn find(name: &str) -> Option<&'static ToolDef> {
    CATALOG.iter().find(|t| t.name == name)
}

/// `MCP_TOOLS_DISABLED` must name tools of this catalog: a typo would leave a tool on. Checked
/// at start-up, as a configuration error.
pub fn check_disabled(config: &Config) -> Result<(), ConfigError> {
    match config.mcp_tools_disabled.iter().find(|n| find(n).is_none()) {
        Some(unknown) => Err(ConfigError::Invalid {
            key: "MCP_TOOLS_DISABLED".into(),
            message: format!("{unknown:?} is not a tool of this orchestrator"),
        }),
        None => Ok(()),
    }
}

/// Every tool, in catalog order.
pub fn all() -> &'static [ToolDef] {
    &CATALOG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_unique_and_schemas_are_closed_objects() {
        let mut seen = std::collections::BTreeSet::new();
        for tool in all() {
            assert!(seen.insert(tool.name), "{} listed twice", tool.name);
            let (ns, op) = tool.name.rsplit_once('.').expect("namespace.operation");
            assert!(!ns.is_empty() && !op.is_empty(), "{}", tool.name);
            let schema = tool.input_schema();
            assert_eq!(schema["type"], "object", "{}", tool.name);
            assert_eq!(
                schema.get("additionalProperties"),
                Some(&Value::Bool(false)),
                "{} accepts unknown arguments",
                tool.name
            );
            if tool.needs_task {
                let required = schema["required"].as_array().expect(tool.name);
                assert!(required.contains(&"task_id".into()), "{}", tool.name);
            }
        }
    }

    #[test]
    fn sandbox_agents_never_get_db_node_or_sandbox_tools() {
        for tool in all() {
            if tool.roles.contains(&AgentType::Sandbox) {
                assert!(
                    !["db.", "node.", "sandbox."]
                        .iter()
                        .any(|p| tool.name.starts_with(p)),
                    "{}",
                    tool.name
                );
            }
        }
    }
}
