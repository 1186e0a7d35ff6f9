//! Acceptance: the worker node (features/worker_node): the worker API's sandbox rules, and
//! node-manager's start-up once its steps join this runner.
//!
//! One `World` for the whole area; each component's steps live in their own module under
//! `tests/worker_node/` and keep their state in their own field of the world.

#[path = "worker_node/sandbox.rs"]
mod sandbox;
#[path = "worker_node/startup.rs"]
mod startup;

use cucumber::World;

#[derive(Debug, Default, World)]
pub struct NodeWorld {
    /// State of the worker API sandbox scenarios.
    pub sandbox: sandbox::SandboxState,
    /// State of the node-manager start-up scenarios.
    pub startup: startup::StartupState,
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_node_features() {
    NodeWorld::cucumber()
        .fail_on_skipped()
        // The test harness owns the command line (filters, --nocapture): not cucumber's to parse.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run_and_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/worker_node"))
        .await;
}
