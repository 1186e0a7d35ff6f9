//! The end of a completion call, in one transaction: the answer in the thread, the token usage
//! and the call's `chat_audit_log` row (no message content).

use std::time::Instant;

use cynode_contracts::user::PM_MODEL;
use serde_json::{Value, json};
use uuid::Uuid;

use super::redact::Findings;
use super::threads;
use crate::auth::Principal;
use crate::error;
use crate::pm::ProjectManager;
use crate::usage::{self, ModelCall};

/// One completion call's context, for the stored answer, usage and the audit row.
#[derive(Debug, Clone)]
pub struct Call {
    pub state: ProjectManager,
    pub principal: Principal,
    pub project_id: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub model: String,
    pub stream: bool,
    pub findings: Findings,
    pub started: Instant,
}

/// How a call ended, for [`Call::close`].
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// `success`, `error`, `canceled` or `timeout`.
    pub outcome: &'a str,
    pub status: u16,
    pub error_code: Option<&'a str>,
    /// The model's token counts, for the audit row.
    pub usage: Option<(u64, u64)>,
}

impl Outcome<'_> {
    pub const fn success(usage: Option<(u64, u64)>) -> Self {
        Outcome {
            outcome: "success",
            status: 200,
            error_code: None,
            usage,
        }
    }
}

impl Call {
    /// Ends the call in one transaction: stores the answer (`answer`: content and the model
    /// that wrote it) in the thread, records `record` as token usage, and writes the audit row.
    /// Failures are logged: the client already has (or is getting) the answer.
    pub async fn close(
        &self,
        answer: Option<(&str, &str)>,
        record: Option<(u64, u64)>,
        how: Outcome<'_>,
    ) {
        let result = async {
            let mut tx = self.state.db.begin().await?;
            threads::relaxed(&mut tx).await?;
            if let (Some(thread), Some((content, model))) = (self.thread_id, answer)
                && !content.is_empty()
            {
                threads::insert(&mut tx, thread, "assistant", content, Some(model)).await?;
            }
            if let (Some((prompt_tokens, completion_tokens)), Some((_, model))) = (record, answer) {
                let call = ModelCall {
                    task_id: None,
                    model,
                    prompt_tokens,
                    completion_tokens,
                };
                usage::record(&mut *tx, self.principal, &call).await?;
                self.state
                    .metrics
                    .tokens("chat", model, prompt_tokens, completion_tokens);
            }
            self.audit(&mut tx, how).await?;
            tx.commit().await?;
            Ok::<_, error::Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "storing the chat answer, usage or audit row failed");
        }
        tracing::info!(
            model = %self.model,
            path = if self.model == PM_MODEL { "pm" } else { "node" },
            outcome = how.outcome,
            status = how.status,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "chat completion"
        );
    }

    /// The call's `chat_audit_log` row (no message content).
    async fn audit(&self, tx: &mut sqlx::PgConnection, how: Outcome<'_>) -> error::Result<()> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let kinds = self
            .findings
            .any()
            .then(|| json!(self.findings.kinds.clone()));
        sqlx::query(
            "INSERT INTO chat_audit_log (id, user_id, api_key_id, project_id, thread_id, model,
                 stream, outcome, status_code, error_code, redaction_applied, redaction_kinds,
                 duration_ms, prompt_tokens, completion_tokens)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(Uuid::new_v4())
        .bind(self.principal.user_id)
        .bind(self.principal.api_key_id)
        .bind(self.project_id)
        .bind(self.thread_id)
        .bind(&self.model)
        .bind(self.stream)
        .bind(how.outcome)
        .bind(i32::from(how.status))
        .bind(how.error_code)
        .bind(self.findings.any())
        .bind(kinds)
        .bind(i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX))
        .bind(how.usage.map(|u| count(u.0)))
        .bind(how.usage.map(|u| count(u.1)))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// `(prompt_tokens, completion_tokens)` of an OpenAI `usage` object.
pub fn usage_of(usage: &Value) -> Option<(u64, u64)> {
    Some((
        usage.get("prompt_tokens")?.as_u64()?,
        usage.get("completion_tokens")?.as_u64()?,
    ))
}
