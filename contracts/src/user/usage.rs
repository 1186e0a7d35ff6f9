//! `GET /v1/users/me/usage`: the caller's token usage, overall, per model, per key and per day.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Query of `GET /v1/users/me/usage`: RFC 3339 instants (`Z`, or `%2B` for a `+` offset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Count usage recorded at or after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Count usage recorded before this instant; must be after `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Token counts of a set of model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// Model calls counted.
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: i64,
}

/// Usage of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelUsage {
    pub model: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Usage through one API key; `api_key_id` absent: calls made with a login session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// Usage on one UTC calendar day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayUsage {
    /// `YYYY-MM-DD`, in UTC.
    pub day: chrono::NaiveDate,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// `GET /v1/users/me/usage`: the caller's token usage, overall, per model, per key and per day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    pub total: UsageTotals,
    /// By model name, ascending.
    pub by_model: Vec<ModelUsage>,
    /// Login-session calls first, then keys by creation.
    pub by_api_key: Vec<ApiKeyUsage>,
    /// Days (UTC) with usage, ascending; days without any are left out.
    #[serde(default)]
    pub by_day: Vec<DayUsage>,
}
