//! `cynork version` and `cynork status`.

use serde::Serialize;

use super::Context;
use crate::error::{CliError, Result};
use crate::output::{emit, kv_line};

pub fn version(ctx: &Context) {
    #[derive(Serialize)]
    struct Version {
        version: &'static str,
    }
    let v = Version {
        version: env!("CARGO_PKG_VERSION"),
    };
    emit(ctx.format, &v, || kv_line(&[("version", v.version)]));
}

#[derive(Debug, Serialize)]
struct Status {
    gateway: &'static str,
    url: String,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Reachable and healthy is success (exit 0) whether or not the gateway is ready: `ready` and
/// `reason` say why it cannot run tasks yet.
pub async fn status(ctx: &Context) -> Result<()> {
    let client = ctx.anonymous_client()?;
    let (health, body) = client.get_text(&["healthz"]).await?;
    if !health.is_success() {
        return Err(CliError::Server(format!(
            "the gateway at {} is unhealthy: {}",
            client.base(),
            crate::client::describe_error_body(health, body.as_bytes())
        )));
    }
    let (ready, reason) = client.get_text(&["readyz"]).await?;
    let status = Status {
        gateway: "ok",
        url: client.base().to_string(),
        ready: ready.is_success(),
        reason: (!ready.is_success()).then(|| reason.trim().to_owned()),
    };
    emit(ctx.format, &status, || {
        let mut pairs = vec![
            ("gateway", "ok".to_owned()),
            ("url", status.url.clone()),
            ("ready", status.ready.to_string()),
        ];
        if let Some(reason) = &status.reason {
            pairs.push(("reason", reason.clone()));
        }
        kv_line(&pairs)
    });
    Ok(())
}
