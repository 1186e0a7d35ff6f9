//! The cynork crate's integration tests as one binary: one link instead of one per file,
//! and nextest still runs every test in a process of its own.

mod apikey;
mod artifacts;
mod audit;
mod bad_input;
mod common;
mod gateway;
mod logs;
mod node;
mod prefs;
mod teams;
mod tty;
