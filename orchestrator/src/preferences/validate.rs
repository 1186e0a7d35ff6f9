//! What is checked before anything is written: keys, values, reasons and expected versions.

use cynode_contracts::preferences::{MAX_KEY_CHARS, MAX_VALUE_BYTES};
use serde_json::Value;

use super::{PrefError, Result, ValueType};

/// Longest audit reason, in characters (the table's CHECK).
const MAX_REASON_CHARS: usize = 1024;

pub(super) fn check_key(field: &str, key: &str, allow_empty: bool) -> Result<()> {
    let fine = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if (key.is_empty() && !allow_empty) || key.len() > MAX_KEY_CHARS || !key.chars().all(fine) {
        return Err(PrefError::Invalid(format!(
            "{field} must be 1 to {MAX_KEY_CHARS} characters of a-z, 0-9, '_', '.' and '-'"
        )));
    }
    Ok(())
}

pub(super) fn check_value(value: &Value, value_type: ValueType) -> Result<()> {
    if !value_type.admits(value) {
        return Err(PrefError::Invalid(format!(
            "value is not of value_type {} (null is allowed for every type)",
            value_type.as_str()
        )));
    }
    let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if size > MAX_VALUE_BYTES {
        return Err(PrefError::Invalid(format!(
            "value is {size} bytes as JSON; at most {MAX_VALUE_BYTES} are allowed"
        )));
    }
    Ok(())
}

pub(super) fn check_reason(reason: Option<&str>) -> Result<()> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS || r.contains('\0') => {
            Err(PrefError::Invalid(format!(
                "reason must be at most {MAX_REASON_CHARS} characters without NUL"
            )))
        }
        _ => Ok(()),
    }
}

pub(super) fn check_expected(expected_version: Option<i64>) -> Result<()> {
    match expected_version {
        Some(v) if v < 1 => Err(PrefError::Invalid(
            "expected_version must be at least 1".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::preferences::{Scope, ScopeType};

    #[test]
    fn keys_values_and_scopes_are_checked() {
        assert!(check_key("key", "output.summary_style", false).is_ok());
        assert!(check_key("key", "code.language.rank-ordered_2", false).is_ok());
        for bad in ["", "Upper", "a b", "a/b", "ä", &"k".repeat(257)] {
            assert!(check_key("key", bad, false).is_err(), "{bad:?}");
        }
        assert!(check_key("key_prefix", "", true).is_ok());
        assert!(check_value(&json!("x"), ValueType::String).is_ok());
        assert!(check_value(&Value::Null, ValueType::Array).is_ok());
        assert!(check_value(&json!(1), ValueType::String).is_err());
        let big = json!("x".repeat(MAX_VALUE_BYTES));
        assert!(check_value(&big, ValueType::String).is_err());
        assert!(Scope::new(ScopeType::System, Some(Uuid::nil())).is_err());
        assert!(Scope::new(ScopeType::Task, None).is_err());
        assert_eq!(Scope::new(ScopeType::System, None).unwrap(), Scope::System);
    }
}
