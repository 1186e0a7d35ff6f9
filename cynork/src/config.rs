//! The config file: `$XDG_CONFIG_HOME/cynork/config.yaml` (else `~/.config/cynork/config.yaml`),
//! or the file `--config` names. It holds the gateway URL and the session tokens, so it is
//! private (dir 0700, file 0600) and replaced atomically: a crash mid-write never leaves half a
//! file, and a reader never creates it. A personal API key is never kept in it: `api_key_file`
//! names a file holding one, so that the key can live in a secret store or a systemd credential.
//! The active project (`cynork project set`) is kept here too, next to the session.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// What the file holds. Unknown keys are ignored so that a newer cynork's file still loads.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires; cynork refreshes shortly before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<DateTime<Utc>>,
    /// A file holding a personal API key (`cyn_...`), used when there is no login session.
    /// A relative path is relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// The project `task create` and `chat` use when not given one (`cynork project set`).
    /// Kept across logins: it is the user's choice, not part of a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_project: Option<uuid::Uuid>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("gateway_url", &self.gateway_url)
            .field("token", &redact(&self.token))
            .field("refresh_token", &redact(&self.refresh_token))
            .field("token_expires_at", &self.token_expires_at)
            .field("api_key_file", &self.api_key_file)
            .field("active_project", &self.active_project)
            .finish()
    }
}

impl Config {
    /// Forgets the session, keeping everything else.
    pub fn clear_session(&mut self) {
        self.token = None;
        self.refresh_token = None;
        self.token_expires_at = None;
    }
}

/// Reads the API key from `file` (relative to the config file's directory unless absolute):
/// the file's content without surrounding whitespace. Errors name the file, never its content;
/// a file other users may read gets a warning.
pub fn read_api_key(config_path: &Path, file: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let file = match config_path.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_owned(),
    };
    let fail = |message: String| CliError::Config {
        path: config_path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| fail(format!("cannot read api_key_file {}: {e}", file.display())))?;
    if let Ok(meta) = std::fs::metadata(&file)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: api_key_file {} can be read by other users; run `chmod 600` on it",
            file.display()
        );
    }
    let key = text.trim();
    if key.is_empty() {
        return Err(fail(format!("api_key_file {} is empty", file.display())));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail(format!(
            "api_key_file {} must hold only the key, on one line",
            file.display()
        )));
    }
    Ok(key.to_owned())
}

/// Where the config file lives: `explicit` (from `--config`), else the XDG location.
pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let non_empty = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = non_empty("XDG_CONFIG_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".config")))
        .ok_or_else(|| {
            CliError::Usage(
                "cannot find where to keep the config file: set XDG_CONFIG_HOME or HOME, or pass --config FILE"
                    .into(),
            )
        })?;
    Ok(base.join("cynork").join("config.yaml"))
}

/// Reads the file; a missing or empty file is an empty config. A file that is not valid YAML
/// is an error naming the file (exit code 2), never a panic.
pub fn load(path: &Path) -> Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => {
            return Err(CliError::Config {
                path: path.to_owned(),
                message: format!("cannot read it: {e}"),
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_yaml::from_str(&text).map_err(|e| CliError::Config {
        path: path.to_owned(),
        // serde_yaml's message says where; the file's content is not echoed (it may hold tokens).
        message: format!(
            "not a valid cynork config ({e}); fix or delete it, or run `cynork auth login` to rewrite it"
        ),
    })
}

/// Writes the file atomically: a private temp file in the same directory, fsync, rename.
pub fn save(path: &Path, config: &Config) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| CliError::Config {
        path: path.to_owned(),
        message: format!("cannot {what}: {e}"),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail("create its directory", &e))?;
    }
    let yaml = serde_yaml::to_string(config).map_err(|e| fail("serialise it", &e))?;
    // tempfile creates the file with mode 0600, so the tokens are never readable by others,
    // not even between create and rename.
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.yaml.")
        .tempfile_in(&dir)
        .map_err(|e| fail("create a temporary file", &e))?;
    tmp.write_all(yaml.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail("write it", &e))?;
    tmp.persist(path)
        .map_err(|e| fail("replace it", &e.error))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn missing_file_is_empty_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cynork/config.yaml");
        assert_eq!(load(&path).unwrap(), Config::default());
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn save_creates_private_dir_and_file_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cynork/config.yaml");
        let config = Config {
            gateway_url: Some("http://gw:12080".into()),
            token: Some("access".into()),
            refresh_token: Some("refresh".into()),
            token_expires_at: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            api_key_file: Some("cynork.key".into()),
            active_project: Some(uuid::Uuid::new_v4()),
        };
        save(&path, &config).unwrap();
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(load(&path).unwrap(), config);
        // Overwriting keeps the mode and leaves no temp file behind.
        save(&path, &Config::default()).unwrap();
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.yaml")]);
    }

    #[test]
    fn the_active_project_survives_the_end_of_a_session() {
        let id = uuid::Uuid::new_v4();
        let mut config = Config {
            token: Some("a".into()),
            refresh_token: Some("r".into()),
            active_project: Some(id),
            ..Config::default()
        };
        config.clear_session();
        assert_eq!(config.token, None);
        assert_eq!(config.active_project, Some(id));
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert_eq!(yaml, format!("active_project: {id}\n"));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "gateway_url: http://x\ncredential_helper: pass\n").unwrap();
        assert_eq!(
            load(&path).unwrap().gateway_url.as_deref(),
            Some("http://x")
        );
    }

    #[test]
    fn corrupt_file_names_the_file_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "token: [secret-value\n  : {").unwrap();
        let err = load(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("cynork auth login"), "{text}");
        assert!(!text.contains("secret-value"), "{text}");
        assert_eq!(err.exit_code(), crate::error::code::USAGE);
    }

    #[test]
    fn api_key_file_is_read_relative_to_the_config_and_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(dir.path().join("k"), "cyn_abc123\n").unwrap();
        std::fs::set_permissions(dir.path().join("k"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_eq!(read_api_key(&config, Path::new("k")).unwrap(), "cyn_abc123");
        let absolute = dir.path().join("k");
        assert_eq!(read_api_key(&config, &absolute).unwrap(), "cyn_abc123");

        std::fs::write(dir.path().join("two"), "cyn_secret1 cyn_secret2\n").unwrap();
        std::fs::write(dir.path().join("empty"), " \n").unwrap();
        for (file, needle) in [
            ("two", "only the key"),
            ("empty", "is empty"),
            ("missing", "cannot read"),
        ] {
            let err = read_api_key(&config, Path::new(file)).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(needle) && text.contains(file), "{text}");
            assert!(!text.contains("secret"), "{text}");
            assert_eq!(err.exit_code(), crate::error::code::USAGE);
        }
    }

    #[test]
    fn debug_redacts_tokens() {
        let config = Config {
            token: Some("tok-123".into()),
            refresh_token: Some("ref-456".into()),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(
            !text.contains("tok-123") && !text.contains("ref-456"),
            "{text}"
        );
    }
}
