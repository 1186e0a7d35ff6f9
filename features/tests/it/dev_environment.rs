//! Acceptance: the development environment (features/dev_environment).

use cucumber::{World, given, then, when};
use cynode_e2e::DevEnv;
use cynode_e2e::sandbox::run_sh;
use sqlx::{Connection, Row};

#[derive(Debug, Default, World)]
struct EnvWorld {
    env: Option<DevEnv>,
    database_url: Option<String>,
    output: String,
    exit_code: Option<i64>,
}

impl EnvWorld {
    fn env(&self) -> &DevEnv {
        self.env
            .as_ref()
            .expect("the Background step loads the environment")
    }
}

#[given("the development environment described by the bootstrap")]
fn load_env(world: &mut EnvWorld) {
    world.env = Some(DevEnv::load());
}

#[when("I create a fresh test database")]
async fn fresh_db(world: &mut EnvWorld) {
    world.database_url = Some(world.env().fresh_database().await);
}

#[then("a query there returns the value I stored")]
async fn query_db(world: &mut EnvWorld) {
    let mut conn = sqlx::PgConnection::connect(world.database_url.as_ref().unwrap())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE kv (k text primary key, v text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kv VALUES ('greeting', 'hallo')")
        .execute(&mut conn)
        .await
        .unwrap();
    let v: String = sqlx::query("SELECT v FROM kv WHERE k = 'greeting'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "hallo");
}

#[when(expr = "I run {string} in the sandbox image with no network")]
async fn run_container(world: &mut EnvWorld, command: String) {
    let finished = run_sh(world.env(), &command).await;
    world.output = finished.stdout + &finished.stderr;
    world.exit_code = Some(finished.exit_code);
}

#[then(expr = "the container's output is {string}")]
fn container_output(world: &mut EnvWorld, expected: String) {
    assert_eq!(world.output.trim_end(), expected);
}

#[then(expr = "the container exited with code {int}")]
fn container_exit(world: &mut EnvWorld, code: i64) {
    assert_eq!(world.exit_code, Some(code));
}

#[then("the inference server lists the test model")]
async fn lists_model(world: &mut EnvWorld) {
    let env = world.env();
    let models: serde_json::Value = reqwest::get(format!("{}/v1/models", env.inference_url))
        .await
        .expect("inference server reachable")
        .json()
        .await
        .unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == env.inference_model.as_str()),
        "{models}"
    );
}

#[then("a chat completion with the test model returns text")]
async fn chat(world: &mut EnvWorld) {
    let text = world
        .env()
        .chat("Name a colour.", serde_json::json!({"max_tokens": 8}))
        .await;
    assert!(!text.trim().is_empty(), "empty completion");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_environment_features() {
    EnvWorld::cucumber()
        .fail_on_skipped()
        // The test harness owns the command line (filters, --nocapture): not cucumber's to parse.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run_and_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/dev_environment"))
        .await;
}
