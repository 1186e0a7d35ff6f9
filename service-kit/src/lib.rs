//! Shared plumbing of the CyNodeAI daemons, so that each binary's `main.rs` stays thin:
//!
//! - [`logging`]: `tracing` to journald under systemd, to stderr elsewhere;
//! - [`secrets`]: secrets from files, env or `$CREDENTIALS_DIRECTORY`, never inline;
//! - [`notify`]: `sd_notify` readiness, status and watchdog;
//! - [`http`]: problem+json errors, a JSON extractor that names the bad field, body limits and
//!   graceful shutdown for axum servers.

pub mod http;
pub mod logging;
pub mod notify;
pub mod secrets;
