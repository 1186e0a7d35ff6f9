//! Checks of single values, each error naming the key at fault.

use std::path::Path;
use std::time::Duration;

use cynode_service_kit::duration::Seconds;
use url::Url;

use super::error::ConfigError;

pub(super) fn http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{value}` must be an http(s) URL with a host"),
        });
    }
    Ok(url)
}

pub(super) fn check_slug(slug: &str) -> Result<(), ConfigError> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: "node.id".into(),
            reason: format!(
                "`{slug}` must be 1-63 characters of a-z, 0-9, '-' or '_' (it is the node slug)"
            ),
        })
    }
}

pub(super) fn absolute(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: format!("`{}` must be an absolute path", path.display()),
        })
    }
}

pub(super) fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.to_owned(),
        reason: format!("`{value}` is not a valid number"),
    })
}

/// A file duration, or `default` seconds.
pub(super) fn seconds_or(value: Option<Seconds>, default: u64) -> Duration {
    value.map_or(Duration::from_secs(default), Duration::from)
}

/// A file duration the worker API takes in whole seconds: at least one, fractions dropped.
pub(super) fn whole_seconds(key: &str, value: Option<Seconds>) -> Result<Option<u64>, ConfigError> {
    match value.map(|Seconds(d)| d.as_secs()) {
        Some(0) => Err(ConfigError::Invalid {
            key: key.to_owned(),
            reason: "must be at least one second".into(),
        }),
        secs => Ok(secs),
    }
}
