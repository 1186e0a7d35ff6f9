//! What the servers' handlers share: [`AppState`], the extractors that say who is calling
//! ([`extract`]) and what wraps every route ([`http`]). Engines never see [`AppState`]: each gets
//! the few handles it needs, built here (`AppState::nodes`, `AppState::logs` and the like).

mod extract;
pub mod http;

use std::sync::Arc;

use axum::extract::FromRef;
use cynode_service_kit::secrets::Secret;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::{
    auth, dispatch, jobs, mcp, metrics, nodes, pm, ratelimit, rbac, signals, task_logs, telemetry,
    users, worker_tokens, workflow,
};

/// What the servers' handlers share, and what every engine's handles are built from.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub keys: auth::Keys,
    /// `None` in a process that does not serve the control plane.
    pub psk: Option<Secret>,
    pub limiter: Arc<ratelimit::RateLimiter>,
    /// Wakes the dispatcher: new job, free slot, node change.
    pub wake: Arc<Notify>,
    /// Wakes the readiness status tracker.
    pub node_change: Arc<Notify>,
    /// Client for worker API calls.
    pub http: reqwest::Client,
    /// Decides what a new task runs.
    pub planner: Arc<dyn jobs::Planner>,
    /// The Project Manager: its selection and warm-up, and what its model calls need.
    pub pm: pm::ProjectManager,
    /// Encrypts and decrypts worker API tokens at rest.
    pub worker_tokens: Arc<worker_tokens::TokenKeys>,
    /// This process's Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The workflow API's bearer token; `None` closes the API.
    pub workflow_token: Option<Secret>,
    /// Signs and checks MCP agent tokens.
    pub mcp_keys: Arc<mcp::AgentKeys>,
    /// The MCP pipeline's handles.
    pub mcp: mcp::Mcp,
    /// The prompt workflow's handles, with this process's drivers.
    pub workflow: workflow::engine::Engine,
    /// The MCP endpoint URL handed to worker proxies (`MCP_PUBLIC_URL`, else this control
    /// plane's MCP listener); `None` in a process without one.
    pub mcp_url: Option<String>,
    /// Cancelled when the process stops: servers stop accepting, background tasks end, long
    /// streams (live logs) close so that the graceful shutdown does not wait for them.
    pub stop: CancellationToken,
    /// Every server and background task of the process; the shutdown waits for them.
    pub tasks: TaskTracker,
}

impl AppState {
    pub fn signals(&self) -> signals::Signals {
        signals::Signals {
            wake: self.wake.clone(),
            node_change: self.node_change.clone(),
        }
    }

    /// The node registry's handles.
    pub fn nodes(&self) -> nodes::Registry {
        nodes::Registry {
            db: self.db.clone(),
            config: self.config.clone(),
            keys: self.keys.clone(),
            worker_tokens: self.worker_tokens.clone(),
            psk: self.psk.clone(),
            mcp_url: self.mcp_url.clone(),
            signals: self.signals(),
        }
    }

    /// How routes ask the authorization module (and get denials audited).
    pub fn access(&self) -> rbac::Access {
        rbac::Access {
            db: self.db.clone(),
        }
    }

    /// What login and refresh need.
    pub fn sessions(&self) -> users::Sessions {
        users::Sessions {
            db: self.db.clone(),
            config: self.config.clone(),
            keys: self.keys.clone(),
        }
    }

    /// What a live-log stream needs.
    pub fn logs(&self) -> task_logs::Logs {
        task_logs::Logs {
            db: self.db.clone(),
            config: self.config.clone(),
            http: self.http.clone(),
            worker_tokens: self.worker_tokens.clone(),
            stop: self.stop.clone(),
            tasks: self.tasks.clone(),
        }
    }

    pub(crate) fn dispatcher(&self) -> dispatch::Dispatcher {
        dispatch::Dispatcher {
            db: self.db.clone(),
            config: self.config.clone(),
            http: self.http.clone(),
            worker_tokens: self.worker_tokens.clone(),
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
            mcp_keys: self.mcp_keys.clone(),
            mcp_url: self.mcp_url.clone(),
            planner: self.planner.clone(),
        }
    }

    pub(crate) fn puller(&self) -> telemetry::Puller {
        telemetry::Puller {
            db: self.db.clone(),
            config: self.config.clone(),
            http: self.http.clone(),
            worker_tokens: self.worker_tokens.clone(),
        }
    }
}

impl FromRef<AppState> for rbac::Access {
    fn from_ref(state: &AppState) -> Self {
        state.access()
    }
}

// Handlers below the edge take only what they use from the state.
impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for pm::ProjectManager {
    fn from_ref(state: &AppState) -> Self {
        state.pm.clone()
    }
}
