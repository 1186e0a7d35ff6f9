//! Steps of `features/worker_node/startup.feature`: the real `cynode-orchestrator all` on a fresh
//! PostgreSQL database and the real `cynode-node-manager` (spawning the real worker API), with
//! a notify socket standing in for systemd. The process helpers are the e2e tests' own.

use std::process::{ExitStatus, Output};
use std::time::Duration;

use cucumber::{given, then, when};
use cynode_e2e::DevEnv;

use super::NodeWorld;

#[path = "../../../../e2e/tests/it/node_support/mod.rs"]
mod node_support;

use node_support::{
    INFERENCE_COMMAND, MODEL, NodeManager, NodeOptions, Orchestrator, container_exists,
    unique_container_name,
};

const NO_SUCH_IMAGE: &str = "localhost/cynode-no-such-image:latest";
const START_LIMIT: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct StartupState {
    env: Option<DevEnv>,
    orchestrator: Option<Orchestrator>,
    options: Option<NodeOptions>,
    node: Option<NodeManager>,
    exit: Option<ExitStatus>,
    /// The node's row right after READY=1 arrived.
    row_at_ready: Option<node_support::NodeRow>,
    refused: Option<(Output, String)>,
}

impl std::fmt::Debug for StartupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartupState")
            .field("exit", &self.exit)
            .field("row_at_ready", &self.row_at_ready)
            .finish_non_exhaustive()
    }
}

impl StartupState {
    fn env(&mut self) -> &DevEnv {
        self.env.get_or_insert_with(DevEnv::load)
    }

    fn orchestrator(&self) -> &Orchestrator {
        self.orchestrator
            .as_ref()
            .expect("a Given step starts the orchestrator")
    }

    fn node(&mut self) -> &mut NodeManager {
        self.node.as_mut().expect("the node manager was started")
    }

    async fn start_orchestrator(&mut self, extra: &[(&str, &str)]) {
        let env = self.env().clone();
        self.orchestrator = Some(Orchestrator::start(&env, extra).await);
    }
}

#[given("a running orchestrator")]
async fn orchestrator(world: &mut NodeWorld) {
    world.startup.start_orchestrator(&[]).await;
}

#[given("a running orchestrator that selects the test inference image")]
async fn orchestrator_with_image(world: &mut NodeWorld) {
    let image = world.startup.env().inference_image.clone();
    world
        .startup
        .start_orchestrator(&[
            ("NODE_INFERENCE_IMAGE", &image),
            ("NODE_INFERENCE_COMMAND", INFERENCE_COMMAND),
        ])
        .await;
}

#[given("a running orchestrator that selects a nonexistent inference image")]
async fn orchestrator_with_missing_image(world: &mut NodeWorld) {
    world
        .startup
        .start_orchestrator(&[
            ("NODE_INFERENCE_IMAGE", NO_SUCH_IMAGE),
            ("NODE_INFERENCE_COMMAND", INFERENCE_COMMAND),
        ])
        .await;
}

#[given("inference already answers on the node")]
fn existing_inference(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let env = state.env().clone();
    state.options = Some(NodeOptions::existing_inference(&env, state.orchestrator()));
}

#[given("no inference answers on the node")]
fn no_inference(world: &mut NodeWorld) {
    let state = &mut world.startup;
    state.options = Some(NodeOptions {
        inference_url: format!("http://127.0.0.1:{}", cynode_e2e::free_port()),
        inference_image: NO_SUCH_IMAGE.into(),
        container_name: unique_container_name(),
        psk: state.orchestrator().psk.clone(),
        extra_env: Vec::new(),
        existing_wait_seconds: 0,
        extra_yaml: String::new(),
    });
}

#[when("the node manager starts")]
fn node_starts(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let env = state.env().clone();
    let options = state
        .options
        .as_ref()
        .expect("a Given step chose the inference");
    state.node = Some(NodeManager::start(&env, state.orchestrator(), options));
}

#[then("it announces READY=1")]
async fn announces_ready(world: &mut NodeWorld) {
    let state = &mut world.startup;
    state.node().expect_ready(START_LIMIT).await;
    let slug = state.node().slug.clone();
    state.row_at_ready = state.orchestrator().node_row(&slug).await;
}

#[then(
    expr = "at that moment the orchestrator holds the ack {string} for the node's current config version"
)]
fn ack_at_ready(world: &mut NodeWorld, status: String) {
    let row = world
        .startup
        .row_at_ready
        .as_ref()
        .expect("the node has a row");
    assert_eq!(row.ack_status.as_deref(), Some(status.as_str()), "{row:?}");
    assert_eq!(
        row.ack_version.as_deref(),
        Some(row.config_version.as_str())
    );
}

#[then(
    "its status lines announced runtime check, registration, config fetch, worker API, inference and ack in that order"
)]
fn status_order(world: &mut NodeWorld) {
    world.startup.node().assert_started_in_order();
}

#[then("the orchestrator is ready")]
async fn orchestrator_ready(world: &mut NodeWorld) {
    let (code, reason) = world
        .startup
        .orchestrator()
        .ready_within(std::time::Duration::from_secs(90))
        .await;
    assert_eq!(code, 200, "{reason}");
}

#[then("the orchestrator is not ready")]
async fn orchestrator_not_ready(world: &mut NodeWorld) {
    let (code, reason) = world.startup.orchestrator().readyz().await;
    assert_eq!(code, 503, "{reason}");
}

#[then("the worker API accepts the node's token from the orchestrator and refuses any other")]
async fn worker_token(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let token = state
        .row_at_ready
        .as_ref()
        .and_then(|r| r.worker_token.clone())
        .expect("the orchestrator issued a worker token");
    let run = format!(
        "http://127.0.0.1:{}/v1/worker/jobs:run",
        state.node().worker_port
    );
    let http = reqwest::Client::new();
    let send = |bearer: String| {
        http.post(&run)
            .bearer_auth(bearer)
            .json(&serde_json::json!({}))
            .send()
    };
    assert_eq!(send("not-the-token".into()).await.unwrap().status(), 401);
    // Past authentication, the empty job is refused as a bad request.
    assert_eq!(send(token).await.unwrap().status(), 400);
}

#[then("the token is in neither the worker API's command line nor its environment")]
fn token_not_exposed(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let token = state
        .row_at_ready
        .as_ref()
        .and_then(|r| r.worker_token.clone())
        .unwrap();
    let children = state.node().children();
    assert_eq!(children.len(), 1, "the worker API is the only child");
    for file in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{}/{file}", children[0])).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token),
            "token in {file}"
        );
    }
}

#[then("the inference container publishes its port on 127.0.0.1 only and lists the model")]
async fn container_on_loopback(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let options = state.options.as_ref().unwrap();
    let (name, url) = (
        options.container_name.clone(),
        options.inference_url.clone(),
    );
    let info = state
        .env()
        .podman()
        .containers()
        .get(&name)
        .inspect()
        .await
        .expect("the node manager created the inference container");
    let bindings = info.host_config.and_then(|h| h.port_bindings).unwrap();
    let ips: Vec<String> = bindings
        .values()
        .flatten()
        .flatten()
        .filter_map(|b| b.host_ip.clone())
        .collect();
    assert_eq!(ips, ["127.0.0.1"], "{bindings:?}");
    let models = reqwest::get(format!("{url}/v1/models"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(models.contains(MODEL), "{models}");
}

#[when("the node manager receives SIGTERM")]
async fn sigterm(world: &mut NodeWorld) {
    let state = &mut world.startup;
    state.exit = state
        .node()
        .process
        .terminate(Duration::from_secs(60))
        .await;
}

#[then(expr = "it exits with status {int}")]
async fn exits_with(world: &mut NodeWorld, code: i32) {
    let state = &mut world.startup;
    let status = state.exit.expect("the node manager exited");
    assert_eq!(status.code(), Some(code), "{}", state.node().log());
}

#[then("the inference container is gone")]
async fn container_gone(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let name = state.options.as_ref().unwrap().container_name.clone();
    let env = state.env().clone();
    assert!(!container_exists(&env, &name).await);
}

#[then("it exits with a non-zero status")]
async fn exits_non_zero(world: &mut NodeWorld) {
    let state = &mut world.startup;
    let node = state.node();
    let status = node.process.wait_exit(START_LIMIT).await;
    node.notify.drain(Duration::from_millis(300)).await;
    let status = status.unwrap_or_else(|| panic!("still running:\n{}", node.log()));
    assert!(!status.success(), "{status:?}");
    state.exit = Some(status);
}

#[then("it never announced READY=1")]
fn never_ready(world: &mut NodeWorld) {
    let received = world.startup.node().notify.received().to_vec();
    assert!(!received.iter().any(|l| l == "READY=1"), "{received:?}");
}

#[then("its last status says why inference failed")]
fn last_status(world: &mut NodeWorld) {
    let last = world
        .startup
        .node()
        .statuses()
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        last.starts_with("failed:") && last.contains(NO_SUCH_IMAGE),
        "{last:?}"
    );
}

#[then(expr = "the orchestrator holds the ack {string} for the node")]
async fn ack_recorded(world: &mut NodeWorld, status: String) {
    let state = &mut world.startup;
    let slug = state.node().slug.clone();
    let row = state
        .orchestrator()
        .node_row(&slug)
        .await
        .expect("node row");
    assert_eq!(row.ack_status.as_deref(), Some(status.as_str()), "{row:?}");
}

#[when(expr = "the node manager starts with a node.yaml that lacks {string}")]
async fn starts_with_bad_yaml(world: &mut NodeWorld, key: String) {
    assert_eq!(key, "node.id", "this step writes a file without node.id");
    let state = &mut world.startup;
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, &state.orchestrator().psk).unwrap();
    let yaml = format!(
        "orchestrator:\n  url: {}\n  registration_psk_file: {}\nworker_api:\n  public_base_url: http://127.0.0.1:1\n",
        state.orchestrator().cp,
        psk.display()
    );
    let config = dir.path().join("node.yaml");
    std::fs::write(&config, yaml).unwrap();
    let output = tokio::process::Command::new(cynode_e2e::process::binary("cynode-node-manager"))
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("RUST_LOG", "info")
        .output()
        .await
        .unwrap();
    state.refused = Some((output, key));
}

#[then(expr = "it exits with status {int} and one error naming {string}")]
fn refused(world: &mut NodeWorld, code: i32, key: String) {
    let (output, _) = world
        .startup
        .refused
        .as_ref()
        .expect("the node manager ran");
    assert_eq!(output.status.code(), Some(code));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(&format!("`{key}`")), "{stderr}");
}

#[then("the orchestrator never heard of the node")]
async fn never_heard(world: &mut NodeWorld) {
    let state = &world.startup;
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&state.orchestrator().database_url)
            .await
            .unwrap();
    let nodes: i64 = sqlx::Row::get(
        &sqlx::query("SELECT count(*) FROM nodes")
            .fetch_one(&mut conn)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(nodes, 0);
}
