//! Who calls the MCP gateway: agent tokens.
//!
//! A token is a short-lived HS256 JWT the orchestrator issues per agent and scope: the Project
//! Manager's is system-level; a sandbox agent's names the user, task and job it works for (and
//! the project, if any). Tokens are handed to the worker that runs the agent (or kept in this
//! process for the in-process Project Manager), never to the agent itself, so agents hold no
//! long-lived credentials (REQ-MCPGAT-0116).
//!
//! The signing key is derived from the orchestrator's JWT secret with a label of its own: a
//! user's access token or a node's token never verifies as an agent token, nor the other way
//! round, even though one secret backs all three.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const ISSUER: &str = "cynodeai-mcp";
const KEY_LABEL: &[u8] = b"cynodeai mcp agent token key v1\0";
/// Longest lifetime a token may be issued with.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// The kinds of agents the gateway knows (the audit's `subject_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentType {
    /// The Project Manager: system-level.
    Pm,
    /// The Project Analyst: acts for a user on one task.
    Pa,
    /// An agent in a job's sandbox: one user, task and job.
    Sandbox,
}

impl AgentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pm => "pm",
            Self::Pa => "pa",
            Self::Sandbox => "sandbox",
        }
    }
}

impl std::str::FromStr for AgentType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pm" => Ok(Self::Pm),
            "pa" => Ok(Self::Pa),
            "sandbox" => Ok(Self::Sandbox),
            other => Err(format!("unknown agent type {other:?} (pm, pa or sandbox)")),
        }
    }
}

/// An authenticated caller and the context its token binds it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    #[serde(rename = "agt")]
    pub agent_type: AgentType,
    /// The token's id, recorded as the audit's `subject_id`.
    pub jti: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
}

impl Agent {
    /// The system-level Project Manager.
    pub fn pm() -> Self {
        Self {
            agent_type: AgentType::Pm,
            jti: Uuid::new_v4(),
            user_id: None,
            task_id: None,
            job_id: None,
            project_id: None,
        }
    }

    /// The agent in one job's sandbox.
    pub fn sandbox(user_id: Uuid, task_id: Uuid, job_id: Uuid, project_id: Option<Uuid>) -> Self {
        Self {
            agent_type: AgentType::Sandbox,
            jti: Uuid::new_v4(),
            user_id: Some(user_id),
            task_id: Some(task_id),
            job_id: Some(job_id),
            project_id,
        }
    }

    /// The Project Analyst of one task, acting for its owner.
    pub fn analyst(user_id: Uuid, task_id: Uuid) -> Self {
        Self {
            agent_type: AgentType::Pa,
            jti: Uuid::new_v4(),
            user_id: Some(user_id),
            task_id: Some(task_id),
            job_id: None,
            project_id: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    iat: i64,
    exp: i64,
    #[serde(flatten)]
    agent: Agent,
}

/// Why a token was refused. The texts are safe to show: they never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no agent token (send Authorization: Bearer <token>)")]
    Missing,
    #[error("the agent token has expired")]
    Expired,
    #[error("the agent token is invalid")]
    Invalid,
    #[error("{0}")]
    Scope(&'static str),
}

/// Signs and checks agent tokens.
#[derive(Clone)]
pub struct AgentKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentKeys(<redacted>)")
    }
}

impl AgentKeys {
    /// Keys derived from the orchestrator's JWT secret.
    pub fn derive(jwt_secret: &[u8]) -> Self {
        let key = Sha256::new()
            .chain_update(KEY_LABEL)
            .chain_update(jwt_secret)
            .finalize();
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }
    }

    /// A token for `agent`, valid for `ttl` (at most [`MAX_TTL`]).
    pub fn issue(&self, agent: &Agent, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            iat: now,
            exp: now + ttl.min(MAX_TTL).as_secs() as i64,
            agent: agent.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The agent a token stands for, if it is ours, unexpired and consistent with its type.
    pub fn verify(&self, token: &str) -> Result<Agent, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        let agent = claims.agent;
        match agent.agent_type {
            AgentType::Sandbox
                if agent.user_id.is_none() || agent.task_id.is_none() || agent.job_id.is_none() =>
            {
                Err(TokenError::Scope(
                    "a sandbox agent token must name a user, task and job",
                ))
            }
            AgentType::Pa if agent.user_id.is_none() => {
                Err(TokenError::Scope("an analyst token must name a user"))
            }
            _ => Ok(agent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_other_keys_refuse_it() {
        let keys = AgentKeys::derive(b"secret-one");
        let agent = Agent::sandbox(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), None);
        let token = keys.issue(&agent, Duration::from_secs(60));
        assert_eq!(keys.verify(&token).unwrap(), agent);
        assert_eq!(
            AgentKeys::derive(b"secret-two").verify(&token),
            Err(TokenError::Invalid)
        );
        // A user access token signed with the raw secret is not an agent token.
        let raw = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"iss": ISSUER, "exp": 4_000_000_000i64, "agt": "pm", "jti": Uuid::new_v4()}),
            &EncodingKey::from_secret(b"secret-one"),
        )
        .unwrap();
        assert_eq!(keys.verify(&raw), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_and_underscoped_tokens_are_refused() {
        let keys = AgentKeys::derive(b"s");
        let now = chrono::Utc::now().timestamp();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
        };
        let expired = sign(
            serde_json::json!({"iss": ISSUER, "iat": now - 100, "exp": now - 1, "agt": "pm", "jti": Uuid::new_v4()}),
        );
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
        let no_job = sign(
            serde_json::json!({"iss": ISSUER, "iat": now, "exp": now + 60, "agt": "sandbox", "jti": Uuid::new_v4(),
                "user_id": Uuid::new_v4(), "task_id": Uuid::new_v4()}),
        );
        assert!(matches!(keys.verify(&no_job), Err(TokenError::Scope(_))));
    }

    #[test]
    fn ttl_is_capped() {
        let keys = AgentKeys::derive(b"s");
        let token = keys.issue(&Agent::pm(), Duration::from_secs(86_400));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<Claims>(&token, &keys.decoding, &validation)
            .unwrap()
            .claims;
        assert!(claims.exp - claims.iat <= MAX_TTL.as_secs() as i64);
    }
}
