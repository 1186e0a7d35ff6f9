//! Why a tool call did not succeed ([`ToolFailure`], its [`FailureKind`]) and the bounds of one
//! call: what the pipeline reports and every tool returns, apart from both so that neither
//! imports the other for it.

use std::time::Duration;

use cynode_contracts::mcp::Decision;

/// Why a call did not succeed. The first group are the pipeline's refusals (audited `deny`);
/// the rest happened while an allowed tool ran (audited `allow` + `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Unauthenticated,
    UnknownTool,
    ToolDisabled,
    NotAllowed,
    InvalidArguments,
    ContextMismatch,
    AccessDenied,
    TooLarge,
    NotFound,
    Conflict,
    Timeout,
    Internal,
}

impl FailureKind {
    /// The audit's `error_type` and the envelope's `error.type`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::UnknownTool => "unknown_tool",
            Self::ToolDisabled => "tool_disabled",
            Self::NotAllowed => "not_allowed",
            Self::InvalidArguments => "invalid_arguments",
            Self::ContextMismatch => "context_mismatch",
            Self::AccessDenied => "access_denied",
            Self::TooLarge => "too_large",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Timeout => "timeout",
            Self::Internal => "internal_error",
        }
    }

    pub(super) fn decision(self) -> Decision {
        match self {
            Self::NotFound | Self::Conflict | Self::Timeout | Self::Internal => Decision::Allow,
            _ => Decision::Deny,
        }
    }
}

/// A call that did not succeed, with a message safe to show the caller (no secrets, no SQL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl ToolFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(FailureKind::InvalidArguments, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(FailureKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Conflict, message)
    }
    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(FailureKind::ContextMismatch, message)
    }
    /// A fault of ours: logged here with its cause, reported without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "MCP tool failed");
        Self::new(
            FailureKind::Internal,
            "the tool failed; see the orchestrator's log",
        )
    }
}

impl From<crate::error::Error> for ToolFailure {
    fn from(e: crate::error::Error) -> Self {
        match e {
            crate::error::Error::Problem(p, _) => {
                let kind = match p.status {
                    404 => FailureKind::NotFound,
                    409 => FailureKind::Conflict,
                    400 | 413 | 422 => FailureKind::InvalidArguments,
                    403 => FailureKind::AccessDenied,
                    _ => FailureKind::Internal,
                };
                Self::new(kind, p.detail.unwrap_or(p.title))
            }
            other => Self::internal(other),
        }
    }
}

impl From<sqlx::Error> for ToolFailure {
    fn from(e: sqlx::Error) -> Self {
        Self::from(crate::error::Error::from(e))
    }
}

/// Bounds of one tool call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Arguments of most tools: ids, keys and small values.
pub const DEFAULT_MAX_ARGS_BYTES: usize = 256 * 1024;
