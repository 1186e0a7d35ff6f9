//! Wire types of CyNodeAI, shared by every process that speaks them.
//!
//! The node payloads follow `node.md` §2 and §3 of the specs; the user API types follow
//! `orchestrator.md` §4. Every versioned payload carries `version: 1`; a receiver checks it with
//! [`check_version`] and answers an unknown version with [`problem::Problem::unsupported_version`].
//!
//! Types a server *receives* reject unknown fields (`deny_unknown_fields`, REQ-STANDS-0106);
//! types it *sends* are parsed leniently by clients so that a newer server does not break them.
//!
//! Besides the payloads: [`routes`] holds every HTTP path one process serves and another calls,
//! and [`worker_cli`] the worker API's command line, which the node manager renders; [`telemetry`]
//! holds the worker's Telemetry API payloads, [`logs`] the live log streams (server-sent events),
//! and [`workflow`] the control plane's workflow API.

pub mod artifacts;
pub mod logs;
pub mod mcp;
pub mod node;
pub mod preferences;
pub mod problem;
pub mod routes;
pub mod telemetry;
pub mod user;
mod version;
pub mod worker;
pub mod worker_cli;
pub mod workflow;

pub use version::PAYLOAD_VERSION;

/// Ok when `version` is one this build understands.
pub fn check_version(version: u32) -> Result<(), problem::Problem> {
    if version == PAYLOAD_VERSION {
        Ok(())
    } else {
        Err(problem::Problem::unsupported_version(version))
    }
}
