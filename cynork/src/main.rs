use clap::Parser;

/// cynork, the CyNodeAI command-line client
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
