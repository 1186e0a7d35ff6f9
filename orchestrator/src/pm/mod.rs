//! The Project Manager: the model the orchestrator thinks with (orchestrator spec §3).
//!
//! - [`select`]: which node and model (pure algorithm + the reports it reads).
//! - This module: the current selection and its warm-up ([`refresh`]), what readiness says
//!   about it ([`Pm::reason`]), the route to it ([`pm_route`]), one model call ([`complete`])
//!   and a conversation answered by it ([`chat_answer`], the `cynodeai.pm` chat model).
//! - [`planner`]: prompt tasks on the jobs seam (driven by `crate::workflow`) and their
//!   `task_steps` record.
//!
//! Every call goes through `node_inference`, i.e. through the selected node's worker API.

pub mod planner;
pub mod select;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::auth::Principal;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::node_inference::{self, ModelRoute};
use crate::usage::{self, ModelCall};
use crate::worker_tokens::TokenKeys;
pub use planner::PmUsage;

/// Where the Project Manager stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmStatus {
    /// Not looked at yet.
    Unknown,
    NoNode,
    Unavailable {
        model: String,
    },
    Warming {
        model: String,
        node: String,
    },
    Ready {
        model: String,
        node: String,
    },
}

impl PmStatus {
    /// Why the orchestrator is not ready, in the forms operators read in `/readyz` and
    /// `STATUS=`; `None` when the PM model answered.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Unknown => Some("project manager model not selected yet".into()),
            Self::NoNode => Some("no dispatchable node".into()),
            Self::Unavailable { model } => Some(format!(
                "project manager model {model} not available on any node"
            )),
            Self::Warming { model, node } => Some(format!("warming up {model} on {node}")),
            Self::Ready { .. } => None,
        }
    }
}

/// The Project Manager's selection in this process (what readiness reports) and the single
/// flight of its warm-up.
#[derive(Debug)]
pub struct Pm {
    status: Mutex<PmStatus>,
    /// Single flight for [`refresh`].
    refreshing: tokio::sync::Mutex<()>,
}

/// The Project Manager and what its calls need: the pool and settings, the client and token keys
/// that reach nodes' worker APIs, and the metrics its calls count in. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProjectManager {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub http: reqwest::Client,
    pub worker_tokens: Arc<TokenKeys>,
    pub metrics: Arc<Metrics>,
    pub pm: Arc<Pm>,
}

impl ProjectManager {
    pub fn status(&self) -> PmStatus {
        self.pm.status()
    }

    pub fn reason(&self) -> Option<String> {
        self.pm.reason()
    }
}

impl Default for Pm {
    fn default() -> Self {
        Self {
            status: Mutex::new(PmStatus::Unknown),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }
}

impl Pm {
    pub fn status(&self) -> PmStatus {
        self.status.lock().expect("pm status").clone()
    }

    pub fn reason(&self) -> Option<String> {
        self.status().reason()
    }

    fn set(&self, status: PmStatus) {
        let mut current = self.status.lock().expect("pm status");
        if *current != status {
            tracing::info!(from = ?*current, to = ?status, "project manager status");
            *current = status;
        }
    }

    /// A call to the selected model failed: readiness drops until a warm-up answers again.
    pub fn lost(&self, model: &str, node: &str) {
        let mut current = self.status.lock().expect("pm status");
        if *current
            == (PmStatus::Ready {
                model: model.into(),
                node: node.into(),
            })
        {
            tracing::warn!(model, node, "project manager model stopped answering");
            *current = PmStatus::Warming {
                model: model.into(),
                node: node.into(),
            };
        }
    }
}

/// Selects the PM node and model again and warms the model up when the choice is new (or
/// not warm yet): one 1-token chat completion through the node's worker API. Concurrent calls
/// return at once while one runs.
pub async fn refresh(state: &ProjectManager) {
    let Ok(_flight) = state.pm.refreshing.try_lock() else {
        return;
    };
    let config = &state.config;
    let (dispatchable, candidates) =
        match select::candidates(&state.db, config.node_stale_after).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "project manager selection: reading nodes failed");
                return;
            }
        };
    let (node_slug, model, reasons) =
        match select::select(&config.pm_model, dispatchable, &candidates) {
            select::Selection::NoNode => return state.pm.set(PmStatus::NoNode),
            select::Selection::Unavailable { model } => {
                return state.pm.set(PmStatus::Unavailable { model });
            }
            select::Selection::Chosen {
                node_slug,
                model,
                reasons,
            } => (node_slug, model, reasons),
        };
    let ready = PmStatus::Ready {
        model: model.clone(),
        node: node_slug.clone(),
    };
    if state.pm.status() == ready {
        return;
    }
    tracing::info!(node = %node_slug, %model, ?reasons, "project manager model selected");
    state.pm.set(PmStatus::Warming {
        model: model.clone(),
        node: node_slug.clone(),
    });
    let Some(route) = route_on(state, &model, &node_slug).await else {
        return;
    };
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
        "stream": false,
    });
    let started = Instant::now();
    match node_inference::chat(&state.http, &route, &body, config.pm_model_timeout).await {
        Ok(answer) => match answer.json::<Value>().await {
            Ok(_) => {
                tracing::info!(node = %node_slug, %model, ms = started.elapsed().as_millis() as u64, "project manager model warmed up");
                state.pm.set(ready);
            }
            Err(e) => tracing::warn!(error = %e, "warm-up answer unreadable"),
        },
        Err(e) => tracing::warn!(error = %e, node = %node_slug, %model, "warm-up failed"),
    }
}

async fn route_on(state: &ProjectManager, model: &str, node_slug: &str) -> Option<ModelRoute> {
    match node_inference::nodes_serving(
        &state.db,
        state.config.node_stale_after,
        model,
        &state.worker_tokens,
    )
    .await
    {
        Ok(routes) => routes.into_iter().find(|r| r.node_slug == node_slug),
        Err(e) => {
            tracing::warn!(error = %e, "reading model routes failed");
            None
        }
    }
}

/// The currently selected and warmed-up PM: its node's route and the model.
pub async fn pm_route(state: &ProjectManager) -> Option<(ModelRoute, String)> {
    let PmStatus::Ready { model, node } = state.pm.status() else {
        return None;
    };
    let route = route_on(state, &model, &node).await?;
    Some((route, model))
}

/// What the PM answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmReply {
    pub content: String,
    /// The model that answered (the selected PM model, e.g. `qwen3.5:0.8b`).
    pub model: String,
    pub usage: PmUsage,
    /// Wall time of the call.
    pub elapsed: Duration,
}

/// Why the PM gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmError {
    /// No PM model is ready; the text is readiness's reason.
    #[error("the project manager model is not available: {0}")]
    Unavailable(String),
    /// The node or its model server failed.
    #[error("the project manager model failed: {0}")]
    Backend(String),
}

/// One chat completion (non-streaming) on `route`: `body` gets `model` set.
pub async fn complete(
    state: &ProjectManager,
    route: &ModelRoute,
    model: &str,
    mut body: Value,
) -> Result<PmReply, PmError> {
    body["model"] = json!(model);
    body["stream"] = json!(false);
    let started = Instant::now();
    let failed = |e: String| {
        state.pm.lost(model, &route.node_slug);
        PmError::Backend(e)
    };
    let answer = node_inference::chat(&state.http, route, &body, state.config.pm_model_timeout)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let answer: Value = answer
        .json()
        .await
        .map_err(|e| failed(format!("the node's answer was unreadable: {e}")))?;
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| failed("the answer has no choices[0].message.content".into()))?
        .to_owned();
    let count = |k: &str| answer["usage"][k].as_u64().unwrap_or(0);
    let reply = PmReply {
        content,
        model: answer["model"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or(model)
            .to_owned(),
        usage: PmUsage {
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
        },
        elapsed: started.elapsed(),
    };
    state.metrics.pm_call(&reply.model, reply.elapsed);
    state.metrics.tokens(
        "pm",
        &reply.model,
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    );
    Ok(reply)
}

/// The system message of a conversation with the PM.
pub const CHAT_BRIEF: &str = "You are the CyNodeAI project manager, a helpful assistant. Answer the user's last message directly and concisely.";

/// Answers a conversation (OpenAI `messages`) through the PM model: one answer, no sandbox
/// steps. Records the call's token usage against `principal` (no task); callers must not
/// record it again. `PmReply::model` is the underlying model, not the Project Manager's
/// model id (`cynode_contracts::user::PM_MODEL`).
pub async fn chat_answer(
    state: &ProjectManager,
    principal: Principal,
    messages: Vec<Value>,
) -> Result<PmReply, PmError> {
    let Some((route, model)) = pm_route(state).await else {
        // Maybe nobody looked yet: one selection attempt before giving up.
        refresh(state).await;
        let Some(found) = pm_route(state).await else {
            return Err(PmError::Unavailable(state.pm.reason().unwrap_or_else(
                || "project manager model not selected yet".into(),
            )));
        };
        return answer(state, principal, messages, found).await;
    };
    answer(state, principal, messages, (route, model)).await
}

async fn answer(
    state: &ProjectManager,
    principal: Principal,
    messages: Vec<Value>,
    (route, model): (ModelRoute, String),
) -> Result<PmReply, PmError> {
    let mut all = vec![json!({"role": "system", "content": CHAT_BRIEF})];
    all.extend(messages);
    let reply = complete(
        state,
        &route,
        &model,
        json!({"messages": all, "max_tokens": state.config.pm_max_tokens}),
    )
    .await?;
    if let Err(e) = usage::record(
        &state.db,
        principal,
        &ModelCall {
            task_id: None,
            model: &reply.model,
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
        },
    )
    .await
    {
        tracing::error!(error = %e, "recording chat token usage failed");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reasons_have_the_documented_forms() {
        assert_eq!(PmStatus::NoNode.reason().unwrap(), "no dispatchable node");
        assert_eq!(
            PmStatus::Unavailable { model: "m".into() }
                .reason()
                .unwrap(),
            "project manager model m not available on any node"
        );
        assert_eq!(
            PmStatus::Warming {
                model: "m".into(),
                node: "n".into()
            }
            .reason()
            .unwrap(),
            "warming up m on n"
        );
        assert_eq!(
            PmStatus::Ready {
                model: "m".into(),
                node: "n".into()
            }
            .reason(),
            None
        );
    }

    #[test]
    fn a_lost_model_drops_only_the_current_selection() {
        let pm = Pm::default();
        pm.set(PmStatus::Ready {
            model: "m".into(),
            node: "n".into(),
        });
        pm.lost("other", "n");
        assert!(pm.reason().is_none());
        pm.lost("m", "n");
        assert_eq!(pm.reason().unwrap(), "warming up m on n");
    }
}
