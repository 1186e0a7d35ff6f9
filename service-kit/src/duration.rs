//! The one duration syntax of every CyNodeAI setting, as upstream's Go services write it: a bare
//! number of seconds (`90`), or numbers with units `ms`, `s`, `m`, `h` in any combination
//! (`500ms`, `90s`, `15m`, `1h30m`, `1.5h`).
//!
//! [`parse`] reads the text of an env var; [`Seconds`] is the serde form for config files, where
//! an integer keeps meaning seconds (the `*_seconds` keys) and a string may use units.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why a text is not a duration; the message quotes it and names the accepted units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDuration(String);

/// Parses `90`, `90s`, `500ms`, `15m`, `1h30m`, `1.5h`. A bare number means seconds.
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    let text = text.trim();
    let invalid = |why: &str| InvalidDuration(format!("{text:?}: {why}"));
    if text.is_empty() {
        return Err(InvalidDuration("empty duration".into()));
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid("missing unit (ms, s, m or h)"))?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| invalid("expected a number before the unit"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(invalid(&format!("unknown unit {other:?} (ms, s, m or h)"))),
        };
        let part = Duration::try_from_secs_f64(value * scale).map_err(|_| invalid("too long"))?;
        total = total.checked_add(part).ok_or_else(|| invalid("too long"))?;
        rest = next;
    }
    Ok(total)
}

/// A duration in a config file: an integer is seconds (so `*_seconds: 30` keeps working), a
/// string is parsed by [`parse`] (`"1h30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seconds(pub Duration);

impl From<Seconds> for Duration {
    fn from(value: Seconds) -> Self {
        value.0
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Whole(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected a number of seconds or a duration like \"90s\", \"5m\" or \"1h30m\"",
            )
        })? {
            Raw::Whole(secs) => Ok(Self(Duration::from_secs(secs))),
            Raw::Text(text) => parse(&text).map(Self).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_and_bare_seconds() {
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse(" 42 ").unwrap(), Duration::from_secs(42));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn nonsense_is_an_error_never_a_panic() {
        for bad in [
            "",
            "m",
            "5 parsecs",
            "5 fortnights",
            "10x",
            "1h30",
            "..s",
            "-5s",
            "99999999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn file_values_are_integers_or_strings() {
        #[derive(Deserialize)]
        struct File {
            a: Seconds,
            b: Seconds,
        }
        let file: File = serde_json::from_str(r#"{"a": 30, "b": "1h30m"}"#).unwrap();
        assert_eq!(file.a.0, Duration::from_secs(30));
        assert_eq!(file.b.0, Duration::from_secs(5400));
        let err = serde_json::from_str::<File>(r#"{"a": "soon", "b": 1}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("soon"), "{err}");
        assert!(serde_json::from_str::<File>(r#"{"a": -1, "b": 1}"#).is_err());
    }
}
