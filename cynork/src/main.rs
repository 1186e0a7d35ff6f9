use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let code = cynork::run(cynork::cli::Cli::parse());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
