//! The node-manager crate's integration tests as one binary: one link instead of one per file,
//! and nextest still runs every test in a process of its own.

mod bad_config;
mod systemd_unit;
