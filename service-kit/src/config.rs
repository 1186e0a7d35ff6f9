//! How every daemon reads its settings: a file (TOML or YAML) whose keys an environment variable
//! may override. The pieces the orchestrator and the node manager share:
//!
//! - [`Env`]: the environment, abstracted so that tests need not mutate the real one;
//! - [`read_file`] / [`parse_text`]: a file into a `serde` struct, an empty file being all
//!   defaults;
//! - [`Env::duration`]: an env var in [`crate::duration`] syntax, else the file's value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::duration::{self, Seconds};

/// Where settings come from besides the file. Empty variables count as unset.
pub trait Env {
    /// The variable's value, `None` if unset or empty.
    fn get(&self, name: &str) -> Option<String>;

    /// The env var `name` if set, else the file's value.
    fn pick(&self, name: &str, from_file: Option<String>) -> Option<String> {
        self.get(name).or(from_file)
    }

    /// The env var `name` parsed as a duration if set, else the file's value. An unparsable
    /// env value is an error naming `name`.
    fn duration(
        &self,
        name: &str,
        from_file: Option<Seconds>,
    ) -> Result<Option<Duration>, InvalidSetting> {
        match self.get(name) {
            Some(text) => duration::parse(&text)
                .map(Some)
                .map_err(|e| InvalidSetting {
                    key: name.to_owned(),
                    message: e.to_string(),
                }),
            None => Ok(from_file.map(Duration::from)),
        }
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// A lookup function is an environment too (tests, embedders).
impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.is_empty())
    }
}

/// One setting with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    pub key: String,
    pub message: String,
}

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// `.toml`, `.yaml` or `.yml`.
    pub fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {0}: unknown extension (use .toml, .yaml or .yml)")]
    Extension(PathBuf),
}

/// Reads and parses `path`, in `format` or else the one its extension names.
pub fn read_file<T: DeserializeOwned + Default>(
    path: &Path,
    format: Option<Format>,
) -> Result<T, FileError> {
    let format = format
        .or_else(|| Format::from_extension(path))
        .ok_or_else(|| FileError::Extension(path.to_owned()))?;
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_text(&text, format).map_err(|message| FileError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses a file's text. An empty file (or, in YAML, one holding only comments) is
/// `T::default()`, so that missing keys are reported one by one rather than as a syntax error.
pub fn parse_text<T: DeserializeOwned + Default>(text: &str, format: Format) -> Result<T, String> {
    match format {
        Format::Toml => toml::from_str(text).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml::from_str::<Option<T>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct File {
        name: Option<String>,
        interval_seconds: Option<Seconds>,
    }

    #[test]
    fn env_overrides_the_file_and_empty_means_unset() {
        let env = |name: &str| match name {
            "NAME" => Some("env".to_owned()),
            "EMPTY" => Some(String::new()),
            "INTERVAL" => Some("1h30m".to_owned()),
            "BAD" => Some("soon".to_owned()),
            _ => None,
        };
        assert_eq!(
            env.pick("NAME", Some("file".into())).as_deref(),
            Some("env")
        );
        assert_eq!(
            env.pick("EMPTY", Some("file".into())).as_deref(),
            Some("file")
        );
        assert_eq!(
            env.duration("INTERVAL", Some(Seconds(Duration::from_secs(5)))),
            Ok(Some(Duration::from_secs(5400)))
        );
        assert_eq!(
            env.duration("UNSET", Some(Seconds(Duration::from_secs(5)))),
            Ok(Some(Duration::from_secs(5)))
        );
        let err = env.duration("BAD", None).unwrap_err();
        assert_eq!(err.key, "BAD");
        assert!(err.message.contains("soon"), "{err}");
    }

    #[test]
    fn files_in_either_syntax_and_empty_files_are_defaults() {
        let yaml: File = parse_text("name: a\ninterval_seconds: 30\n", Format::Yaml).unwrap();
        assert_eq!(
            yaml.interval_seconds,
            Some(Seconds(Duration::from_secs(30)))
        );
        let toml: File = parse_text("interval_seconds = \"2m\"\n", Format::Toml).unwrap();
        assert_eq!(
            toml.interval_seconds,
            Some(Seconds(Duration::from_secs(120)))
        );
        assert_eq!(
            parse_text::<File>("", Format::Yaml).unwrap(),
            File::default()
        );
        assert_eq!(
            parse_text::<File>("# nothing\n", Format::Yaml).unwrap(),
            File::default()
        );
        assert_eq!(
            parse_text::<File>("", Format::Toml).unwrap(),
            File::default()
        );
        let err = parse_text::<File>("colour: blue\n", Format::Yaml).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn read_file_picks_the_syntax_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("c.toml");
        std::fs::write(&toml, "name = \"t\"\n").unwrap();
        let file: File = read_file(&toml, None).unwrap();
        assert_eq!(file.name.as_deref(), Some("t"));
        let other = dir.path().join("c.conf");
        std::fs::write(&other, "name: y\n").unwrap();
        assert!(matches!(
            read_file::<File>(&other, None),
            Err(FileError::Extension(_))
        ));
        let file: File = read_file(&other, Some(Format::Yaml)).unwrap();
        assert_eq!(file.name.as_deref(), Some("y"));
        assert!(matches!(
            read_file::<File>(&dir.path().join("missing.yaml"), None),
            Err(FileError::Read { .. })
        ));
    }
}
