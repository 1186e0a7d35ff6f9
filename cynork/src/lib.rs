//! cynork, the CyNodeAI command-line client. It talks only to the user gateway.
//!
//! `main.rs` parses the command line and calls [`run`]; everything else lives here, one module
//! per concern.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod input;
pub mod output;
pub mod password;
pub mod progress;

/// Runs one command and returns the process exit code. Errors are reported here, once, as one
/// line on stderr.
pub fn run(cli: cli::Cli) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return error::code::INTERNAL;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(()) => error::code::OK,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
