//! `cynork node list|get|drain|undrain` (reading needs a system role; drain and undrain need
//! system operator or admin).

use cynode_contracts::routes;
use cynode_contracts::user::{DrainRequest, NodeInfo, NodeList, NodeState};
use reqwest::Method;

use super::Context;
use crate::cli::NodeCommand;
use crate::client::json_body;
use crate::error::Result;
use crate::output::{emit, kv_line};

pub async fn run(ctx: &Context, cmd: NodeCommand) -> Result<()> {
    let mut client = ctx.client()?;
    let (method, template, slug, body) = match cmd {
        NodeCommand::List => {
            let list: NodeList = client
                .call(
                    Method::GET,
                    &routes::fill(routes::user::NODES, &[]),
                    &[],
                    None,
                )
                .await?;
            emit(ctx.format, &list, || {
                list.nodes
                    .iter()
                    .map(summary)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(());
        }
        NodeCommand::Get { slug } => (Method::GET, routes::user::NODE, slug, None),
        NodeCommand::Drain { slug, deadline } => {
            let request = DrainRequest {
                deadline_seconds: deadline,
            };
            let body = json_body(&request);
            (Method::POST, routes::user::NODE_DRAIN, slug, Some(body))
        }
        NodeCommand::Undrain { slug } => (Method::POST, routes::user::NODE_UNDRAIN, slug, None),
    };
    let node: NodeInfo = client
        .call(
            method,
            &routes::fill(template, &[&slug]),
            &[],
            body.as_ref(),
        )
        .await?;
    emit(ctx.format, &node, || detail(&node));
    Ok(())
}

fn state(node: &NodeInfo) -> &'static str {
    match node.state {
        NodeState::Active => "active",
        NodeState::Drained => "drained",
        NodeState::Inactive => "inactive",
    }
}

fn capacity(node: &NodeInfo) -> String {
    match node.max_concurrency {
        Some(max) => format!("{}/{max}", node.running_jobs),
        None => format!("{}/-", node.running_jobs),
    }
}

fn summary(node: &NodeInfo) -> String {
    kv_line(&[
        ("node", node.node_slug.clone()),
        ("state", state(node).to_owned()),
        ("ready", node.ready.to_string()),
        ("jobs", capacity(node)),
        ("labels", node.labels.join(",")),
        ("models", node.models.join(",")),
    ])
}

fn detail(node: &NodeInfo) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
    };
    kv_line(&[
        ("node", node.node_slug.clone()),
        ("state", state(node).to_owned()),
        ("ready", node.ready.to_string()),
        ("jobs", capacity(node)),
        ("drain_deadline", at(node.drain_deadline)),
        ("labels", node.labels.join(",")),
        ("models", node.models.join(",")),
        ("cpu_cores", node.cpu_cores.to_string()),
        ("memory_mb", node.memory_mb.to_string()),
        ("gpu", node.gpu.to_string()),
        ("config_version", node.config_version.clone()),
        (
            "config_ack",
            node.config_ack_status.clone().unwrap_or_else(|| "-".into()),
        ),
        ("last_seen_at", at(node.last_seen_at)),
    ])
}
