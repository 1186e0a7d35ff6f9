use clap::Parser;

/// CyNodeAI node manager: registers the node and supervises its worker API and inference
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
