//! CyNodeAI worker API: the node's HTTP endpoint that runs the orchestrator's jobs in locked-down
//! Podman sandboxes (`node.md` §3-4).
//!
//! - [`config`]: flags and env, the bearer token;
//! - [`auth`]: constant-time bearer check;
//! - [`sandbox`]: request rules, the one lifecycle of every job (run, repeated delivery, stop,
//!   shutdown, leftovers of an earlier worker) and the Podman run;
//! - [`inference`]: the node's model for the orchestrator and for sandboxes (pod + sidecar);
//! - [`mcp`]: the orchestrator's MCP gateway for sandboxes (the same pod and sidecar, the
//!   job's grant attached by the worker);
//! - [`job_socket`]: the per-job Unix sockets behind the sidecar; [`body`]: capped bodies;
//! - [`ledger`]: finished results, kept for repeated deliveries;
//! - [`managed`]: the Project Manager's long-lived sandboxes (create, exec, files, delete);
//! - [`retention`]: removes finished jobs' directories after the retention;
//! - [`telemetry`]: the node-local telemetry database and the Telemetry API;
//! - [`readiness`]: what `/readyz` checks;
//! - [`routes`]: the axum router, and the jobs' routes; [`state`]: what its handlers share.
//!
//! After binding it confines itself with service-kit's strict hardening policy
//! ([`config::Config::hardening_policy`]).

pub mod auth;
pub mod body;
pub mod config;
pub mod inference;
pub mod job_socket;
pub mod ledger;
pub mod managed;
pub mod mcp;
pub mod metrics;
mod problems;
pub mod readiness;
pub mod retention;
pub mod routes;
pub mod sandbox;
pub mod state;
pub mod telemetry;

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use cynode_service_kit::http::shutdown_signal;
use cynode_service_kit::secrets::Secret;
use tokio::sync::{mpsc, watch};

use crate::auth::BearerToken;
use crate::config::{Config, ConfigError};
use crate::sandbox::{Lifecycle, Sandboxes};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the sandbox mount root {path}: {source}")]
    MountRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("self-hardening failed: {0}")]
    Hardening(#[from] cynode_service_kit::hardening::HardeningError),
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("--exit-with-parent: {0}")]
    Parent(String),
    #[error("inference: {0}")]
    Inference(String),
    #[error("MCP gateway: {0}")]
    Mcp(String),
    #[error(transparent)]
    Seccomp(#[from] sandbox::SeccompError),
    #[error("cannot open the telemetry database: {0}")]
    Telemetry(#[from] telemetry::StoreError),
}

/// Asks the kernel for SIGTERM when the parent dies; our SIGTERM handling then stops the jobs and
/// removes their containers as on any shutdown (a SIGKILL leaves them for the next start-up to
/// adopt). A parent that died before we asked is caught by
/// checking that we have not already been re-parented to init.
fn exit_with_parent() -> Result<(), StartError> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| StartError::Parent(format!("cannot set the parent-death signal: {e}")))?;
    if nix::unistd::getppid().as_raw() == 1 {
        return Err(StartError::Parent(
            "the parent process is already gone".into(),
        ));
    }
    Ok(())
}

/// Everything from a parsed command line to shutdown: read the token, prepare the mount root,
/// bind, harden the process, then serve until SIGTERM.
pub fn run(config: Config) -> Result<(), StartError> {
    if config.exit_with_parent {
        exit_with_parent()?;
    }
    let pods = pod_setup(&config)?;
    let limits = config
        .limits()?
        .with_inference(pods.as_ref().is_some_and(|p| p.inference.is_some()))
        .with_mcp(pods.as_ref().and_then(|p| p.mcp.clone()));
    let retention = config.job_retention()?;
    let token = config.bearer_token()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.mount_root)
        .map_err(|source| StartError::MountRoot {
            path: config.mount_root.clone(),
            source,
        })?;
    let seccomp_profile =
        sandbox::write_seccomp_profile(&config.seccomp_base_profile, &config.mount_root)?;
    // Before hardening: it creates `<state_dir>/telemetry`, which is all the worker may write
    // of the state directory afterwards.
    let telemetry = telemetry::Telemetry::open(config.state_dir(), config.node_slug.clone())?;
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    listener.set_nonblocking(true).map_err(StartError::Serve)?;
    // Bound before hardening too: afterwards the worker may not bind.
    let metrics_listener = config
        .metrics_listen
        .map(|addr| {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|source| StartError::Bind { addr, source })?;
            listener.set_nonblocking(true).map_err(StartError::Serve)?;
            Ok::<_, StartError>(listener)
        })
        .transpose()?;

    config.hardening_policy().apply()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Serve)?;
    let mut sandboxes = Sandboxes::new(&config.podman_socket, &config.mount_root)
        .with_seccomp(seccomp_profile)
        .with_telemetry(telemetry);
    if let Some(setup) = pods {
        sandboxes = sandboxes.with_pods(setup);
    }
    if let Some(listener) = metrics_listener {
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(StartError::Serve)?;
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
        // Ends with the process; a scrape in flight at exit is of no consequence.
        runtime.spawn(async move {
            if let Err(e) = axum::serve(listener, metrics::router()).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }
    runtime
        .block_on(serve(
            listener,
            limits,
            sandboxes,
            token,
            config.request_limit(),
            retention,
        ))
        .map_err(StartError::Serve)
}

/// The node's model server (`--inference-url`), the orchestrator's MCP gateway
/// (`--mcp-gateway-url`) and the sidecar binary, when either is set. A missing or dynamically
/// linked sidecar does not stop the worker (the orchestrator's inference routes still work); it
/// is logged here and fails every job that needs a pod with the same reason.
fn pod_setup(config: &Config) -> Result<Option<sandbox::PodSetup>, StartError> {
    let inference = match &config.inference_url {
        Some(_) if config.inference_timeout_secs == 0 => {
            return Err(StartError::Inference(
                "--inference-timeout-secs must be positive".into(),
            ));
        }
        Some(url) => Some(
            inference::Backend::new(
                url.clone(),
                std::time::Duration::from_secs(config.inference_timeout_secs),
            )
            .map_err(|e| StartError::Inference(e.to_string()))?,
        ),
        None => None,
    };
    let mcp = match &config.mcp_gateway_url {
        Some(url) => {
            Some(mcp::McpGateway::new(url.clone()).map_err(|e| StartError::Mcp(e.to_string()))?)
        }
        None => None,
    };
    if inference.is_none() && mcp.is_none() {
        return Ok(None);
    }
    let sidecar = inference::sidecar::locate(config.inference_proxy_binary.as_deref());
    match &sidecar {
        Ok(path) => tracing::info!(
            sidecar = %path.display(),
            inference = ?config.inference_url.as_ref().map(url::Url::as_str),
            mcp = ?config.mcp_gateway_url.as_ref().map(url::Url::as_str),
            "inference or MCP enabled for sandboxes"
        ),
        Err(reason) => {
            tracing::error!(%reason, "inference and MCP jobs will fail: the sidecar cannot run")
        }
    }
    Ok(Some(sandbox::PodSetup {
        sidecar,
        sidecar_image: config.default_image.clone(),
        inference,
        mcp,
    }))
}

/// What the retention sweep (a blocking thread) calls to empty a workspace whose files belong
/// to a job's user namespace: a cleanup container in the node's default image.
fn workspace_emptier(sandboxes: &Sandboxes, image: &str) -> retention::EmptyWorkspace {
    let (sandboxes, image) = (sandboxes.clone(), image.to_owned());
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |job_id, workspace| {
        runtime
            .block_on(sandboxes.empty_workspace(job_id, workspace, &image))
            .map_err(|e| e.to_string())
    })
}

/// Resolves when the server is to stop accepting connections. SIGTERM/SIGINT raise `stop`
/// first, so runs still going are interrupted. The drain signal
/// ([`cynode_contracts::worker_cli::DRAIN_SIGNAL`], from the node manager before it replaces
/// this worker) leaves `stop` down: requests in flight are answered and every run ends on its
/// own, while a SIGTERM that comes later still raises it.
async fn shutdown_or_drain(stop: Arc<watch::Sender<bool>>) {
    let drain = async {
        match drain_signal() {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for the drain signal");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = shutdown_signal() => {
            let _ = stop.send(true);
        }
        () = drain => {
            tracing::info!("drain signal: no new requests; running jobs finish, then the worker exits");
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
        }
    }
}

fn drain_signal() -> std::io::Result<tokio::signal::unix::Signal> {
    use std::str::FromStr;
    let signal = nix::sys::signal::Signal::from_str(cynode_contracts::worker_cli::DRAIN_SIGNAL)
        .map_err(std::io::Error::other)?;
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(signal as i32))
}

/// Serves the API on an already bound listener until SIGTERM/SIGINT (or a drain). First it takes over what an
/// earlier instance on this mount root left on the Podman socket; at shutdown, jobs still
/// running are stopped (interrupted) and their containers removed before it returns. Finished
/// jobs' directories older than `job_retention` are removed in the background.
pub async fn serve(
    listener: std::net::TcpListener,
    limits: sandbox::Limits,
    sandboxes: Sandboxes,
    token: Secret,
    request_limit: usize,
    job_retention: std::time::Duration,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (stop, shutdown) = watch::channel(false);
    let (running, mut all_done) = mpsc::channel::<()>(1);
    let ledger = ledger::JobLedger::new(sandboxes.mount_root().to_owned());
    let empty_workspace = workspace_emptier(&sandboxes, limits.default_image());
    let telemetry = sandboxes.telemetry().clone();
    let jobs = Lifecycle::new(
        sandboxes,
        ledger.clone(),
        limits.max_output_bytes(),
        shutdown.clone(),
        running,
    );
    // Before the sweeper and the first delivery: adopted runs hold their jobs' turns by then.
    match jobs.adopt_leftovers().await {
        Ok(0) => {}
        Ok(found) => tracing::info!(found, "took over sandboxes an earlier worker left"),
        Err(e) => {
            tracing::error!(error = %e, "cannot list sandboxes an earlier worker left; a delivery of one of their jobs takes it over")
        }
    }
    let limits = Arc::new(limits);
    let managed = managed::ManagedSandboxes::new(
        jobs.sandboxes().clone(),
        Arc::clone(&limits),
        ledger.clone(),
        empty_workspace.clone(),
    );
    match managed.sweep_leftovers().await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed managed sandboxes an earlier worker left"),
        Err(e) => {
            tracing::error!(error = %e, "cannot list managed sandboxes an earlier worker left")
        }
    }
    let managed_sweeper = tokio::spawn(managed.clone().maintain(shutdown.clone()));
    let telemetry_sweeper = tokio::spawn(telemetry::maintain(telemetry.clone(), shutdown.clone()));
    let sweeper = tokio::spawn(retention::run(
        ledger,
        job_retention,
        empty_workspace,
        shutdown,
    ));
    let (default_image, addr) = (limits.default_image().to_owned(), listener.local_addr()?);
    let state = AppState {
        limits,
        jobs,
        managed,
    };
    let app = routes::router(state, BearerToken::new(token), request_limit);
    tracing::info!(%addr, "worker API listening");
    let started = serde_json::Map::from_iter([
        ("addr".to_owned(), addr.to_string().into()),
        ("build_version".to_owned(), env!("CARGO_PKG_VERSION").into()),
        ("default_image".to_owned(), default_image.into()),
    ]);
    telemetry
        .service_log("info", "worker API started", started)
        .await;
    let stop = Arc::new(stop);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_or_drain(Arc::clone(&stop)))
        .await;
    // Nothing is ever sent: `None` means the last run has dropped its sender.
    let _ = all_done.recv().await;
    // After a drain the flag is still down (every run ended on its own); the sweepers stop now.
    let _ = stop.send(true);
    let _ = sweeper.await;
    let _ = telemetry_sweeper.await;
    let _ = managed_sweeper.await;
    let stopped = match &served {
        Ok(()) => serde_json::Map::new(),
        Err(e) => serde_json::Map::from_iter([("error".to_owned(), e.to_string().into())]),
    };
    telemetry
        .service_log("info", "worker API stopped", stopped)
        .await;
    served
}
