//! The MCP gateway: agents read and change the system only through tools, each call checked
//! and audited (`workflow_mcp_agents.md` §2, §3).
//!
//! - [`agent`]: agent tokens (who calls, bound to which user, task and job).
//! - [`pipeline`]: the enforcement pipeline and [`pipeline::invoke`], the one way a tool runs.
//! - [`failure`]: why a call did not succeed, and a call's bounds.
//! - [`tools`]: the catalog.
//! - [`audit`]: the audit log.
//! - [`server`]: the MCP server that remote agents call.
//! - This module: [`Mcp`], what the pipeline and the tools reach the system through.

pub mod agent;
pub mod audit;
pub mod failure;
pub mod pipeline;
pub mod server;
pub mod tools;

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::signals::Signals;
use crate::worker_tokens::TokenKeys;
pub use agent::{Agent, AgentKeys, AgentType, TokenError};
pub use failure::{FailureKind, ToolFailure};
pub use pipeline::{Caller, invoke};
pub use tools::check_disabled;

/// What the pipeline and the tools need: the pool and settings, the client and token keys that
/// reach nodes' worker APIs (the sandbox tools, a cancel's stop), the metrics calls count in,
/// and the signals a tool's change raises. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mcp {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub worker_tokens: Arc<TokenKeys>,
    pub metrics: Arc<Metrics>,
    pub signals: Signals,
}
