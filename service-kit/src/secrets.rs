//! Loading secrets. A secret comes from (first match wins):
//!
//! 1. a systemd credential `$CREDENTIALS_DIRECTORY/<credential>`;
//! 2. a file named by `<ENV>_FILE`;
//! 3. the environment variable `<ENV>` itself.
//!
//! Config files never hold secrets inline; they may name a file. Values are trimmed of one
//! trailing newline (files written by `echo` end in one) and never appear in errors or logs.

use std::path::{Path, PathBuf};

/// A secret value. `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret {name} is not set: provide the systemd credential '{credential}', {name}_FILE, or {name}"
    )]
    Missing { name: String, credential: String },
    #[error("cannot read secret {name} from {path}: {source}")]
    Unreadable {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret {name} from {origin} is empty")]
    Empty { name: String, origin: String },
}

/// Where to look for one secret.
#[derive(Debug, Clone)]
pub struct SecretSource<'a> {
    /// Upstream env name, e.g. `JWT_SECRET`.
    pub env: &'a str,
    /// systemd credential name, e.g. `jwt-secret`.
    pub credential: &'a str,
    /// A file named in the config file, used when none of the above is set.
    pub config_file: Option<&'a Path>,
}

/// Loads a required secret. See the module docs for the order.
pub fn load(source: &SecretSource<'_>) -> Result<Secret, SecretError> {
    load_optional(source)?.ok_or_else(|| SecretError::Missing {
        name: source.env.to_owned(),
        credential: source.credential.to_owned(),
    })
}

/// Loads a secret that may be absent.
pub fn load_optional(source: &SecretSource<'_>) -> Result<Option<Secret>, SecretError> {
    let name = source.env;
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(source.credential);
        if path.exists() {
            return read_file(name, &path).map(Some);
        }
    }
    if let Some(path) = std::env::var_os(format!("{name}_FILE")) {
        return read_file(name, Path::new(&path)).map(Some);
    }
    if let Ok(value) = std::env::var(name) {
        return non_empty(name, "the environment", value).map(Some);
    }
    if let Some(path) = source.config_file {
        return read_file(name, path).map(Some);
    }
    Ok(None)
}

fn read_file(name: &str, path: &Path) -> Result<Secret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    non_empty(name, &path.display().to_string(), text.to_owned())
}

fn non_empty(name: &str, origin: &str, value: String) -> Result<Secret, SecretError> {
    if value.is_empty() {
        return Err(SecretError::Empty {
            name: name.to_owned(),
            origin: origin.to_owned(),
        });
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Env vars are process-global; each test uses its own names so they can run in parallel.
    #[allow(unsafe_code)]
    fn set_env(name: &str, value: &str) {
        // SAFETY: test-only; every test uses distinct variable names.
        unsafe { std::env::set_var(name, value) }
    }

    #[test]
    fn file_wins_over_env_and_loses_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("psk");
        std::fs::write(&file, "from-file\n").unwrap();
        set_env("CYNODE_TEST_A", "from-env");
        set_env("CYNODE_TEST_A_FILE", file.to_str().unwrap());
        let source = SecretSource {
            env: "CYNODE_TEST_A",
            credential: "a",
            config_file: None,
        };
        assert_eq!(load(&source).unwrap().expose(), "from-file");
    }

    #[test]
    fn missing_secret_names_every_way_to_set_it() {
        let source = SecretSource {
            env: "CYNODE_TEST_MISSING",
            credential: "missing-cred",
            config_file: None,
        };
        let msg = load(&source).unwrap_err().to_string();
        assert!(msg.contains("CYNODE_TEST_MISSING_FILE"), "{msg}");
        assert!(msg.contains("missing-cred"), "{msg}");
    }

    #[test]
    fn empty_and_unreadable_secrets_are_errors_that_do_not_show_values() {
        set_env("CYNODE_TEST_EMPTY", "");
        let source = SecretSource {
            env: "CYNODE_TEST_EMPTY",
            credential: "e",
            config_file: None,
        };
        assert!(matches!(load(&source), Err(SecretError::Empty { .. })));
        let source = SecretSource {
            env: "CYNODE_TEST_NOFILE",
            credential: "n",
            config_file: Some(Path::new("/nonexistent/cynode/secret")),
        };
        let msg = load(&source).unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/cynode/secret"), "{msg}");
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
    }
}
