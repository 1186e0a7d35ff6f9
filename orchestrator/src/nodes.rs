//! Node control plane: registration (PSK → node JWT), capability ingest, configuration delivery
//! with a ULID `config_version`, and config acknowledgements.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_contracts::node::{
    BootstrapEndpoints, BootstrapOrchestrator, ConfigAckStatus, ConfigEndpoints,
    ConfigOrchestrator, InferenceBackend, InferenceMode, NodeAuth, NodeBootstrapPayload,
    NodeCapabilityReport, NodeConfigAck, NodeConfigurationPayload, NodeConstraints,
    WorkerApiConfig,
};
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    DrainRequest, MAX_DRAIN_DEADLINE_SECONDS, NodeInfo, NodeList, NodeState, NodeTelemetry,
};
use cynode_contracts::worker::SandboxResources;
use cynode_contracts::{PAYLOAD_VERSION, check_version};
use cynode_service_kit::secrets::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::auth::{self, CurrentNode, Keys, TokenType};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::signals::Signals;
use crate::worker_tokens::{Opened, TokenKeys};
use crate::{jobs, scheduler};

/// What the node registry's writes need besides the pool: the settings, the keys it signs node
/// JWTs and seals worker tokens with, the PSK that admits new nodes (`None` in a process
/// without the control plane), the MCP URL nodes are given, and the signals a node's change
/// raises.
#[derive(Debug, Clone)]
pub struct Registry {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub keys: Keys,
    pub worker_tokens: Arc<TokenKeys>,
    pub psk: Option<Secret>,
    pub mcp_url: Option<String>,
    pub signals: Signals,
}

use cynode_contracts::routes::node::{
    CAPABILITY as CAPABILITY_PATH, CONFIG as CONFIG_PATH, REGISTER as REGISTER_PATH,
};

/// What a `config_version` stands for. Equal content keeps the version; any change issues a new
/// ULID, so nodes can tell a new configuration by string comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ConfigContent {
    worker_api_target_url: Option<String>,
    inference_backend: InferenceBackend,
    /// The orchestrator's caps on the node's sandbox limits: changing them is a new
    /// configuration. Left out when there are none, so content stored before caps existed is
    /// still equal (no new version, no node restart, for an upgrade alone).
    #[serde(default, skip_serializing_if = "SandboxResources::is_empty")]
    sandbox_limits: SandboxResources,
}

fn validate_report(report: &NodeCapabilityReport) -> Result<()> {
    check_version(report.version)?;
    let slug = &report.node.node_slug;
    if slug.trim().is_empty() {
        return Err(Problem::validation("capability.node.node_slug must not be empty").into());
    }
    if slug.len() > 128 || slug.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Problem::validation(
            "capability.node.node_slug must be at most 128 characters without spaces or control characters",
        )
        .into());
    }
    if let Some(worker) = &report.worker_api {
        let ok = url::Url::parse(&worker.base_url)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(Problem::validation(format!(
                "capability.worker_api.base_url {:?} is not an http(s) URL",
                worker.base_url
            ))
            .into());
        }
    }
    Ok(())
}

/// The spec's first-match "don't start" rules, then the variant by GPU vendor (rocm > cuda > cpu).
fn inference_backend(config: &Config, report: &NodeCapabilityReport) -> InferenceBackend {
    let inference = report.inference.as_ref();
    let enabled = inference.is_some_and(|i| {
        i.supported && !i.existing_service && i.mode != Some(InferenceMode::Disabled)
    }) && !report.node.labels.iter().any(|l| l == "sandbox_only");
    let features = || report.gpu.devices.iter().flat_map(|d| d.features.keys());
    let variant = if features().any(|k| k.starts_with("rocm")) {
        "rocm"
    } else if features().any(|k| k.starts_with("cuda")) {
        "cuda"
    } else {
        "cpu"
    };
    InferenceBackend {
        enabled,
        image: (!config.node_inference_image.is_empty())
            .then(|| config.node_inference_image.clone()),
        variant: Some(variant.to_owned()),
        port: config.node_inference_port,
        env: Default::default(),
        selected_model: config.inference_model.clone(),
        command: config.node_inference_command.clone(),
    }
}

fn content_for(state: &Registry, report: &NodeCapabilityReport) -> ConfigContent {
    let config = &state.config;
    ConfigContent {
        worker_api_target_url: report
            .worker_api
            .as_ref()
            .map(|w| w.base_url.trim_end_matches('/').to_owned()),
        inference_backend: inference_backend(config, report),
        sandbox_limits: config.node_sandbox_limits,
    }
}

/// The snapshot, and a hash of what the node reported leaving out when it reported it, so an
/// unchanged node's periodic reports hash alike.
fn capability_hash(report: &NodeCapabilityReport) -> Result<(Value, String)> {
    let snapshot = serde_json::to_value(report).map_err(Error::internal)?;
    let mut capability = snapshot.clone();
    if let Some(fields) = capability.as_object_mut() {
        fields.remove("reported_at");
    }
    // serde_json's map is ordered, so equal reports hash equally.
    let bytes = serde_json::to_vec(&capability).map_err(Error::internal)?;
    Ok((
        snapshot,
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
    ))
}

/// Stores the snapshot when the capability changed since the newest one (periodic reports of
/// an unchanged node add no rows) and moves the node to the configuration it implies (new ULID
/// if it differs from the current one).
async fn ingest(
    tx: &mut sqlx::PgConnection,
    state: &Registry,
    node_id: Uuid,
    report: &NodeCapabilityReport,
) -> Result<()> {
    let (snapshot, hash) = capability_hash(report)?;
    sqlx::query(
        "INSERT INTO node_capabilities (id, node_id, reported_at, capability_hash, capability_snapshot)
         SELECT $1, $2, $3, $4, $5
         WHERE (SELECT capability_hash FROM node_capabilities WHERE node_id = $2
                ORDER BY created_at DESC LIMIT 1) IS DISTINCT FROM $4",
    )
    .bind(Uuid::new_v4())
    .bind(node_id)
    .bind(report.reported_at)
    .bind(&hash)
    .bind(&snapshot)
    .execute(&mut *tx)
    .await?;
    let content = serde_json::to_value(content_for(state, report)).map_err(Error::internal)?;
    sqlx::query(
        "UPDATE nodes SET
            capability_hash = $2, capability_reports = capability_reports + 1,
            last_capability_at = now(), last_seen_at = now(), updated_at = now(),
            worker_api_target_url = $3->>'worker_api_target_url',
            config_version = CASE WHEN config_content = $3 THEN config_version ELSE $4 END,
            config_content = $3
         WHERE id = $1",
    )
    .bind(node_id)
    .bind(&hash)
    .bind(&content)
    .bind(ulid::Ulid::new().to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `POST /v1/nodes/register`. Returns the bootstrap payload and whether the node is new.
pub async fn register(
    state: &Registry,
    psk: &str,
    report: &NodeCapabilityReport,
    proof: Option<&str>,
) -> Result<(NodeBootstrapPayload, bool)> {
    let expected = state
        .psk
        .as_ref()
        .ok_or_else(|| Error::internal("control plane runs without NODE_REGISTRATION_PSK"))?;
    if !bool::from(psk.as_bytes().ct_eq(expected.expose().as_bytes())) {
        tracing::warn!(node_slug = %report.node.node_slug, "registration with a wrong PSK");
        return Err(Problem::unauthorized("registration pre-shared key is wrong").into());
    }
    validate_report(report)?;
    let well_formed =
        |p: &str| p.len() == 64 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if proof.is_some_and(|p| !well_formed(p)) {
        return Err(Problem::validation("node_secret must be 64 lowercase hex characters").into());
    }
    let slug = &report.node.node_slug;
    let mut tx = state.db.begin().await?;
    // A known slug is registered again only by the node that holds its secret.
    let known: Option<(Option<Vec<u8>>,)> =
        sqlx::query_as("SELECT node_secret_hash FROM nodes WHERE node_slug = $1 FOR UPDATE")
            .bind(slug)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((Some(hash),)) = &known {
        let ok = proof.is_some_and(|p| bool::from(auth::sha256(p).ct_eq(hash)));
        if !ok {
            tracing::warn!(node_slug = %slug, presented = proof.is_some(), "re-registration without the node's secret");
            return Err(Problem::unauthorized(format!(
                "node {slug:?} is registered: registering it again needs its node_secret"
            ))
            .into());
        }
    }
    // Issued to a new node and to one registered before identities existed.
    let issued = match &known {
        Some((Some(_),)) => None,
        _ => Some(auth::random_token()),
    };
    let content = serde_json::to_value(content_for(state, report)).map_err(Error::internal)?;
    let new_id = Uuid::new_v4();
    let created = sqlx::query(
        "INSERT INTO nodes (id, node_slug, status, config_version, config_content, worker_api_bearer_token)
         VALUES ($1, $2, 'active', $3, $4, $5) ON CONFLICT (node_slug) DO NOTHING",
    )
    .bind(new_id)
    .bind(slug)
    .bind(ulid::Ulid::new().to_string())
    .bind(&content)
    .bind(state.worker_tokens.issue(new_id).1)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    // A known node keeps its token (a running worker still holds it) and becomes active again,
    // unless an admin drained it.
    let (node_id, config_version, has_token): (Uuid, String, bool) = sqlx::query_as(
        "UPDATE nodes SET updated_at = now(),
            status = CASE WHEN status = $2 THEN $2 ELSE $3 END
         WHERE node_slug = $1 RETURNING id, config_version, worker_api_bearer_token IS NOT NULL",
    )
    .bind(slug)
    .bind(NodeState::Drained.as_str())
    .bind(NodeState::Active.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if let Some(secret) = &issued {
        sqlx::query("UPDATE nodes SET node_secret_hash = $2 WHERE id = $1")
            .bind(node_id)
            .bind(auth::sha256(secret))
            .execute(&mut *tx)
            .await?;
    }
    if !has_token {
        sqlx::query("UPDATE nodes SET worker_api_bearer_token = $2 WHERE id = $1")
            .bind(node_id)
            .bind(state.worker_tokens.issue(node_id).1)
            .execute(&mut *tx)
            .await?;
    }
    ingest(&mut tx, state, node_id, report).await?;
    jobs::recheck_waiting(&mut tx).await?;
    tx.commit().await?;
    tracing::info!(node_slug = %slug, created, "node registered");
    state.signals.changed();

    let (mut claims, expires_at) = Keys::claims(
        TokenType::Node,
        node_id.to_string(),
        state.config.jwt_node_duration,
    );
    claims.node_id = Some(node_id);
    claims.node_slug = Some(slug.clone());
    let base = &state.config.public_url;
    Ok((
        NodeBootstrapPayload {
            version: PAYLOAD_VERSION,
            issued_at: Utc::now(),
            orchestrator: BootstrapOrchestrator {
                base_url: base.clone(),
                endpoints: BootstrapEndpoints {
                    worker_registration_url: format!("{base}{REGISTER_PATH}"),
                    node_config_url: format!("{base}{CONFIG_PATH}"),
                    node_report_url: format!("{base}{CAPABILITY_PATH}"),
                },
            },
            auth: NodeAuth {
                node_jwt: state.keys.sign(&claims)?,
                expires_at,
                node_secret: issued,
            },
            initial_config_version: Some(config_version),
        },
        created,
    ))
}

/// Whether node `id` is still registered as `slug` (a node JWT of a revoked node is refused).
pub async fn registered(db: &PgPool, id: Uuid, slug: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM nodes WHERE id = $1 AND node_slug = $2)")
            .bind(id)
            .bind(slug)
            .fetch_one(db)
            .await?,
    )
}

fn same_node(node: &CurrentNode, slug: &str, what: &str) -> Result<()> {
    if node.slug == slug {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "{what} names node {slug:?} but the token belongs to node {:?}",
            node.slug
        ))
        .into())
    }
}

/// `POST /v1/nodes/capability`.
pub async fn report_capability(
    state: &Registry,
    node: &CurrentNode,
    report: &NodeCapabilityReport,
) -> Result<()> {
    validate_report(report)?;
    same_node(node, &report.node.node_slug, "the capability report")?;
    let mut tx = state.db.begin().await?;
    ingest(&mut tx, state, node.id, report).await?;
    jobs::recheck_waiting(&mut tx).await?;
    tx.commit().await?;
    state.signals.changed();
    Ok(())
}

/// `GET /v1/nodes/config`.
pub async fn configuration(
    state: &Registry,
    node: &CurrentNode,
) -> Result<NodeConfigurationPayload> {
    let mut tx = state.db.begin().await?;
    // The orchestrator's own settings (model, image) may have changed since the last report.
    let latest: Option<(Value,)> = sqlx::query_as(
        "SELECT capability_snapshot FROM node_capabilities WHERE node_id = $1
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(node.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((snapshot,)) = latest {
        let report: NodeCapabilityReport =
            serde_json::from_value(snapshot).map_err(Error::internal)?;
        let content = serde_json::to_value(content_for(state, &report)).map_err(Error::internal)?;
        sqlx::query(
            "UPDATE nodes SET config_version = $3, config_content = $2, updated_at = now()
             WHERE id = $1 AND config_content <> $2",
        )
        .bind(node.id)
        .bind(&content)
        .bind(ulid::Ulid::new().to_string())
        .execute(&mut *tx)
        .await?;
    }
    let (config_version, content, token): (String, Value, Option<String>) = sqlx::query_as(
        "UPDATE nodes SET last_seen_at = now() WHERE id = $1
         RETURNING config_version, config_content, worker_api_bearer_token",
    )
    .bind(node.id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let content: ConfigContent = serde_json::from_value(content).map_err(Error::internal)?;
    let base = &state.config.public_url;
    Ok(NodeConfigurationPayload {
        version: PAYLOAD_VERSION,
        config_version,
        issued_at: Utc::now(),
        node_slug: node.slug.clone(),
        orchestrator: ConfigOrchestrator {
            base_url: base.clone(),
            endpoints: ConfigEndpoints {
                worker_api_target_url: content.worker_api_target_url.unwrap_or_default(),
                node_report_url: format!("{base}{CAPABILITY_PATH}"),
                // Like `base_url`, the process's own setting and not part of the version:
                // every control plane of one deployment must name the same gateway.
                mcp_gateway_url: state.mcp_url.clone(),
            },
        },
        sandbox_registries: Vec::new(),
        require_digest_pinning: false,
        policy: None,
        worker_api: WorkerApiConfig {
            orchestrator_bearer_token: state
                .worker_tokens
                .open(
                    node.id,
                    &token.ok_or_else(|| Error::internal("node has no worker API token"))?,
                )?
                .expose()
                .to_owned(),
            orchestrator_bearer_token_expires_at: None,
        },
        inference_backend: Some(content.inference_backend),
        // Jobs must end before the dispatcher stops waiting; see `Config::max_job_timeout_seconds`.
        constraints: Some(NodeConstraints {
            max_request_bytes: None,
            max_job_timeout_seconds: Some(state.config.max_job_timeout_seconds()),
            sandbox_limits: Some(content.sandbox_limits).filter(|caps| !caps.is_empty()),
        }),
        notes: String::new(),
    })
}

/// `POST /v1/nodes/config`: records an ack for the node's current `config_version`.
pub async fn acknowledge(state: &Registry, node: &CurrentNode, ack: &NodeConfigAck) -> Result<()> {
    check_version(ack.version)?;
    same_node(node, &ack.node_slug, "the config ack")?;
    if ack.status == ConfigAckStatus::RolledBack {
        return Err(Problem::validation(
            "status must be applied or failed (rolled_back is not supported yet)",
        )
        .into());
    }
    let error = ack
        .error
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(Error::internal)?;
    let ack_at: DateTime<Utc> = ack.ack_at;
    // An `applied` ack means the node (re)started and its worker API is up: a pause from
    // deliveries that failed while it was away is over.
    let current: Option<(String,)> = sqlx::query_as(
        "UPDATE nodes SET config_ack_at = $3, config_ack_status = $4, config_ack_version = $2,
            config_ack_error = $5, last_seen_at = now(), updated_at = now(),
            dispatch_failures = CASE WHEN $4 = 'applied' THEN 0 ELSE dispatch_failures END,
            dispatch_paused_until = CASE WHEN $4 = 'applied' THEN NULL
                                         ELSE dispatch_paused_until END
         WHERE id = $1 AND config_version = $2 RETURNING config_version",
    )
    .bind(node.id)
    .bind(&ack.config_version)
    .bind(ack_at)
    .bind(ack.status.as_str())
    .bind(error)
    .fetch_optional(&state.db)
    .await?;
    if current.is_none() {
        let (actual,): (String,) = sqlx::query_as("SELECT config_version FROM nodes WHERE id = $1")
            .bind(node.id)
            .fetch_one(&state.db)
            .await?;
        return Err(Problem::conflict(format!(
            "config_version {:?} is not the node's current configuration {actual:?}; fetch the configuration again",
            ack.config_version
        ))
        .into());
    }
    tracing::info!(node_slug = %node.slug, config_version = %ack.config_version, status = ack.status.as_str(), "config ack");
    if ack.status == ConfigAckStatus::Applied {
        jobs::recheck_waiting(&mut *state.db.acquire().await?).await?;
    }
    state.signals.changed();
    Ok(())
}

/// `DELETE /v1/nodes/{slug}`: forgets the node. Its JWT stops working at once (a node token
/// must name an existing node), its worker token is gone with the row, and the slug can be
/// registered again only as a new node (with the PSK, receiving a new secret). Its jobs keep
/// their history; a job running there is put back by the reaper when its lease runs out.
pub async fn revoke(state: &Registry, slug: &str) -> Result<()> {
    let gone = sqlx::query("DELETE FROM nodes WHERE node_slug = $1")
        .bind(slug)
        .execute(&state.db)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(Problem::not_found(format!("node {slug:?} is not registered")).into());
    }
    tracing::warn!(node_slug = %slug, "node revoked");
    state.signals.changed();
    Ok(())
}

/// How many nodes can take jobs right now.
pub async fn dispatchable_count(db: &sqlx::PgPool, stale_after: Duration) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM nodes n WHERE {}",
        scheduler::dispatchable(stale_after)
    ))
    .fetch_one(db)
    .await?)
}

/// After a delivery the worker did not take (refused connection, timeout, 5xx, ...): the node
/// gets no jobs for `base` doubled per consecutive failure, capped at `max`. Deliveries that were
/// already in flight when the node went away fail together; while a pause is in force, such a
/// failure is the same outage and neither counts again nor lengthens the pause.
pub async fn pause_dispatch(
    db: &sqlx::PgPool,
    node_id: Uuid,
    base: Duration,
    max: Duration,
) -> Result<()> {
    sqlx::query(
        "UPDATE nodes SET dispatch_failures = dispatch_failures + 1,
            dispatch_paused_until = now() + make_interval(
                secs => least($2 * power(2, least(dispatch_failures, 16)), $3))
         WHERE id = $1 AND (dispatch_paused_until IS NULL OR dispatch_paused_until <= now())",
    )
    .bind(node_id)
    .bind(base.as_secs_f64())
    .bind(max.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// The worker answered: whatever pause earlier failures caused is over.
pub async fn dispatch_succeeded(db: &sqlx::PgPool, node_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE nodes SET dispatch_failures = 0, dispatch_paused_until = NULL
         WHERE id = $1 AND (dispatch_failures <> 0 OR dispatch_paused_until IS NOT NULL)",
    )
    .bind(node_id)
    .execute(db)
    .await?;
    Ok(())
}

/// What an operator reads about nodes, besides what placement knows.
#[derive(sqlx::FromRow)]
struct NodeRecord {
    id: Uuid,
    status: String,
    stale: bool,
    drain_deadline: Option<DateTime<Utc>>,
    config_version: String,
    config_ack_status: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
    telemetry: Option<Value>,
}

/// Every node (`slug` `None`) or one, as the admin API shows them.
async fn describe(db: &PgPool, stale_after: Duration, slug: Option<&str>) -> Result<Vec<NodeInfo>> {
    let mut conn = db.acquire().await?;
    let facts = scheduler::nodes(&mut conn, stale_after, false).await?;
    let records: Vec<NodeRecord> = sqlx::query_as(
        "SELECT id, status, drain_deadline, config_version, config_ack_status, last_seen_at,
            telemetry, coalesce(last_seen_at <= now() - make_interval(secs => $2), true) AS stale
         FROM nodes WHERE $1::text IS NULL OR node_slug = $1",
    )
    .bind(slug)
    .bind(stale_after.as_secs_f64())
    .fetch_all(&mut *conn)
    .await?;
    let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    Ok(facts
        .into_iter()
        .filter_map(|f| {
            let r = records.iter().find(|r| r.id == f.id)?;
            let stored = r.status.as_str();
            let state = if stored == NodeState::Drained.as_str() {
                NodeState::Drained
            } else if stored == NodeState::Active.as_str() && !r.stale {
                NodeState::Active
            } else {
                NodeState::Inactive
            };
            Some(NodeInfo {
                ready: f.ready && !f.drained && f.max_concurrency.is_none_or(|m| f.running < m),
                node_slug: f.node_slug,
                state,
                drain_deadline: r.drain_deadline,
                labels: f.labels,
                models: f.models,
                max_concurrency: f.max_concurrency.map(count),
                running_jobs: count(f.running),
                cpu_cores: count(f.cpu_cores),
                memory_mb: u64::try_from(f.memory_mb).unwrap_or(0),
                gpu: f.gpu,
                config_version: r.config_version.clone(),
                config_ack_status: r.config_ack_status.clone(),
                last_seen_at: r.last_seen_at,
                // A snapshot an older or newer worker wrote differently is simply not shown.
                telemetry: r
                    .telemetry
                    .clone()
                    .and_then(|t| serde_json::from_value(t).ok()),
            })
        })
        .collect())
}

fn unknown(slug: &str) -> Error {
    Problem::not_found(format!("node {slug:?} is not registered")).into()
}

/// `GET /v1/nodes` (admin).
pub async fn list(db: &PgPool, stale_after: Duration) -> Result<NodeList> {
    Ok(NodeList {
        nodes: describe(db, stale_after, None).await?,
    })
}

/// `GET /v1/nodes/{slug}` (admin).
pub async fn info(db: &PgPool, stale_after: Duration, slug: &str) -> Result<NodeInfo> {
    describe(db, stale_after, Some(slug))
        .await?
        .pop()
        .ok_or_else(|| unknown(slug))
}

/// `POST /v1/nodes/{slug}/drain` (admin): the node takes no new jobs; those running there finish,
/// or once `deadline_seconds` have passed are stopped and run again elsewhere (the dispatcher's
/// [`crate::jobs::requeue_drained`]). Draining a drained node sets its deadline anew. A drained
/// node stays drained when it restarts and registers again.
pub async fn drain(state: &Registry, slug: &str, req: &DrainRequest) -> Result<NodeInfo> {
    if let Some(secs) = req.deadline_seconds
        && (secs == 0 || secs > MAX_DRAIN_DEADLINE_SECONDS)
    {
        return Err(Problem::validation(format!(
            "deadline_seconds must be 1 to {MAX_DRAIN_DEADLINE_SECONDS}"
        ))
        .into());
    }
    let drained = sqlx::query(
        "UPDATE nodes SET status = $3, updated_at = now(),
            drain_deadline = now() + make_interval(secs => $2)
         WHERE node_slug = $1",
    )
    .bind(slug)
    .bind(req.deadline_seconds.map(|s| s as f64))
    .bind(NodeState::Drained.as_str())
    .execute(&state.db)
    .await?
    .rows_affected();
    if drained == 0 {
        return Err(unknown(slug));
    }
    tracing::info!(node_slug = %slug, deadline_seconds = ?req.deadline_seconds, "node drained");
    // The dispatcher must see the deadline coming.
    state.signals.changed();
    info(&state.db, state.config.node_stale_after, slug).await
}

/// `POST /v1/nodes/{slug}/undrain` (admin): the node takes jobs again.
pub async fn undrain(state: &Registry, slug: &str) -> Result<NodeInfo> {
    let mut tx = state.db.begin().await?;
    let found = sqlx::query(
        "UPDATE nodes SET status = CASE WHEN status = $2 THEN $3 ELSE status END,
            drain_deadline = NULL, updated_at = now()
         WHERE node_slug = $1",
    )
    .bind(slug)
    .bind(NodeState::Drained.as_str())
    .bind(NodeState::Active.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(unknown(slug));
    }
    jobs::recheck_waiting(&mut tx).await?;
    tx.commit().await?;
    tracing::info!(node_slug = %slug, "node undrained");
    state.signals.changed();
    info(&state.db, state.config.node_stale_after, slug).await
}

/// A node whose telemetry the control plane pulls, and how to reach its worker API.
#[derive(Debug)]
pub struct TelemetryTarget {
    pub node_id: Uuid,
    pub node_slug: String,
    pub url: String,
    pub token: cynode_service_kit::secrets::Secret,
}

/// Nodes with a worker API that were heard from recently (drained ones too: operators watch
/// them most).
pub async fn telemetry_targets(
    db: &PgPool,
    stale_after: Duration,
    worker_tokens: &TokenKeys,
) -> Result<Vec<TelemetryTarget>> {
    let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT id, node_slug, worker_api_target_url, worker_api_bearer_token FROM nodes
         WHERE status IN ($2, $3)
           AND coalesce(worker_api_target_url, '') <> ''
           AND coalesce(worker_api_bearer_token, '') <> ''
           AND last_seen_at > now() - make_interval(secs => $1)",
    )
    .bind(stale_after.as_secs_f64())
    .bind(NodeState::Active.as_str())
    .bind(NodeState::Drained.as_str())
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(node_id, node_slug, url, token)| {
            Ok(TelemetryTarget {
                token: worker_tokens.open(node_id, &token)?,
                node_id,
                node_slug,
                url,
            })
        })
        .collect()
}

/// Start-up pass: every token ends up encrypted with the current key. Plaintext (rows from
/// before encryption) and previous-key rows are re-encrypted, keeping the token; a row no key
/// opens gets a new token and a new `config_version` (its node restarts to fetch it).
/// Returns how many rows were rewritten.
pub async fn reencrypt_worker_tokens(db: &PgPool, keys: &TokenKeys) -> Result<u64> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, worker_api_bearer_token FROM nodes WHERE worker_api_bearer_token IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    let mut rewritten = 0;
    for (id, stored) in rows {
        let (sealed, new_token) = match keys.open_any(id, &stored) {
            Opened::Current(_) => continue,
            Opened::Stale(plain) => (keys.seal(id, &plain), false),
            Opened::Unreadable => (keys.issue(id).1, true),
        };
        if new_token {
            tracing::warn!(node_id = %id, "worker API token unreadable with the configured keys; issuing a new one");
        }
        // Only if nobody changed it meanwhile (another orchestrator doing the same pass).
        sqlx::query(
            "UPDATE nodes SET worker_api_bearer_token = $2, updated_at = now(),
                config_version = CASE WHEN $4 THEN $5 ELSE config_version END
             WHERE id = $1 AND worker_api_bearer_token = $3",
        )
        .bind(id)
        .bind(&sealed)
        .bind(&stored)
        .bind(new_token)
        .bind(ulid::Ulid::new().to_string())
        .execute(db)
        .await?;
        rewritten += 1;
    }
    if rewritten > 0 {
        tracing::info!(
            rewritten,
            "worker API tokens re-encrypted with the current key"
        );
    }
    Ok(rewritten)
}

/// Keeps the node's latest telemetry snapshot.
pub async fn record_telemetry(
    db: &sqlx::PgPool,
    node_id: Uuid,
    snapshot: &NodeTelemetry,
) -> Result<()> {
    sqlx::query("UPDATE nodes SET telemetry = $2, telemetry_at = $3 WHERE id = $1")
        .bind(node_id)
        .bind(serde_json::to_value(snapshot).map_err(Error::internal)?)
        .bind(snapshot.pulled_at)
        .execute(db)
        .await?;
    Ok(())
}
