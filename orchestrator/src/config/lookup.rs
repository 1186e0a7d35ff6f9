//! How each kind of setting is read: the environment variable if set, else the file's value,
//! else the default, each kind checked the same way wherever it is used.

use std::net::SocketAddr;
use std::time::Duration;

use cynode_service_kit::config::Env;
use cynode_service_kit::duration::{self, Seconds};

use super::ConfigError;

/// Renewals come every third of the lease; below this a slow database round trip loses it.
const MIN_LEASE: Duration = Duration::from_secs(3);

/// The environment, as a lookup function (the process's, or a test's).
pub(super) struct Lookup<E>(pub(super) E);

impl<E: Fn(&str) -> Option<String>> Lookup<E> {
    /// The variable as the lookup has it: an empty value counts as set, except for durations
    /// (read through service-kit's [`Env`], which treats it as unset).
    pub(super) fn var(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    pub(super) fn pick(&self, name: &str, from_file: Option<&str>) -> Option<String> {
        self.var(name).or_else(|| from_file.map(str::to_owned))
    }

    /// The env var in duration syntax, else the file's value (seconds or a duration string).
    pub(super) fn duration(
        &self,
        name: &str,
        from_file: Option<Seconds>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let value = self
            .0
            .duration(name, from_file)
            .map_err(|e| ConfigError::Invalid {
                key: e.key,
                message: e.message,
            })?;
        Ok(value.unwrap_or_else(|| duration::parse(default).expect("valid default duration")))
    }

    /// A duration other than zero.
    pub(super) fn nonzero_duration(
        &self,
        name: &str,
        from_file: Option<Seconds>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        match self.duration(name, from_file, default)? {
            d if d.is_zero() => Err(invalid(name, "must be greater than zero")),
            d => Ok(d),
        }
    }

    /// A lease's lifetime: renewed every third of it, so it must leave time for a renewal.
    pub(super) fn lease(
        &self,
        name: &str,
        from_file: Option<Seconds>,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        match self.duration(name, from_file, default)? {
            d if d < MIN_LEASE => Err(invalid(
                name,
                format!("must be at least {MIN_LEASE:?}, so that renewals (every third) can land"),
            )),
            d => Ok(d),
        }
    }

    pub(super) fn number(
        &self,
        name: &str,
        from_file: Option<impl ToString>,
        default: &str,
    ) -> Result<u64, ConfigError> {
        let from_file = from_file.map(|v| v.to_string());
        let text = self
            .pick(name, from_file.as_deref())
            .unwrap_or_else(|| default.to_owned());
        whole_number(name, &text)
    }

    /// A whole number greater than zero.
    pub(super) fn count(
        &self,
        name: &str,
        from_file: Option<impl ToString>,
        default: &str,
    ) -> Result<u64, ConfigError> {
        match self.number(name, from_file, default)? {
            0 => Err(invalid(name, "must be greater than zero")),
            n => Ok(n),
        }
    }

    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    pub(super) fn flag(
        &self,
        name: &str,
        from_file: Option<bool>,
        default: bool,
    ) -> Result<bool, ConfigError> {
        let from_file = from_file.map(|b| b.to_string());
        match self.pick(name, from_file.as_deref()) {
            None => Ok(default),
            Some(v) => match v.trim() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(invalid(
                    name,
                    format!("expected true or false, got {other:?}"),
                )),
            },
        }
    }

    /// A listener of the API: its own variable, else `LISTEN_ADDR`, else the file's value.
    pub(super) fn listen_addr(
        &self,
        name: &str,
        from_file: Option<&str>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let text = self
            .var(name)
            .or_else(|| self.var("LISTEN_ADDR"))
            .or_else(|| from_file.map(str::to_owned))
            .unwrap_or_else(|| default.to_owned());
        // Go-style ":12080" means every interface.
        let full = if text.starts_with(':') {
            format!("0.0.0.0{text}")
        } else {
            text.clone()
        };
        full.parse::<SocketAddr>()
            .map_err(|_| bad_addr(name, &text))
    }
}

pub(super) fn whole_number(name: &str, text: &str) -> Result<u64, ConfigError> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| invalid(name, format!("expected a whole number, got {text:?}")))
}

pub(super) fn bad_addr(name: &str, text: &str) -> ConfigError {
    invalid(name, format!("expected HOST:PORT, got {text:?}"))
}

pub(super) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A comma-separated list, blanks dropped.
pub(super) fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
