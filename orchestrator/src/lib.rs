//! CyNodeAI orchestrator: the control plane (node registration, configuration, dispatcher) and
//! the user gateway (auth, tasks), on one PostgreSQL database.
//!
//! [`start`] runs either or both servers in this process and returns once they listen; `main.rs`
//! only parses the command line and waits for SIGTERM.
//!
//! The modules are in four layers, bottom first: core, store, engine, edge; a module imports
//! only from its own layer or below, and no import circles back (`layers.toml` maps each module
//! to its layer; ARCHITECTURE.md, "Layers", explains them).

// core
pub mod auth;
pub mod authz;
pub mod config;
pub mod error;
pub mod metrics;
pub mod ratelimit;
pub mod signals;
pub mod web;
pub mod worker_tokens;
// store
pub mod apikeys;
pub mod artifacts;
pub mod jobs;
pub mod nodes;
pub mod preferences;
pub mod projects;
pub mod rbac;
pub mod scheduler;
pub mod tasks;
pub mod usage;
pub mod users;
// engine
pub mod chat;
pub mod dispatch;
pub mod mcp;
pub mod node_inference;
pub mod pm;
pub mod readiness;
pub mod sandbox_stop;
pub mod task_logs;
pub mod telemetry;
pub mod workflow;
// edge
pub mod app;
pub mod control_plane;
pub mod gateway;
pub mod state;

pub use app::{MIGRATOR, Role, Running, connect, mcp_token, migrate, start, worker_token};
pub use config::{Config, Secrets};
pub use state::AppState;
