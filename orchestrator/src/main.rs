use clap::Parser;

/// CyNodeAI orchestrator: control plane, user gateway and dispatcher
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
