//! `sandbox.*`: the Project Manager's managed sandboxes (`workflow_mcp_agents.md` §3), run by a
//! node's worker API (`/v1/worker/sandboxes…`) with that node's bearer token. The tools' `job_id`
//! is the sandbox's id. This module is the only writer of `pm_sandboxes`, which records which
//! node hosts each sandbox so that later calls reach it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cynode_contracts::routes::worker;
use cynode_contracts::worker::{
    MAX_SANDBOX_FILE_BYTES, ManagedSandbox, ManagedSandboxRequest, SandboxExecRequest,
    SandboxExecResponse,
};
use cynode_service_kit::secrets::Secret;
use reqwest::Method;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::super::agent::Agent;
use super::super::failure::{DEFAULT_TIMEOUT, ToolFailure};
use crate::mcp::Mcp;
use crate::scheduler;

/// Room left under the tool's time cap for the calls around an exec.
const EXEC_MARGIN: Duration = Duration::from_secs(5);
/// The longest exec a call may ask for: it must end within the tool's time cap.
const MAX_EXEC_SECS: u64 = DEFAULT_TIMEOUT.as_secs() - EXEC_MARGIN.as_secs();
/// Each call to a worker, but an exec (which gets its own timeout plus the margin).
const WORKER_TIMEOUT: Duration = Duration::from_secs(20);
/// A file's base64 text: 4 characters per 3 bytes.
pub const MAX_FILE_ARGS_BYTES: usize = MAX_SANDBOX_FILE_BYTES / 3 * 4 + 64 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxCreate {
    pub task_id: Uuid,
    /// The new sandbox's id, chosen by the caller.
    pub job_id: Uuid,
    /// An image on the node's allowlist; empty for the node's default.
    pub image_ref: String,
    /// Removed after this long without a call (1 to 86400; default 1800).
    #[schemars(range(min = 1, max = 86400))]
    pub idle_timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxRef {
    pub task_id: Uuid,
    pub job_id: Uuid,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxExec {
    pub task_id: Uuid,
    pub job_id: Uuid,
    /// The program, run without a shell unless it is one.
    #[schemars(length(min = 1))]
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Killed after this many seconds (1 to 25; default 25).
    #[schemars(range(min = 1, max = 25))]
    pub timeout_seconds: Option<u64>,
    /// Working directory relative to /workspace.
    pub cwd: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    pub task_id: Uuid,
    pub job_id: Uuid,
    /// Relative to /workspace.
    #[schemars(length(min = 1))]
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxPutFile {
    pub task_id: Uuid,
    pub job_id: Uuid,
    /// Relative to /workspace; parent directories are made.
    #[schemars(length(min = 1))]
    pub path: String,
    /// At most 10 MiB once decoded.
    pub content_bytes_base64: String,
}

/// The node hosting a sandbox, and how to reach its worker API.
struct Host {
    url: String,
    token: Secret,
}

type HostRow = (Uuid, String, String);

fn host(state: &Mcp, (node_id, url, sealed): HostRow) -> Result<Host, ToolFailure> {
    Ok(Host {
        url,
        token: state.worker_tokens.open(node_id, &sealed)?,
    })
}

/// The node that hosts the task's sandbox `job_id`.
async fn hosting(state: &Mcp, task_id: Uuid, job_id: Uuid) -> Result<Host, ToolFailure> {
    let row: Option<HostRow> = sqlx::query_as(
        "SELECT n.id, n.worker_api_target_url, n.worker_api_bearer_token \
         FROM pm_sandboxes s JOIN nodes n ON n.id = s.node_id \
         WHERE s.id = $1 AND s.task_id = $2 AND n.worker_api_target_url IS NOT NULL \
           AND n.worker_api_bearer_token IS NOT NULL",
    )
    .bind(job_id)
    .bind(task_id)
    .fetch_optional(&state.db)
    .await?;
    let row =
        row.ok_or_else(|| ToolFailure::not_found(format!("sandbox {job_id} does not exist")))?;
    host(state, row)
}

/// Calls the worker; a refusal becomes the failure its status means, with the worker's words
/// (which name the field, never an address or a token).
async fn call(
    state: &Mcp,
    host: &Host,
    method: Method,
    path: &str,
    timeout: Duration,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, ToolFailure> {
    let url = format!("{}{path}", host.url.trim_end_matches('/'));
    let request = state
        .http
        .request(method, url)
        .bearer_auth(host.token.expose())
        .timeout(timeout);
    let answer = build(request)
        .send()
        .await
        .map_err(|e| ToolFailure::internal(format!("the sandbox's node cannot be reached: {e}")))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(answer);
    }
    let detail = answer
        .json::<Value>()
        .await
        .ok()
        .and_then(|p| p["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| status.to_string());
    Err(match status.as_u16() {
        400 | 413 => ToolFailure::invalid(detail),
        404 => ToolFailure::not_found(detail),
        409 | 429 => ToolFailure::conflict(detail),
        _ => ToolFailure::internal(format!("the sandbox's node answered {status}: {detail}")),
    })
}

pub async fn create(
    state: &Mcp,
    _agent: &Agent,
    args: SandboxCreate,
) -> Result<Value, ToolFailure> {
    super::task::require_open(state, args.task_id).await?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pm_sandboxes WHERE id = $1)")
            .bind(args.job_id)
            .fetch_one(&state.db)
            .await?;
    if known {
        return Err(ToolFailure::conflict(format!(
            "sandbox {} already exists",
            args.job_id
        )));
    }
    // A node that takes jobs now, the one with the fewest managed sandboxes first.
    let row: Option<HostRow> = sqlx::query_as(&format!(
        "SELECT n.id, n.worker_api_target_url, n.worker_api_bearer_token FROM nodes n \
         WHERE {dispatchable} \
         ORDER BY (SELECT count(*) FROM pm_sandboxes s WHERE s.node_id = n.id), n.node_slug \
         LIMIT 1",
        dispatchable = scheduler::dispatchable(state.config.node_stale_after)
    ))
    .fetch_optional(&state.db)
    .await?;
    let row = row.ok_or_else(|| ToolFailure::conflict("no node can take a sandbox now"))?;
    let node_id = row.0;
    let host = host(state, row)?;
    let request = ManagedSandboxRequest {
        version: cynode_contracts::PAYLOAD_VERSION,
        task_id: args.task_id,
        sandbox_id: args.job_id,
        image: Some(args.image_ref).filter(|i| !i.trim().is_empty()),
        idle_timeout_seconds: args.idle_timeout_seconds,
    };
    let created: ManagedSandbox = call(
        state,
        &host,
        Method::POST,
        worker::SANDBOXES,
        WORKER_TIMEOUT,
        |r| r.json(&request),
    )
    .await?
    .json()
    .await
    .map_err(ToolFailure::internal)?;
    let recorded = sqlx::query(
        "INSERT INTO pm_sandboxes (id, task_id, node_id) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(args.job_id)
    .bind(args.task_id)
    .bind(node_id)
    .execute(&state.db)
    .await;
    if !matches!(&recorded, Ok(done) if done.rows_affected() == 1) {
        // Unrecorded, nobody could reach it again: it goes now rather than at its idle timeout.
        let _ = call(
            state,
            &host,
            Method::DELETE,
            &worker::sandbox(args.job_id),
            WORKER_TIMEOUT,
            |r| r,
        )
        .await;
        recorded?;
        return Err(ToolFailure::conflict(format!(
            "sandbox {} already exists",
            args.job_id
        )));
    }
    Ok(json!({
        "task_id": created.task_id,
        "job_id": created.sandbox_id,
        "image_ref": created.image,
        "idle_timeout_seconds": created.idle_timeout_seconds,
        "limits": created.limits,
    }))
}

pub async fn exec(state: &Mcp, _agent: &Agent, args: SandboxExec) -> Result<Value, ToolFailure> {
    let timeout = args.timeout_seconds.unwrap_or(MAX_EXEC_SECS);
    if !(1..=MAX_EXEC_SECS).contains(&timeout) {
        return Err(ToolFailure::invalid(format!(
            "timeout_seconds must be 1 to {MAX_EXEC_SECS}"
        )));
    }
    let host = hosting(state, args.task_id, args.job_id).await?;
    let request = SandboxExecRequest {
        argv: std::iter::once(args.command).chain(args.argv).collect(),
        timeout_seconds: Some(timeout),
        cwd: args.cwd,
    };
    let done: SandboxExecResponse = call(
        state,
        &host,
        Method::POST,
        &worker::sandbox_exec(args.job_id),
        Duration::from_secs(timeout) + EXEC_MARGIN,
        |r| r.json(&request),
    )
    .await?
    .json()
    .await
    .map_err(ToolFailure::internal)?;
    serde_json::to_value(done).map_err(ToolFailure::internal)
}

pub async fn put_file(
    state: &Mcp,
    _agent: &Agent,
    args: SandboxPutFile,
) -> Result<Value, ToolFailure> {
    let bytes = BASE64
        .decode(args.content_bytes_base64.as_bytes())
        .map_err(|e| ToolFailure::invalid(format!("content_bytes_base64 is not base64: {e}")))?;
    if bytes.len() > MAX_SANDBOX_FILE_BYTES {
        return Err(ToolFailure::invalid(format!(
            "content_bytes_base64 decodes to {} bytes, more than {MAX_SANDBOX_FILE_BYTES}",
            bytes.len()
        )));
    }
    let host = hosting(state, args.task_id, args.job_id).await?;
    let size = bytes.len();
    call(
        state,
        &host,
        Method::PUT,
        &worker::sandbox_files(args.job_id),
        WORKER_TIMEOUT,
        |r| r.query(&[("path", &args.path)]).body(bytes),
    )
    .await?;
    Ok(json!({"job_id": args.job_id, "path": args.path, "size_bytes": size}))
}

pub async fn get_file(
    state: &Mcp,
    _agent: &Agent,
    args: SandboxFile,
) -> Result<Value, ToolFailure> {
    let host = hosting(state, args.task_id, args.job_id).await?;
    let answer = call(
        state,
        &host,
        Method::GET,
        &worker::sandbox_files(args.job_id),
        WORKER_TIMEOUT,
        |r| r.query(&[("path", &args.path)]),
    )
    .await?;
    let bytes = answer.bytes().await.map_err(ToolFailure::internal)?;
    // The worker caps files at the same size; this holds if it did not.
    if bytes.len() > MAX_SANDBOX_FILE_BYTES {
        return Err(ToolFailure::invalid(format!(
            "{} is larger than {MAX_SANDBOX_FILE_BYTES} bytes",
            args.path
        )));
    }
    Ok(json!({
        "job_id": args.job_id,
        "path": args.path,
        "size_bytes": bytes.len(),
        "content_bytes_base64": BASE64.encode(&bytes),
    }))
}

/// Removes the sandbox from its node, then forgets it; a sandbox the node no longer has (idled
/// out, its worker restarted) is forgotten all the same.
pub async fn destroy(state: &Mcp, _agent: &Agent, args: SandboxRef) -> Result<Value, ToolFailure> {
    let host = hosting(state, args.task_id, args.job_id).await?;
    call(
        state,
        &host,
        Method::DELETE,
        &worker::sandbox(args.job_id),
        WORKER_TIMEOUT,
        |r| r,
    )
    .await?;
    sqlx::query("DELETE FROM pm_sandboxes WHERE id = $1 AND task_id = $2")
        .bind(args.job_id)
        .bind(args.task_id)
        .execute(&state.db)
        .await?;
    Ok(json!({"job_id": args.job_id, "destroyed": true}))
}
