//! User preferences (`workflow_mcp_agents.md` §5): entries per scope, their pages, and the
//! effective view a task runs with. Served by the user gateway under `/v1/prefs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Longest preference key, in characters (`[a-z0-9_.-]`).
pub const MAX_KEY_CHARS: usize = 256;
/// Largest preference value, as compact JSON, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most entries in one page of a list.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// Entries in a page when no `limit` is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// Where an entry applies. Precedence, lowest first: system, group, user, project, task (a
/// user in several groups gets their group entries in the order they were last updated).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScopeType {
    System,
    Group,
    User,
    Project,
    Task,
}

impl ScopeType {
    pub const ALL: [ScopeType; 5] = [
        Self::System,
        Self::Group,
        Self::User,
        Self::Project,
        Self::Task,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Group => "group",
            Self::User => "user",
            Self::Project => "project",
            Self::Task => "task",
        }
    }
}

impl std::str::FromStr for ScopeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scope_type {s:?}; expected one of system, group, user, project, task"
                )
            })
    }
}

impl std::fmt::Display for ScopeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON type an entry's value must have (`null` is allowed for every type: it masks the
/// key at lower scopes).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    String,
    Number,
    Boolean,
    Object,
    Array,
}

impl ValueType {
    pub const ALL: [ValueType; 5] = [
        Self::String,
        Self::Number,
        Self::Boolean,
        Self::Object,
        Self::Array,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
        }
    }

    /// The type of a non-null value.
    pub fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Null => None,
            Value::String(_) => Some(Self::String),
            Value::Number(_) => Some(Self::Number),
            Value::Bool(_) => Some(Self::Boolean),
            Value::Object(_) => Some(Self::Object),
            Value::Array(_) => Some(Self::Array),
        }
    }

    /// `value` is of this type, or `null`.
    pub fn admits(self, value: &Value) -> bool {
        Self::of(value).is_none_or(|t| t == self)
    }
}

impl std::str::FromStr for ValueType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown value_type {s:?}; expected one of string, number, boolean, object, array"
                )
            })
    }
}

/// One stored preference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreferenceEntry {
    pub id: Uuid,
    pub scope_type: ScopeType,
    /// Absent for the system scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<Uuid>,
    pub key: String,
    /// `null` masks the key at lower scopes.
    #[schema(value_type = Object)]
    pub value: Value,
    pub value_type: ValueType,
    /// 1 when created, +1 on every update.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<Uuid>,
}

/// `GET /v1/prefs`: entries by key, ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreferencePage {
    pub entries: Vec<PreferenceEntry>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Where an effective value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreferenceSource {
    pub key: String,
    pub scope_type: ScopeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<Uuid>,
}

/// `GET /v1/prefs/effective`: every key's value after folding the scopes (system < user <
/// project < task), and the entry each came from, by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectivePreferences {
    #[schema(value_type = Object)]
    pub effective: BTreeMap<String, Value>,
    pub sources: Vec<PreferenceSource>,
}

/// `PUT /v1/prefs/{scope_type}/{key}`: creates the entry, or updates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPreferenceRequest {
    /// Any JSON value of `value_type` (at most 64 KiB), or `null` to mask lower scopes.
    #[schema(value_type = Object)]
    pub value: Value,
    /// Required when the value is `null` and the entry is new; otherwise the value's own type
    /// (create) or the entry's current type (update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
    /// Update only if the entry is at this version (else 409, nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub expected_version: Option<i64>,
    /// Kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub reason: Option<String>,
}

/// Query of `GET /v1/prefs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreferenceListQuery {
    #[param(inline)]
    pub scope_type: ScopeType,
    /// Required for project and task; user defaults to the caller; none for system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<Uuid>,
    /// Only keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Query of `GET|PUT|DELETE /v1/prefs/{scope_type}/{key}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreferenceScopeQuery {
    /// Required for project and task; user defaults to the caller; none for system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<Uuid>,
    /// `DELETE` only: delete only if the entry is at this version (else 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1)]
    pub expected_version: Option<i64>,
    /// `DELETE` only: kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Query of `GET /v1/prefs/effective`: a task (its owner, project and itself), or a project
/// (the caller and that project), or neither (the caller alone).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EffectiveQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_fits_every_type_and_others_only_their_own() {
        for t in ValueType::ALL {
            assert!(t.admits(&Value::Null));
        }
        assert!(ValueType::String.admits(&json!("x")));
        assert!(!ValueType::String.admits(&json!(1)));
        assert!(ValueType::Array.admits(&json!([1])));
        assert!(!ValueType::Object.admits(&json!([1])));
        assert_eq!("task".parse::<ScopeType>(), Ok(ScopeType::Task));
        assert_eq!("group".parse::<ScopeType>(), Ok(ScopeType::Group));
        assert!("team".parse::<ScopeType>().is_err());
        assert!(ScopeType::System < ScopeType::Group && ScopeType::Group < ScopeType::User);
    }
}
