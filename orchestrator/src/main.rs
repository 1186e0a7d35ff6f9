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
    /// Print node SLUG's worker API token (decrypted with the worker token key) and exit.
    WorkerToken {
        #[arg(long, value_name = "SLUG")]
        node: String,
    },
    /// Print a short-lived MCP agent token and exit: `--agent pm` (system-level), or `--agent
    /// sandbox` / `--agent pa` bound to a task (and job). For operators and external agents
    /// run by hand; the orchestrator issues its own agents' tokens itself.
    McpToken {
        #[arg(long, value_name = "pm|pa|sandbox")]
        agent: cynode_orchestrator::mcp::AgentType,
        #[arg(long, value_name = "UUID", required_if_eq_any = [("agent", "pa"), ("agent", "sandbox")])]
        task_id: Option<uuid::Uuid>,
        #[arg(long, value_name = "UUID", required_if_eq("agent", "sandbox"))]
        job_id: Option<uuid::Uuid>,
        /// Lifetime (e.g. 5m); default MCP_TOKEN_TTL, at most 1h.
        #[arg(long, value_name = "DURATION", value_parser = cynode_service_kit::duration::parse)]
        ttl: Option<std::time::Duration>,
    },
}

/// `EX_CONFIG`: the configuration (file, env or secrets) is wrong. The units list it in
/// `RestartPreventExitStatus=`, so a bad setting gives one clear journal line, not a restart loop.
const EXIT_CONFIG: u8 = 78;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            tracing::error!("configuration error: {e:#}");
            std::process::ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Other(e)) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(anyhow::Error),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self::Other(e.into())
    }
}

async fn run() -> Result<(), Failure> {
    let cli = Cli::parse();
    cynode_service_kit::logging::init("info");
    let config = Config::load(cli.config.as_deref()).map_err(|e| Failure::Config(e.into()))?;
    cynode_orchestrator::mcp::check_disabled(&config).map_err(|e| Failure::Config(e.into()))?;
    let role = match cli.command {
        Command::Migrate => {
            let db = cynode_orchestrator::connect(&config, &config.database_url()?).await?;
            cynode_orchestrator::migrate(&db).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::WorkerToken { node } => {
            let secrets = config
                .secrets(true)
                .map_err(|e| Failure::Config(e.into()))?;
            let token = cynode_orchestrator::worker_token(&config, &secrets, &node).await?;
            println!("{}", token.expose());
            return Ok(());
        }
        Command::McpToken {
            agent,
            task_id,
            job_id,
            ttl,
        } => {
            let secrets = config
                .secrets(false)
                .map_err(|e| Failure::Config(e.into()))?;
            let ttl = ttl.unwrap_or(config.mcp_token_ttl);
            let token =
                cynode_orchestrator::mcp_token(&config, &secrets, agent, task_id, job_id, ttl)
                    .await?;
            println!("{token}");
            return Ok(());
        }
        Command::ControlPlane => Role::ControlPlane,
        Command::UserGateway => Role::UserGateway,
        Command::All => Role::All,
    };
    let secrets = config
        .secrets(role != Role::UserGateway)
        .map_err(|e| Failure::Config(e.into()))?;
    let running = cynode_orchestrator::start(role, config, secrets)
        .await
        .context("orchestrator failed to start")?;
    cynode_service_kit::http::shutdown_signal().await;
    running.shutdown().await;
    Ok(())
}
