//! Shared plumbing of the CyNodeAI daemons, so that each binary's `main.rs` stays thin:
//!
//! - [`logging`]: `tracing` to journald under systemd, to stderr elsewhere;
//! - [`secrets`]: secrets from files, env or `$CREDENTIALS_DIRECTORY`, never inline;
//! - [`config`]: a TOML/YAML file with env overrides, the shape every daemon's settings take;
//! - [`duration`]: the one duration syntax (`90`, `500ms`, `1h30m`) of env vars and files;
//! - [`notify`]: `sd_notify` readiness, status and watchdog;
//! - [`http`]: problem+json errors, a JSON extractor that names the bad field and graceful
//!   shutdown for axum servers;
//! - [`body_limit`]: request body limits whose `413` reaches the client;
//! - [`hardening`]: Landlock and capability drop after start-up, strict or best-effort.

pub mod body_limit;
pub mod config;
pub mod duration;
pub mod hardening;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod secrets;
