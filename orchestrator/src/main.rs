use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cynode_orchestrator::{Config, Role};

/// CyNodeAI orchestrator: control plane, user gateway and dispatcher
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML or YAML config file (default: /etc/cynode/orchestrator.toml if it exists).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Node registration and configuration API (:12082) and the dispatcher.
    ControlPlane,
    /// User API gateway (:12080): auth and tasks.
    UserGateway,
    /// Control plane and user gateway in one process.
    All,
    /// Apply database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cynode_service_kit::logging::init("info");
    let config = Config::load(cli.config.as_deref())?;
    let role = match cli.command {
        Command::Migrate => {
            let db = cynode_orchestrator::connect(&config, &config.database_url()?).await?;
            cynode_orchestrator::migrate(&db).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::ControlPlane => Role::ControlPlane,
        Command::UserGateway => Role::UserGateway,
        Command::All => Role::All,
    };
    let secrets = config.secrets(role != Role::UserGateway)?;
    let running = cynode_orchestrator::start(role, config, secrets)
        .await
        .context("orchestrator failed to start")?;
    cynode_service_kit::http::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
