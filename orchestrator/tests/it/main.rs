//! The orchestrator crate's integration tests as one binary: one link instead of one per file,
//! and nextest still runs every test in a process of its own.

mod apikeys;
mod artifacts;
mod authz_matrix;
mod binary;
mod chat;
mod common;
mod console;
mod control_plane;
mod dispatch;
mod gateway;
mod mcp;
mod mcp_sandbox_tools;
mod metrics;
mod outage;
mod placement;
mod pm;
mod preferences;
mod teams;
mod workflow;
