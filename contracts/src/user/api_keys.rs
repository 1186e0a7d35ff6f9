//! The caller's API keys: create (the one time a key is shown), list, and their bounds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Longest API key name, in characters.
pub const MAX_API_KEY_NAME_CHARS: usize = 128;
/// Longest lifetime of an API key, in days (ten years).
pub const MAX_API_KEY_DAYS: i64 = 3650;
/// Most API keys a user may have active (neither revoked nor expired) at once.
pub const MAX_ACTIVE_API_KEYS: i64 = 50;
/// What every API key starts with, so that people and secret scanners recognise one.
pub const API_KEY_PREFIX: &str = "cyn_";

/// `POST /v1/users/me/api-keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// What the key is for; not blank, at most 128 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Days until the key stops working, 1 to 3650; without it the key works until revoked.
    #[serde(
        default,
        deserialize_with = "whole_days",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

/// Any JSON number or null; anything else is an error naming the field (serde's own message
/// for a float or a string would not).
fn whole_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(_) => Err(D::Error::custom(format!(
            "expires_in_days must be a whole number of days from 1 to {MAX_API_KEY_DAYS}"
        ))),
    }
}

/// Answer to `POST /v1/users/me/api-keys`: the only time the key is shown.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    pub id: Uuid,
    pub name: String,
    /// The key itself, `cyn_` + 64 hex digits. Send it as `Authorization: Bearer <key>`. It is
    /// stored only as a hash and cannot be shown again.
    pub key: String,
    /// The start of the key (`cyn_` + 6 characters), as lists show it.
    pub prefix: String,
    /// The key's last four characters, as lists show them.
    pub last_four: String,
    pub created_at: DateTime<Utc>,
    /// Absent: the key works until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("last_four", &self.last_four)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStatus {
    Active,
    Expired,
    Revoked,
}

impl ApiKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// One key in `GET /v1/users/me/api-keys`; never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub last_four: String,
    pub status: ApiKeyStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// To the minute: it moves at most once a minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `GET /v1/users/me/api-keys`: the caller's keys, newest first, revoked and expired ones too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyInfo>,
}
