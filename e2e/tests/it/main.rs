//! The e2e crate's integration tests as one binary: one link instead of one per file,
//! and nextest still runs every test in a process of its own.

mod bootstrap;
mod chat;
mod chat_cynork;
mod console;
mod devenv;
mod dynamic_config;
mod faults;
mod happy_path;
mod mcp_client;
mod mcp_sandbox;
mod multihost;
mod node_inference;
mod node_manager;
mod node_support;
mod nspawn;
mod prompt_tasks;
mod systemd_units;
mod vm_test_script;
