//! `node.yaml` plus the upstream environment overrides (`node.md` §1.1).
//!
//! Everything is checked here, before the node manager talks to anyone: a bad file or a missing
//! key yields one error that names the key, and the process exits without contacting the
//! orchestrator. Secrets are never inline: the PSK comes from a credential, a file or the env.
//!
//! One file per step: `file` is the schema of node.yaml, `resolve` turns it and the environment
//! into the [`Config`] of `settings` (defaults in `defaults`, value checks in `checks`, errors
//! in `error`), `reload` is what SIGHUP changes, and `policy` the node manager's confinement.

mod checks;
mod defaults;
mod error;
mod file;
mod policy;
mod reload;
mod resolve;
mod settings;
#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};

pub use cynode_service_kit::config::{Env, ProcessEnv};
use cynode_service_kit::secrets::{self, SecretSource};

use self::defaults::PSK_ENV;
pub use self::defaults::{DEFAULT_CONFIG_PATH, PSK_CREDENTIAL};
pub use self::error::ConfigError;
pub use self::policy::node_manager_policy;
pub use self::reload::Reloaded;
pub use self::settings::{
    Config, InferenceSettings, SandboxLimitSettings, SandboxMode, SandboxSettings, WorkerSettings,
};
#[cfg(test)]
pub(crate) use self::test_support::for_tests;

impl Config {
    /// Reads `path` and applies the environment overrides. The PSK is resolved through
    /// service-kit's order (credential, `NODE_REGISTRATION_PSK_FILE`, `NODE_REGISTRATION_PSK`),
    /// then the file named by `orchestrator.registration_psk_file`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = file::parse(path, &text)?;
        let psk_env = file
            .orchestrator
            .registration_psk_env
            .clone()
            .unwrap_or_else(|| PSK_ENV.to_owned());
        let psk = secrets::load(&SecretSource {
            env: &psk_env,
            credential: PSK_CREDENTIAL,
            config_file: file.orchestrator.registration_psk_file.as_deref(),
        })?;
        let psk_file = file.orchestrator.registration_psk_file.clone();
        let mut config = resolve::resolve(file, psk, &ProcessEnv)?;
        config.source = Some(path.to_owned());
        config.secret_files.extend(psk_file);
        config
            .secret_files
            .extend(std::env::var_os(format!("{psk_env}_FILE")).map(PathBuf::from));
        config.secret_env.push(format!("{psk_env}_FILE"));
        config.secret_env.push(psk_env);
        Ok(config)
    }
}
