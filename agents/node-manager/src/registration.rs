//! Talking to the control plane: PSK registration for a node JWT, then config fetch, ack and
//! capability reports with that JWT. Every URL after registration comes from the bootstrap
//! payload. A 401 on a JWT call means the token expired or was revoked: register again, retry once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_contracts::PAYLOAD_VERSION;
use cynode_contracts::node::{
    NodeBootstrapPayload, NodeCapabilityReport, NodeConfigAck, NodeConfigurationPayload,
    RegisterRequest,
};
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_service_kit::notify;
use cynode_service_kit::secrets::Secret;
use reqwest::StatusCode;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error(
        "the orchestrator rejected this node's registration pre-shared key (HTTP 401): \
         check NODE_REGISTRATION_PSK against the orchestrator's"
    )]
    BadPsk,
    #[error(
        "the orchestrator refused to register this slug again (HTTP 401): the slug belongs to \
         another node, or this state directory lost the node's node_secret; an admin can revoke \
         the slug (DELETE /v1/nodes/{{slug}}) so that it registers as a new node"
    )]
    NotThisNode,
    #[error("cannot reach the orchestrator for {what} at {url}: {reason}")]
    Unreachable {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error("{what} was refused with HTTP {status}: {detail}")]
    Refused {
        what: &'static str,
        status: u16,
        detail: String,
    },
    #[error("the orchestrator sent an invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl OrchestratorError {
    /// Worth retrying later: the orchestrator is down or busy, or its PSK may yet be fixed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::BadPsk | Self::NotThisNode | Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 429,
            Self::Invalid { .. } => false,
        }
    }
}

/// The node's session with the control plane.
#[derive(Debug)]
pub struct Orchestrator {
    http: reqwest::Client,
    register_url: Url,
    psk: Secret,
    node_slug: String,
    jwt: Secret,
    expires_at: DateTime<Utc>,
    registered_at: DateTime<Utc>,
    bootstrap: Option<NodeBootstrapPayload>,
    /// Where the node's identity secret is kept (0600); `None` keeps it in memory only.
    secret_file: Option<std::path::PathBuf>,
}

impl Orchestrator {
    /// Keeps the node's identity secret (issued at its first registration) in `path`, mode 0600,
    /// and presents it at every registration.
    pub fn with_secret_file(mut self, path: std::path::PathBuf) -> Self {
        self.secret_file = Some(path);
        self
    }

    fn read_secret(&self) -> Result<Option<String>, OrchestratorError> {
        let Some(path) = &self.secret_file else {
            return Ok(None);
        };
        match std::fs::read_to_string(path) {
            Ok(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(OrchestratorError::Invalid {
                what: "node secret file",
                reason: format!("{}: {e}", path.display()),
            }),
        }
    }

    fn write_secret(&self, secret: &str) -> Result<(), OrchestratorError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.secret_file else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let err = |e: std::io::Error| OrchestratorError::Invalid {
            what: "node secret file",
            reason: format!("{}: {e}", path.display()),
        };
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        file.write_all(secret.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    pub fn new(http: reqwest::Client, base: &Url, psk: Secret, node_slug: String) -> Self {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        // Relative to the base, so that a base path (`http://o/prefix/`) is kept.
        let register_url = base
            .join(routes::node::REGISTER.trim_start_matches('/'))
            .unwrap_or_else(|_| base.clone());
        Self {
            http,
            register_url,
            psk,
            node_slug,
            jwt: Secret::new(""),
            expires_at: Utc::now(),
            registered_at: Utc::now(),
            bootstrap: None,
            secret_file: None,
        }
    }

    /// The last bootstrap payload; `None` before the first registration.
    pub fn bootstrap(&self) -> Option<&NodeBootstrapPayload> {
        self.bootstrap.as_ref()
    }

    /// `POST /v1/nodes/register`: one attempt.
    pub async fn register(
        &mut self,
        capability: &NodeCapabilityReport,
    ) -> Result<&NodeBootstrapPayload, OrchestratorError> {
        const WHAT: &str = "node registration";
        let body = RegisterRequest {
            psk: self.psk.expose().to_owned(),
            capability: capability.clone(),
            node_secret: self.read_secret()?,
        };
        let resp = self
            .http
            .post(self.register_url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable_error(WHAT, &self.register_url, &e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let body = resp.text().await.unwrap_or_default();
            return Err(if body.contains("node_secret") {
                OrchestratorError::NotThisNode
            } else {
                OrchestratorError::BadPsk
            });
        }
        let resp = check(WHAT, resp).await?;
        let bootstrap: NodeBootstrapPayload =
            resp.json().await.map_err(|e| OrchestratorError::Invalid {
                what: "bootstrap payload",
                reason: e.to_string(),
            })?;
        validate_bootstrap(&bootstrap)?;
        if let Some(secret) = &bootstrap.auth.node_secret {
            // Lost, this would lock the node out of its slug: it is on disk before we go on.
            self.write_secret(secret)?;
        }
        self.jwt = Secret::new(bootstrap.auth.node_jwt.clone());
        self.expires_at = bootstrap.auth.expires_at;
        self.registered_at = Utc::now();
        Ok(self.bootstrap.insert(bootstrap))
    }

    /// Registers, retrying transient failures with exponential backoff (1 s doubling to 5 min)
    /// so that a wrong PSK or a down orchestrator never becomes a retry storm.
    pub async fn register_with_backoff(
        &mut self,
        capability: &NodeCapabilityReport,
    ) -> Result<&NodeBootstrapPayload, OrchestratorError> {
        let mut delay = Duration::from_secs(1);
        loop {
            match self.register(capability).await {
                Ok(_) => break,
                Err(e) if e.is_transient() => {
                    tracing::error!(error = %e, retry_in_secs = delay.as_secs(), "registration failed");
                    notify::status(&format!(
                        "registration failed: {e}; retrying in {}s",
                        delay.as_secs()
                    ));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(300));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self
            .bootstrap
            .as_ref()
            .expect("set by a successful register"))
    }

    /// When to register again: at 80 % of the JWT's lifetime, so a slow call never races expiry.
    pub fn renew_at(&self) -> DateTime<Utc> {
        let lifetime = self.expires_at - self.registered_at;
        self.registered_at + lifetime * 4 / 5
    }

    fn endpoints(&self) -> Result<(&str, &str), OrchestratorError> {
        let b = self.bootstrap.as_ref().ok_or(OrchestratorError::Invalid {
            what: "session",
            reason: "not registered".into(),
        })?;
        Ok((
            &b.orchestrator.endpoints.node_config_url,
            &b.orchestrator.endpoints.node_report_url,
        ))
    }

    /// `GET node_config_url`.
    pub async fn fetch_config(
        &mut self,
        capability: &NodeCapabilityReport,
    ) -> Result<NodeConfigurationPayload, OrchestratorError> {
        let url = self.endpoints()?.0.to_owned();
        let resp = self
            .authed(capability, "config fetch", |http, jwt| {
                http.get(&url).bearer_auth(jwt)
            })
            .await?;
        let config: NodeConfigurationPayload =
            resp.json().await.map_err(|e| OrchestratorError::Invalid {
                what: "node configuration",
                reason: e.to_string(),
            })?;
        if config.version != PAYLOAD_VERSION {
            return Err(OrchestratorError::Invalid {
                what: "node configuration",
                reason: format!("unsupported version {}", config.version),
            });
        }
        if config.node_slug != self.node_slug {
            return Err(OrchestratorError::Invalid {
                what: "node configuration",
                reason: format!(
                    "it is for node `{}`, not `{}`",
                    config.node_slug, self.node_slug
                ),
            });
        }
        Ok(config)
    }

    /// `POST node_config_url` with `node_config_ack_v1`; the orchestrator answers 204.
    pub async fn ack(
        &mut self,
        capability: &NodeCapabilityReport,
        ack: &NodeConfigAck,
    ) -> Result<(), OrchestratorError> {
        let url = self.endpoints()?.0.to_owned();
        self.authed(capability, "config ack", |http, jwt| {
            http.post(&url).bearer_auth(jwt).json(ack)
        })
        .await
        .map(drop)
    }

    /// `POST node_report_url` with a fresh capability report.
    pub async fn report(
        &mut self,
        capability: &NodeCapabilityReport,
    ) -> Result<(), OrchestratorError> {
        let url = self.endpoints()?.1.to_owned();
        self.authed(capability, "capability report", |http, jwt| {
            http.post(&url).bearer_auth(jwt).json(capability)
        })
        .await
        .map(drop)
    }

    async fn authed(
        &mut self,
        capability: &NodeCapabilityReport,
        what: &'static str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OrchestratorError> {
        let mut registered_again = false;
        loop {
            let request = build(&self.http, self.jwt.expose());
            let resp = request
                .send()
                .await
                .map_err(|e| OrchestratorError::Unreachable {
                    what,
                    url: e.url().map(Url::to_string).unwrap_or_default(),
                    reason: error_chain(&e),
                })?;
            if resp.status() == StatusCode::UNAUTHORIZED && !registered_again {
                tracing::warn!(what, "node JWT refused; registering again");
                self.register(capability).await?;
                registered_again = true;
                continue;
            }
            return check(what, resp).await;
        }
    }
}

fn unreachable_error(what: &'static str, url: &Url, e: &reqwest::Error) -> OrchestratorError {
    OrchestratorError::Unreachable {
        what,
        url: url.to_string(),
        reason: error_chain(e),
    }
}

/// An error with its causes, since reqwest's own message alone ("error sending request") says
/// nothing about why.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Turns a non-2xx answer into an error that carries the problem's detail.
async fn check(
    what: &'static str,
    resp: reqwest::Response,
) -> Result<reqwest::Response, OrchestratorError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<Problem>(&text)
        .ok()
        .map(|p| p.detail.unwrap_or(p.title))
        .unwrap_or(text);
    Err(OrchestratorError::Refused {
        what,
        status: status.as_u16(),
        detail,
    })
}

fn validate_bootstrap(b: &NodeBootstrapPayload) -> Result<(), OrchestratorError> {
    let invalid = |reason: String| OrchestratorError::Invalid {
        what: "bootstrap payload",
        reason,
    };
    if b.version != PAYLOAD_VERSION {
        return Err(invalid(format!("unsupported version {}", b.version)));
    }
    if b.auth.node_jwt.is_empty() {
        return Err(invalid("auth.node_jwt is empty".into()));
    }
    for (name, url) in [
        ("node_config_url", &b.orchestrator.endpoints.node_config_url),
        ("node_report_url", &b.orchestrator.endpoints.node_report_url),
    ] {
        Url::parse(url).map_err(|e| invalid(format!("{name} `{url}`: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cynode_contracts::node::{BootstrapEndpoints, BootstrapOrchestrator, NodeAuth};

    use super::*;

    fn bootstrap(config_url: &str) -> NodeBootstrapPayload {
        NodeBootstrapPayload {
            version: 1,
            issued_at: Utc::now(),
            orchestrator: BootstrapOrchestrator {
                base_url: "http://o".into(),
                endpoints: BootstrapEndpoints {
                    worker_registration_url: format!("http://o{}", routes::node::REGISTER),
                    node_config_url: config_url.into(),
                    node_report_url: format!("http://o{}", routes::node::CAPABILITY),
                },
            },
            auth: NodeAuth {
                node_jwt: "j".into(),
                node_secret: None,
                expires_at: Utc::now(),
            },
            initial_config_version: None,
        }
    }

    #[test]
    fn bootstrap_urls_and_version_are_checked() {
        assert!(
            validate_bootstrap(&bootstrap(&format!("http://o{}", routes::node::CONFIG))).is_ok()
        );
        let err = validate_bootstrap(&bootstrap("not a url")).unwrap_err();
        assert!(err.to_string().contains("node_config_url"), "{err}");
        let mut b = bootstrap("http://o/c");
        b.version = 2;
        assert!(validate_bootstrap(&b).is_err());
    }

    #[test]
    fn a_bad_psk_is_retried_but_a_bad_payload_is_not() {
        assert!(OrchestratorError::BadPsk.is_transient());
        assert!(
            !OrchestratorError::Invalid {
                what: "x",
                reason: String::new()
            }
            .is_transient()
        );
        assert!(
            !OrchestratorError::Refused {
                what: "x",
                status: 400,
                detail: String::new()
            }
            .is_transient()
        );
    }

    #[test]
    fn renewal_comes_before_expiry() {
        let http = reqwest::Client::new();
        let mut o = Orchestrator::new(
            http,
            &Url::parse("http://o:1/").unwrap(),
            Secret::new("p"),
            "n".into(),
        );
        o.registered_at = Utc::now();
        o.expires_at = o.registered_at + chrono::Duration::hours(10);
        assert_eq!(o.renew_at() - o.registered_at, chrono::Duration::hours(8));
    }
}
