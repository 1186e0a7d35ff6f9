//! Node ↔ orchestrator payloads (`node.md` §2): registration, bootstrap, capability, config, ack.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/nodes/register` body: the pre-shared key and the node's first capability report.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub psk: String,
    pub capability: NodeCapabilityReport,
    /// The node's identity proof: the `auth.node_secret` the orchestrator issued at this slug's
    /// first registration (64 hex characters). Required to register a known slug again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_secret: Option<String>,
}

// The PSK must never reach a log line through `{:?}`.
impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("psk", &"<redacted>")
            .field("capability", &self.capability)
            .field(
                "node_secret",
                &self.node_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `node_bootstrap_payload_v1`: the answer to a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeBootstrapPayload {
    pub version: u32,
    pub issued_at: DateTime<Utc>,
    pub orchestrator: BootstrapOrchestrator,
    pub auth: NodeAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_config_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BootstrapOrchestrator {
    pub base_url: String,
    pub endpoints: BootstrapEndpoints,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BootstrapEndpoints {
    pub worker_registration_url: String,
    pub node_config_url: String,
    pub node_report_url: String,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeAuth {
    pub node_jwt: String,
    pub expires_at: DateTime<Utc>,
    /// Issued once, at the first registration of a slug (and to a node registered before
    /// identities existed): the node keeps it and presents it as `node_secret` whenever it
    /// registers again. The orchestrator stores only its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_secret: Option<String>,
}

impl std::fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuth")
            .field("node_jwt", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field(
                "node_secret",
                &self.node_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `node_capability_report_v1`: what a node is and can do. Sent at registration, at every start
/// and whenever it changes (`POST /v1/nodes/capability`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCapabilityReport {
    pub version: u32,
    pub reported_at: DateTime<Utc>,
    pub node: NodeIdentity,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<ContainerRuntime>,
    pub compute: Compute,
    #[serde(default)]
    pub gpu: Gpu,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxCapability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub network: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceCapability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_api: Option<WorkerApiEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub managed_services: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub managed_services_status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub tls: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeIdentity {
    pub node_slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerRuntime {
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub rootless_supported: bool,
    #[serde(default)]
    pub rootless_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    pub cpu_cores: u32,
    pub ram_mb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_free_mb: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub present: bool,
    #[serde(default)]
    pub devices: Vec<GpuDevice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxCapability {
    pub supported: bool,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Every sandbox runs in a user namespace of its own: container root is an unprivileged
    /// host uid, even where the runtime itself is rootful (`rootless_enabled: false`). Absent
    /// (older nodes): false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_namespace: bool,
}

/// Node-local inference policy (`inference.mode` in node.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InferenceMode {
    Allow,
    Disabled,
    Require,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferenceCapability {
    pub supported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<InferenceMode>,
    /// An inference server already answered on the node before the node manager started one.
    #[serde(default)]
    pub existing_service: bool,
    #[serde(default)]
    pub running: bool,
    /// Every model the backend can serve (`/v1/models`; with Ollama also `/api/tags`).
    #[serde(default)]
    pub available_models: Vec<String>,
    /// Those in memory now (Ollama's `/api/ps`; a one-model server's listed model).
    #[serde(default)]
    pub loaded_models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerApiEndpoint {
    pub base_url: String,
}

/// `node_configuration_payload_v1` (`GET node_config_url`).
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeConfigurationPayload {
    pub version: u32,
    /// A ULID; nodes order versions by string comparison.
    pub config_version: String,
    pub issued_at: DateTime<Utc>,
    pub node_slug: String,
    pub orchestrator: ConfigOrchestrator,
    #[serde(default)]
    pub sandbox_registries: Vec<SandboxRegistry>,
    #[serde(default)]
    pub require_digest_pinning: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<NodePolicy>,
    pub worker_api: WorkerApiConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_backend: Option<InferenceBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<NodeConstraints>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

impl std::fmt::Debug for NodeConfigurationPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfigurationPayload")
            .field("config_version", &self.config_version)
            .field("node_slug", &self.node_slug)
            .field("orchestrator", &self.orchestrator)
            .field("worker_api", &self.worker_api)
            .field("inference_backend", &self.inference_backend)
            .field("constraints", &self.constraints)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigOrchestrator {
    pub base_url: String,
    pub endpoints: ConfigEndpoints,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigEndpoints {
    /// Where the orchestrator will dispatch jobs to this node.
    pub worker_api_target_url: String,
    pub node_report_url: String,
    /// The MCP gateway the node's worker forwards sandbox agents' MCP requests to (the
    /// worker's `--mcp-gateway-url`); absent: this orchestrator serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_gateway_url: Option<String>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxRegistry {
    pub registry_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_token_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SandboxRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxRegistry")
            .field("registry_url", &self.registry_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxPolicy {
    /// Images jobs may use. Empty means the node's own allowlist decides.
    #[serde(default)]
    pub allowed_images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_network_policy: Option<String>,
    #[serde(default)]
    pub allow_privileged: bool,
    #[serde(default)]
    pub allow_host_network: bool,
}

/// The worker API settings the orchestrator hands the node. The bearer token is secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerApiConfig {
    pub orchestrator_bearer_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_bearer_token_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for WorkerApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerApiConfig")
            .field("orchestrator_bearer_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Which inference backend the node runs, and which model it must serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InferenceBackend {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default = "default_inference_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selected_model: String,
    /// Arguments for the inference container (extension: upstream relies on the image's default
    /// command, which suits Ollama; a llama.cpp image needs the model path and alias).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// Ollama's port.
pub const fn default_inference_port() -> u16 {
    11434
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_job_timeout_seconds: Option<u64>,
    /// The orchestrator's caps on every sandbox of the node (extension). The node applies the
    /// lower of each cap and its own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_limits: Option<crate::worker::SandboxResources>,
}

/// `node_config_ack_v1` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigAckStatus {
    Applied,
    Failed,
    RolledBack,
}

impl ConfigAckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// `node_config_ack_v1` (`POST node_config_url` → 204).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfigAck {
    pub version: u32,
    pub node_slug: String,
    pub config_version: String,
    pub ack_at: DateTime<Utc>,
    pub status: ConfigAckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AckError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_config_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub managed_services_status: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckError {
    #[serde(rename = "type")]
    pub error_type: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}
