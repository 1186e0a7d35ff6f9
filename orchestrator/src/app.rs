//! The process: [`start`] connects, migrates, builds the [`AppState`] and every engine's
//! handles, binds the listeners of its [`Role`] and starts the background work; [`Running`]
//! stops it all. Also the one-shot commands (`migrate`, `worker-token`, `mcp-token`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cynode_service_kit::secrets::Secret;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Secrets};
use crate::state::{AppState, http};
use crate::{
    auth, control_plane, dispatch, gateway, jobs, mcp, metrics, nodes, pm, ratelimit, readiness,
    signals, telemetry, users, worker_tokens, workflow,
};

/// The schema; `migrations/` is its only source.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Which servers this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ControlPlane,
    UserGateway,
    All,
}

impl Role {
    fn control_plane(self) -> bool {
        matches!(self, Self::ControlPlane | Self::All)
    }
    fn user_gateway(self) -> bool {
        matches!(self, Self::UserGateway | Self::All)
    }
}

/// A connection pool sized by `DATABASE_POOL_SIZE` (default 16: the dispatcher's concurrent
/// deliveries, its notification listener and request handlers share it).
/// The worker API token of node `slug`, decrypted: for an operator who must call that node's
/// worker API by hand (and the benchmarks, which do so on loopback).
pub async fn worker_token(
    config: &Config,
    secrets: &Secrets,
    slug: &str,
) -> anyhow::Result<Secret> {
    let db = connect(config, &secrets.database_url).await?;
    let row: Option<(uuid::Uuid, Option<String>)> =
        sqlx::query_as("SELECT id, worker_api_bearer_token FROM nodes WHERE node_slug = $1")
            .bind(slug)
            .fetch_optional(&db)
            .await?;
    let Some((id, Some(stored))) = row else {
        anyhow::bail!("node {slug} does not exist or has no worker token yet");
    };
    worker_tokens::TokenKeys::from_secrets(secrets)
        .open(id, &stored)
        .map_err(|e| anyhow::anyhow!("cannot decrypt the worker token of node {slug}: {e}"))
}

/// A short-lived MCP agent token (`cynode-orchestrator mcp-token`): system-level for the PM;
/// bound to a task's owner and the task (and job, for a sandbox agent) otherwise, after checking
/// that they exist and belong together.
pub async fn mcp_token(
    config: &Config,
    secrets: &Secrets,
    agent_type: mcp::AgentType,
    task_id: Option<uuid::Uuid>,
    job_id: Option<uuid::Uuid>,
    ttl: Duration,
) -> anyhow::Result<String> {
    let agent = match agent_type {
        mcp::AgentType::Pm => mcp::Agent::pm(),
        mcp::AgentType::Pa | mcp::AgentType::Sandbox => {
            let task_id = task_id.context("--task-id is required for this agent type")?;
            let db = connect(config, &secrets.database_url).await?;
            let (owner, project): (uuid::Uuid, Option<uuid::Uuid>) =
                sqlx::query_as("SELECT created_by, project_id FROM tasks WHERE id = $1")
                    .bind(task_id)
                    .fetch_optional(&db)
                    .await?
                    .with_context(|| format!("task {task_id} does not exist"))?;
            match agent_type {
                mcp::AgentType::Pa => mcp::Agent::analyst(owner, task_id),
                _ => {
                    let job_id = job_id.context("--job-id is required for a sandbox agent")?;
                    let of: Option<uuid::Uuid> =
                        sqlx::query_scalar("SELECT task_id FROM jobs WHERE id = $1")
                            .bind(job_id)
                            .fetch_optional(&db)
                            .await?;
                    anyhow::ensure!(
                        of == Some(task_id),
                        "job {job_id} is not a job of task {task_id}"
                    );
                    mcp::Agent::sandbox(owner, task_id, job_id, project)
                }
            }
        }
    };
    anyhow::ensure!(
        !ttl.is_zero() && ttl <= mcp::agent::MAX_TTL,
        "--ttl must be more than zero and at most 1h"
    );
    Ok(mcp::AgentKeys::derive(secrets.jwt_secret.expose().as_bytes()).issue(&agent, ttl))
}

pub async fn connect(config: &Config, url: &Secret) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(config.database_pool_size)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url.expose())
        .await
        // The URL may hold a password: name the variable, not the value.
        .context("cannot connect to PostgreSQL at DATABASE_URL")
}

/// Applies pending migrations (idempotent; concurrent callers serialise on sqlx's lock).
pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(db)
        .await
        .context("applying database migrations")
}

async fn listen(addr: SocketAddr, name: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the {name}"))
}

/// A started orchestrator. Dropping it does not stop it; call [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    pub control_plane_addr: Option<SocketAddr>,
    pub user_gateway_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub mcp_addr: Option<SocketAddr>,
    pub state: AppState,
}

impl Running {
    /// Stops accepting, lets requests and dispatches in flight finish (dispatches up to the
    /// dispatcher's grace), ends live-log streams, stops the workflow drivers (which release
    /// their leases) and returns once every task of the process has ended.
    pub async fn shutdown(self) {
        cynode_service_kit::notify::stopping();
        self.state.stop.cancel();
        self.state.tasks.close();
        self.state.tasks.wait().await;
    }
}

/// Connects, migrates, creates the bootstrap accounts, binds the listeners of `role`, starts the
/// dispatcher (control plane) and reports `READY=1`.
pub async fn start(role: Role, config: Config, secrets: Secrets) -> anyhow::Result<Running> {
    mcp::check_disabled(&config)?;
    // Bind before anything else: a port in use fails the start before the database is touched,
    // and an address chosen a moment ago (tests pick free ports) cannot be taken meanwhile by
    // our own outgoing connections.
    let control_plane_listener = match role.control_plane() {
        true => Some(listen(config.control_plane_listen_addr, "control plane").await?),
        false => None,
    };
    let user_gateway_listener = match role.user_gateway() {
        true => Some(listen(config.user_gateway_listen_addr, "user gateway").await?),
        false => None,
    };
    let mcp_listener = match role.control_plane() {
        true => Some(listen(config.mcp_listen_addr, "MCP gateway").await?),
        false => None,
    };
    let mcp_url = match &mcp_listener {
        Some(listener) => Some(match &config.mcp_public_url {
            Some(url) => url.clone(),
            None => format!(
                "http://{}{}",
                listener.local_addr()?,
                cynode_contracts::mcp::MCP_PATH
            ),
        }),
        None => None,
    };
    let metrics_listener = match config.metrics_listen_addr {
        Some(addr) => Some(listen(addr, "metrics").await?),
        None => None,
    };
    let db = connect(&config, &secrets.database_url).await?;
    migrate(&db).await?;
    users::bootstrap(&db, secrets.bootstrap_admin_password.as_ref()).await?;
    let token_keys = worker_tokens::TokenKeys::from_secrets(&secrets);
    nodes::reencrypt_worker_tokens(&db, &token_keys).await?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the worker API client")?;
    let (planner, planner_requests) = pm::planner::PmPlanner::new(jobs::ShellPlanner {
        sandbox_image: config.sandbox_image.clone(),
    });
    // The one way everything stops: every server and background task runs on `tasks` and ends
    // when `stop` is cancelled.
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let config = Arc::new(config);
    let worker_tokens = Arc::new(token_keys);
    let metrics = Arc::new(metrics::Metrics::default());
    let signals = signals::Signals::default();
    let pm = pm::ProjectManager {
        db: db.clone(),
        config: config.clone(),
        http: http.clone(),
        worker_tokens: worker_tokens.clone(),
        metrics: metrics.clone(),
        pm: Arc::new(pm::Pm::default()),
    };
    let mcp = mcp::Mcp {
        db: db.clone(),
        config: config.clone(),
        http: http.clone(),
        worker_tokens: worker_tokens.clone(),
        metrics: metrics.clone(),
        signals: signals.clone(),
    };
    let state = AppState {
        stop: stop.clone(),
        tasks: tasks.clone(),
        limiter: Arc::new(ratelimit::RateLimiter::new(config.rate_limit_per_minute)),
        keys: auth::Keys::new(secrets.jwt_secret.expose().as_bytes()),
        mcp_keys: Arc::new(mcp::AgentKeys::derive(
            secrets.jwt_secret.expose().as_bytes(),
        )),
        mcp_url,
        psk: secrets.node_registration_psk,
        wake: signals.wake.clone(),
        node_change: signals.node_change.clone(),
        planner: Arc::new(planner),
        pm: pm.clone(),
        workflow: workflow::engine::Engine {
            db: db.clone(),
            config: config.clone(),
            pm,
            mcp: mcp.clone(),
            drivers: Arc::new(workflow::Drivers::new(stop.clone(), tasks.clone())),
        },
        mcp,
        db,
        config,
        http,
        worker_tokens,
        metrics,
        workflow_token: secrets.workflow_runner_bearer_token,
    };
    if role.control_plane() && state.psk.is_none() {
        anyhow::bail!("the control plane needs NODE_REGISTRATION_PSK");
    }
    let serve = |listener: tokio::net::TcpListener, name: &'static str, router: axum::Router| {
        let local = listener.local_addr()?;
        tracing::info!(%local, "{name} listening");
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        tasks.spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "{name} server failed");
            }
        });
        anyhow::Ok(local)
    };
    let mut control_plane_addr = None;
    let mut user_gateway_addr = None;
    if let Some(listener) = control_plane_listener {
        let router = control_plane::router(state.clone());
        control_plane_addr = Some(serve(listener, "control plane", router)?);
        tasks.spawn(dispatch::run(state.dispatcher(), stop.clone()));
        tasks.spawn(telemetry::run(state.puller(), stop.clone()));
        // Prompt tasks left open (a restart, another process's creation) are driven from here.
        tasks.spawn(workflow::engine::resume_loop(state.workflow.clone()));
    }
    if let Some(listener) = user_gateway_listener {
        let router = gateway::router(state.clone());
        user_gateway_addr = Some(serve(listener, "user gateway", router)?);
    }
    let mut mcp_addr = None;
    if let Some(listener) = mcp_listener {
        // Open streams end at the stop, so that the server's graceful shutdown does not wait.
        let router = mcp::server::router(
            state.mcp.clone(),
            state.mcp_keys.clone(),
            stop.child_token(),
        );
        mcp_addr = Some(serve(listener, "MCP gateway", router)?);
    }
    let mut metrics_addr = None;
    if let Some(listener) = metrics_listener {
        metrics_addr = Some(serve(
            listener,
            "metrics",
            http::metrics_router(state.clone()),
        )?);
    }
    tasks.spawn(readiness::track_status(
        state.pm.clone(),
        state.node_change.clone(),
        stop.clone(),
    ));
    tasks.spawn(workflow::engine::drive_requested(
        state.workflow.clone(),
        planner_requests,
    ));
    cynode_service_kit::notify::ready("migrated and listening");
    Ok(Running {
        control_plane_addr,
        user_gateway_addr,
        metrics_addr,
        mcp_addr,
        state,
    })
}
