use clap::Parser;

/// CyNodeAI worker API: runs jobs in Podman sandboxes
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
