use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cynode_node_manager::config::DEFAULT_CONFIG_PATH;
use cynode_node_manager::{Config, NodeError, run};

/// CyNodeAI node manager: registers the node and supervises its worker API and inference
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// node.yaml to read; environment variables with the upstream names override its keys
    #[arg(long, env = "CYNODE_NODE_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

/// `EX_CONFIG`: the unit file's `RestartPreventExitStatus=` keeps systemd from looping on it.
const EXIT_CONFIG: u8 = 78;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cynode_service_kit::logging::init("info");
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            cynode_service_kit::notify::status(&format!("configuration error: {e}"));
            tracing::error!("configuration error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        // Supervision logged it (and said so in STATUS=) before the clean shutdown began.
        Err(e @ NodeError::ConfigChanged { .. }) => ExitCode::from(e.exit_code()),
        Err(e) => {
            tracing::error!("node manager failed: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
