//! Token usage: one `token_usage` row per model call, charged to the request's principal (the
//! user and, when the call came with one, their API key) and, when there is one, the task.
//!
//! [`record`] is the only writer. Code that calls a model takes the principal from the
//! request's [`CurrentUser`](crate::auth::CurrentUser) with `user.principal()`, and records the
//! counts the model reported:
//!
//! ```ignore
//! usage::record(&db, user.principal(), &ModelCall {
//!     task_id: Some(task_id), model: "qwen3.5:0.8b", prompt_tokens: 12, completion_tokens: 40,
//! }).await?;
//! ```

use axum::Json;
use axum::extract::State;
use cynode_contracts::problem::Problem;
use cynode_contracts::user::{
    ApiKeyUsage, DayUsage, ModelUsage, UsageQuery, UsageReport, UsageTotals,
};
use cynode_service_kit::http::ApiQuery;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::auth::{CurrentUser, Principal};
use crate::error::{Error, Result};

/// What one model call used.
#[derive(Debug, Clone, Copy)]
pub struct ModelCall<'a> {
    /// The task the call served, if any.
    pub task_id: Option<Uuid>,
    /// The model that answered, e.g. `qwen3.5:0.8b`; not blank, at most 256 characters.
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Records one model call against `principal`. Pass a transaction to record it together with
/// whatever the call produced.
pub async fn record(
    db: impl PgExecutor<'_>,
    principal: Principal,
    call: &ModelCall<'_>,
) -> Result<()> {
    if call.model.trim().is_empty() || call.model.chars().count() > 256 {
        return Err(Error::internal(format!(
            "token usage needs a model name of 1 to 256 characters, got {:?}",
            call.model
        )));
    }
    let count = |n: u64| {
        i64::try_from(n).map_err(|_| Error::internal(format!("token count {n} is out of range")))
    };
    sqlx::query(
        "INSERT INTO token_usage
           (id, user_id, api_key_id, task_id, model, prompt_tokens, completion_tokens)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::new_v4())
    .bind(principal.user_id)
    .bind(principal.api_key_id)
    .bind(call.task_id)
    .bind(call.model)
    .bind(count(call.prompt_tokens)?)
    .bind(count(call.completion_tokens)?)
    .execute(db)
    .await?;
    Ok(())
}

type Sums = (i64, i64, i64);

fn totals((requests, prompt_tokens, completion_tokens): Sums) -> UsageTotals {
    UsageTotals {
        requests,
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens.saturating_add(completion_tokens),
    }
}

/// The caller's token usage in `[since, until)`: overall, per model, per API key and per UTC day.
#[utoipa::path(get, path = "/v1/users/me/usage", tag = "usage", security(("bearer" = [])),
    params(UsageQuery), responses(
    (status = 200, body = UsageReport), (status = 400, body = Problem), (status = 401, body = Problem),
))]
pub async fn report(
    State(db): State<PgPool>,
    user: CurrentUser,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageReport>> {
    if let (Some(since), Some(until)) = (query.since, query.until)
        && until <= since
    {
        return Err(Problem::validation("until must be after since").into());
    }
    let models: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT model, count(*), coalesce(sum(prompt_tokens), 0)::bigint,
                coalesce(sum(completion_tokens), 0)::bigint
         FROM token_usage
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)
           AND ($3::timestamptz IS NULL OR created_at < $3)
         GROUP BY model ORDER BY model",
    )
    .bind(user.id)
    .bind(query.since)
    .bind(query.until)
    .fetch_all(&db)
    .await?;
    type KeyRow = (Option<Uuid>, Option<String>, i64, i64, i64);
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT u.api_key_id, k.name, count(*), coalesce(sum(u.prompt_tokens), 0)::bigint,
                coalesce(sum(u.completion_tokens), 0)::bigint
         FROM token_usage u LEFT JOIN api_keys k ON k.id = u.api_key_id
         WHERE u.user_id = $1 AND ($2::timestamptz IS NULL OR u.created_at >= $2)
           AND ($3::timestamptz IS NULL OR u.created_at < $3)
         GROUP BY u.api_key_id, k.name, k.created_at
         ORDER BY u.api_key_id IS NOT NULL, k.created_at, u.api_key_id",
    )
    .bind(user.id)
    .bind(query.since)
    .bind(query.until)
    .fetch_all(&db)
    .await?;
    let days: Vec<(chrono::NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*),
                coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint
         FROM token_usage
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)
           AND ($3::timestamptz IS NULL OR created_at < $3)
         GROUP BY day ORDER BY day",
    )
    .bind(user.id)
    .bind(query.since)
    .bind(query.until)
    .fetch_all(&db)
    .await?;
    let mut total: Sums = (0, 0, 0);
    let by_model = models
        .into_iter()
        .map(|(model, requests, prompt, completion)| {
            total.0 += requests;
            total.1 = total.1.saturating_add(prompt);
            total.2 = total.2.saturating_add(completion);
            ModelUsage {
                model,
                totals: totals((requests, prompt, completion)),
            }
        })
        .collect();
    let by_api_key = keys
        .into_iter()
        .map(
            |(api_key_id, name, requests, prompt, completion)| ApiKeyUsage {
                api_key_id,
                name,
                totals: totals((requests, prompt, completion)),
            },
        )
        .collect();
    let by_day = days
        .into_iter()
        .map(|(day, requests, prompt, completion)| DayUsage {
            day,
            totals: totals((requests, prompt, completion)),
        })
        .collect();
    Ok(Json(UsageReport {
        since: query.since,
        until: query.until,
        total: totals(total),
        by_model,
        by_api_key,
        by_day,
    }))
}
