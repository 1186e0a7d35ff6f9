//! The MCP gateway's user-visible wire types: the audit log admins read through the user
//! gateway (`GET /v1/audit/mcp`), and the result envelope every tool call answers with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Path of the MCP endpoint on the gateway's own listener (streamable HTTP).
pub const MCP_PATH: &str = "/mcp";
/// Default listen address of the MCP gateway: loopback, for in-host agents and the node's
/// worker proxy on the same host; set `MCP_LISTEN_ADDR` to serve other nodes.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:12083";

/// Whether the gateway let a call through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub const ALL: [Decision; 2] = [Self::Allow, Self::Deny];

    /// The wire string (as serialised and stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Success,
    Error,
}

impl CallStatus {
    pub const ALL: [CallStatus; 2] = [Self::Success, Self::Error];

    /// The wire string (as serialised and stored).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// One `tools/call`, as audited. Never its arguments or result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpAuditEntry {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub task_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    /// `pm`, `pa`, `sandbox`, or `anonymous` for a call without a valid token.
    pub subject_type: String,
    /// The token's id.
    pub subject_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub tool_name: String,
    pub decision: Decision,
    pub status: CallStatus,
    pub duration_ms: i64,
    pub error_type: Option<String>,
}

/// A page of the audit, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpAuditPage {
    pub entries: Vec<McpAuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /v1/audit/mcp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct McpAuditQuery {
    pub task_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub tool_name: Option<String>,
    pub decision: Option<Decision>,
    pub subject_type: Option<String>,
    /// Only calls at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only calls before this instant (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// 1 to 500; default 100.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The body of every tool result (`structuredContent`, and as JSON text in `content`):
/// `{"status":"success","result":…}` or `{"status":"error","error":{"type","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolEnvelope {
    pub status: CallStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolErrorBody {
    /// A stable code (`invalid_arguments`, `not_allowed`, `not_found`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strings_are_the_wire_strings() {
        for status in CallStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        for decision in Decision::ALL {
            assert_eq!(
                serde_json::to_value(decision).unwrap(),
                serde_json::Value::from(decision.as_str())
            );
        }
    }
}
