//! `artifact.*`: a task's files (`crate::artifacts`, the table's only writer). Content travels
//! base64-encoded; a sandbox agent's writes are recorded as its job's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::agent::{Agent, AgentType};
use super::super::failure::ToolFailure;
use crate::artifacts::{self, ArtifactError, MAX_ARTIFACT_BYTES, Writer};
use crate::mcp::Mcp;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactPut {
    pub task_id: Uuid,
    /// Relative, `/`-separated, without `..` (e.g. `reports/summary.md`).
    #[schemars(length(min = 1, max = 2048))]
    pub path: String,
    /// The content, base64 (standard alphabet, padded); at most 10 MiB decoded.
    pub content_bytes_base64: String,
    /// Default `application/octet-stream`.
    #[schemars(length(max = 255))]
    pub content_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    pub task_id: Uuid,
    #[schemars(length(min = 1, max = 2048))]
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactTask {
    pub task_id: Uuid,
}

fn failed(e: ArtifactError) -> ToolFailure {
    ToolFailure::from(crate::error::Error::from(e))
}

pub async fn put(state: &Mcp, agent: &Agent, args: ArtifactPut) -> Result<Value, ToolFailure> {
    artifacts::check_path(&args.path).map_err(failed)?;
    let bytes = STANDARD
        .decode(args.content_bytes_base64.as_bytes())
        .map_err(|e| ToolFailure::invalid(format!("content_bytes_base64 is not base64: {e}")))?;
    if bytes.len() > MAX_ARTIFACT_BYTES {
        return Err(ToolFailure::invalid(format!(
            "the content is {} bytes; at most {MAX_ARTIFACT_BYTES} are allowed",
            bytes.len()
        )));
    }
    let writer = Writer {
        user_id: agent.user_id,
        job_id: (agent.agent_type == AgentType::Sandbox)
            .then_some(agent.job_id)
            .flatten(),
    };
    let artifact = artifacts::put(
        &state.db,
        args.task_id,
        &args.path,
        args.content_type.as_deref(),
        &bytes,
        writer,
    )
    .await
    .map_err(failed)?;
    serde_json::to_value(artifact).map_err(ToolFailure::internal)
}

pub async fn get(state: &Mcp, _agent: &Agent, args: ArtifactRef) -> Result<Value, ToolFailure> {
    artifacts::check_path(&args.path).map_err(failed)?;
    let (artifact, bytes) = artifacts::get(&state.db, args.task_id, &args.path)
        .await
        .map_err(failed)?
        .ok_or_else(|| ToolFailure::not_found(format!("no artifact {:?}", args.path)))?;
    let mut value = serde_json::to_value(artifact).map_err(ToolFailure::internal)?;
    value["content_bytes_base64"] = json!(STANDARD.encode(bytes));
    Ok(value)
}

pub async fn list(state: &Mcp, _agent: &Agent, args: ArtifactTask) -> Result<Value, ToolFailure> {
    let list = artifacts::list(&state.db, args.task_id)
        .await
        .map_err(failed)?;
    Ok(json!({"task_id": args.task_id, "artifacts": list}))
}
