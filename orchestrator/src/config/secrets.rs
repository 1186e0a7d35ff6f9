//! The secrets a process may need: named by the file, loaded only by the subcommands that use
//! them.

use std::path::PathBuf;

use cynode_service_kit::secrets::{self, Secret, SecretSource};

use super::file::FileConfig;
use super::{Config, ConfigError};

#[derive(Debug, Clone, Default)]
pub(super) struct SecretFiles {
    pub(super) database_url: Option<PathBuf>,
    pub(super) jwt_secret: Option<PathBuf>,
    pub(super) node_registration_psk: Option<PathBuf>,
    pub(super) bootstrap_admin_password: Option<PathBuf>,
    pub(super) worker_token_key: Option<PathBuf>,
    pub(super) worker_token_key_previous: Option<PathBuf>,
    pub(super) workflow_runner_bearer_token: Option<PathBuf>,
}

impl SecretFiles {
    /// The files the configuration file names for the secrets.
    pub(super) fn named_in(file: FileConfig) -> Self {
        Self {
            database_url: file.database_url_file,
            jwt_secret: file.jwt_secret_file,
            node_registration_psk: file.node_registration_psk_file,
            bootstrap_admin_password: file.bootstrap_admin_password_file,
            worker_token_key: file.worker_token_key_file,
            worker_token_key_previous: file.worker_token_key_previous_file,
            workflow_runner_bearer_token: file.workflow_runner_bearer_token_file,
        }
    }
}

/// The secrets a process may need. Each is loaded only by the subcommands that use it.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub database_url: Secret,
    pub jwt_secret: Secret,
    pub node_registration_psk: Option<Secret>,
    pub bootstrap_admin_password: Option<Secret>,
    /// Encrypts worker API tokens at rest (`WORKER_TOKEN_KEY`, credential `worker-token-key`);
    /// `None` derives the key from the JWT secret. See [`crate::worker_tokens`].
    pub worker_token_key: Option<Secret>,
    /// The key before a rotation (`WORKER_TOKEN_KEY_PREVIOUS`), used only to decrypt.
    pub worker_token_key_previous: Option<Secret>,
    /// The bearer token of the workflow API (`WORKFLOW_RUNNER_BEARER_TOKEN`, credential
    /// `workflow-runner-bearer-token`); `None` closes the API (401), unlike upstream.
    pub workflow_runner_bearer_token: Option<Secret>,
}

impl Config {
    /// `DATABASE_URL` (credential `database-url`); it may hold a password, so it is a secret.
    pub fn database_url(&self) -> Result<Secret, ConfigError> {
        Ok(secrets::load(&SecretSource {
            env: "DATABASE_URL",
            credential: "database-url",
            config_file: self.secret_files.database_url.as_deref(),
        })?)
    }

    /// Loads the secrets a serving process needs. The PSK is required when `needs_psk`.
    pub fn secrets(&self, needs_psk: bool) -> Result<Secrets, ConfigError> {
        let jwt_secret = secrets::load(&SecretSource {
            env: "JWT_SECRET",
            credential: "jwt-secret",
            config_file: self.secret_files.jwt_secret.as_deref(),
        })?;
        if jwt_secret.expose().len() < 16 {
            return Err(ConfigError::Invalid {
                key: "JWT_SECRET".into(),
                message: "must be at least 16 bytes long".into(),
            });
        }
        let psk_source = SecretSource {
            env: "NODE_REGISTRATION_PSK",
            credential: "node-registration-psk",
            config_file: self.secret_files.node_registration_psk.as_deref(),
        };
        let node_registration_psk = if needs_psk {
            Some(secrets::load(&psk_source)?)
        } else {
            secrets::load_optional(&psk_source)?
        };
        Ok(Secrets {
            database_url: self.database_url()?,
            jwt_secret,
            node_registration_psk,
            bootstrap_admin_password: secrets::load_optional(&SecretSource {
                env: "BOOTSTRAP_ADMIN_PASSWORD",
                credential: "bootstrap-admin-password",
                config_file: self.secret_files.bootstrap_admin_password.as_deref(),
            })?,
            worker_token_key: secrets::load_optional(&SecretSource {
                env: "WORKER_TOKEN_KEY",
                credential: "worker-token-key",
                config_file: self.secret_files.worker_token_key.as_deref(),
            })?,
            worker_token_key_previous: secrets::load_optional(&SecretSource {
                env: "WORKER_TOKEN_KEY_PREVIOUS",
                credential: "worker-token-key-previous",
                config_file: self.secret_files.worker_token_key_previous.as_deref(),
            })?,
            workflow_runner_bearer_token: secrets::load_optional(&SecretSource {
                env: "WORKFLOW_RUNNER_BEARER_TOKEN",
                credential: "workflow-runner-bearer-token",
                config_file: self.secret_files.workflow_runner_bearer_token.as_deref(),
            })?,
        })
    }
}
