//! The worker-api crate's integration tests as one binary: one link instead of one per file,
//! and nextest still runs every test in a process of its own.

mod acceptance;
mod drain;
mod inference;
mod lifecycle;
mod live_logs;
mod managed_sandboxes;
mod mcp_proxy;
mod metrics;
mod telemetry;
