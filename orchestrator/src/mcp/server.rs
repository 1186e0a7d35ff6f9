//! The MCP server: the `rmcp` crate's streamable HTTP service (protocol versions 2025-11-25 and
//! 2026-07-28, stateless so that any orchestrator process answers any request) at [`MCP_PATH`]
//! on a listener of its own (`MCP_LISTEN_ADDR`, loopback by default). Every call goes through
//! the pipeline ([`invoke`]).
//!
//! The bearer token is read here into the request's extensions and judged by the pipeline, so
//! that a call without a valid token is still a `tools/call` with a tool name to audit.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use cynode_contracts::mcp::{CallStatus, MCP_PATH, ToolEnvelope, ToolErrorBody};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::agent::{AgentKeys, TokenError};
use super::failure::ToolFailure;
use super::pipeline::{Caller, invoke};
use super::{Mcp, tools};

/// Largest request body the MCP listener reads: the largest tool arguments (an artifact's
/// base64 content) and the JSON-RPC frame around them.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The MCP server of one request (stateless: one per request).
#[derive(Clone)]
struct Gateway {
    state: Mcp,
}

/// The caller as the bearer-token middleware judged it.
#[derive(Debug, Clone)]
struct CallerExt(Caller);

fn caller_of(context: &RequestContext<RoleServer>) -> Caller {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CallerExt>())
        .map_or(Err(TokenError::Missing), |c| c.0.clone())
}

fn envelope(outcome: Result<Value, ToolFailure>) -> CallToolResult {
    let (body, failed) = match outcome {
        Ok(result) => (
            ToolEnvelope {
                status: CallStatus::Success,
                result: Some(result),
                error: None,
            },
            false,
        ),
        Err(f) => (
            ToolEnvelope {
                status: CallStatus::Error,
                result: None,
                error: Some(ToolErrorBody {
                    kind: f.kind.code().into(),
                    message: f.message,
                }),
            },
            true,
        ),
    };
    let value = serde_json::to_value(&body).unwrap_or(Value::Null);
    let mut result = if failed {
        CallToolResult::error(vec![ContentBlock::text(value.to_string())])
    } else {
        CallToolResult::success(vec![ContentBlock::text(value.to_string())])
    };
    result.structured_content = Some(value);
    result
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        config.server_info = Implementation::new("cynodeai-mcp-gateway", env!("CARGO_PKG_VERSION"));
        config.instructions = Some(
            "CyNodeAI tools. Every call is checked against your token's role and context and \
             audited; call help.get for how to use them."
                .into(),
        );
        config
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&[ProtocolVersion::V_2026_07_28, ProtocolVersion::V_2025_11_25])
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let agent =
            caller_of(&context).map_err(|e| ErrorData::invalid_request(e.to_string(), None))?;
        let disabled = &self.state.config.mcp_tools_disabled;
        let tools = tools::all()
            .iter()
            .filter(|t| t.roles.contains(&agent.agent_type))
            .filter(|t| !disabled.iter().any(|d| d == t.name))
            .map(|t| {
                let mut annotations = ToolAnnotations::default();
                annotations.read_only_hint = Some(t.read_only);
                let mut tool = Tool::new(t.name, t.description, t.input_schema());
                tool.annotations = Some(annotations);
                tool
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller_of(&context);
        let outcome = invoke(&self.state, &caller, &request.name, request.arguments).await;
        Ok(envelope(outcome).into())
    }
}

/// Reads `Authorization: Bearer` into the request for the pipeline to judge.
async fn read_token(State(keys): State<Arc<AgentKeys>>, mut req: Request, next: Next) -> Response {
    let caller = match req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(token) => keys.verify(token.trim()),
        None => Err(TokenError::Missing),
    };
    req.extensions_mut().insert(CallerExt(caller));
    next.run(req).await
}

/// The MCP listener's routes: [`MCP_PATH`] and nothing else. `stop` ends open streams at
/// shutdown.
pub fn router(state: Mcp, keys: Arc<AgentKeys>, stop: CancellationToken) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_cancellation_token(stop)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_allowed_hosts(state.config.mcp_allowed_hosts.clone())
        // Agents are not browsers: any request that carries an Origin is refused.
        .enforce_origin_validation();
    let mut config = config;
    config.legacy_session_mode = false;
    let service_state = state.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(Gateway {
                state: service_state.clone(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service(MCP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(keys, read_token))
        .fallback(cynode_service_kit::http::not_found_fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::FailureKind;

    #[test]
    fn failures_become_error_envelopes_without_leaking_causes() {
        let result = envelope(Err(ToolFailure::new(
            FailureKind::NotAllowed,
            "db.task.get is not available to a sandbox agent",
        )));
        assert_eq!(result.is_error, Some(true));
        let body = result.structured_content.unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["error"]["type"], "not_allowed");
        let ok = envelope(Ok(serde_json::json!({"a": 1})));
        assert_eq!(ok.is_error, Some(false));
        assert_eq!(ok.structured_content.unwrap()["result"]["a"], 1);
    }
}
