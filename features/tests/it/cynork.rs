//! Acceptance: the cynork CLI (features/cynork). Every step runs the real `cynork` binary
//! against the real gateway; the stack (orchestrator, optional worker node) is the one cynork's
//! own integration tests use.

#[path = "../../../cynork/tests/it/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ADMIN_PASSWORD, Cynork, Run, Stack};
use cucumber::{World, given, then, when};
use serde_json::Value;

#[derive(Default, World)]
pub struct CliWorld {
    stack: Option<Stack>,
    cli: Option<Cynork>,
    /// Scratch directory for files the scenario creates (`{dir}` in commands).
    dir: Option<tempfile::TempDir>,
    /// The task the scenario works on (`{task}` in commands).
    task: Option<String>,
    /// The access token saved by the last login.
    token: Option<String>,
    last: Option<Run>,
}

impl std::fmt::Debug for CliWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliWorld")
            .field("task", &self.task)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl CliWorld {
    fn cli(&self) -> &Cynork {
        self.cli.as_ref().expect("the Background starts a gateway")
    }

    fn last(&self) -> &Run {
        self.last.as_ref().expect("a cynork run happened")
    }

    fn dir(&mut self) -> &std::path::Path {
        self.dir
            .get_or_insert_with(|| tempfile::tempdir().expect("tempdir"))
            .path()
    }

    /// Replaces `{task}` and `{dir}`.
    fn expand(&mut self, text: &str) -> String {
        let dir = self.dir().display().to_string();
        let text = text.replace("{dir}", &dir);
        match &self.task {
            Some(task) => text.replace("{task}", task),
            None => text,
        }
    }

    async fn run(&mut self, line: &str, stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let line = self.expand(line);
        let args = split_args(&line);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli().run_with(&args, stdin, env).await
    }

    fn saved_token(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.cli().config_file()).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("token: "))
            .map(str::to_owned)
    }
}

/// Splits a command line like a shell would for simple cases: whitespace, '…' and "…".
fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut current));
                    in_arg = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(current);
    }
    args
}

/// `\n` in feature text means a newline.
fn unescape(text: &str) -> String {
    text.replace("\\n", "\n")
}

#[given("a running gateway")]
async fn gateway(world: &mut CliWorld) {
    let stack = Stack::start().await;
    world.cli = Some(Cynork::new(&stack.gateway));
    world.stack = Some(stack);
}

#[given("a running gateway with a worker node")]
async fn gateway_with_node(world: &mut CliWorld) {
    gateway(world).await;
    let slug = format!("cynork-bdd-{}", uuid::Uuid::new_v4().simple());
    world.stack.as_mut().unwrap().add_node(&slug).await;
}

#[given("the gateway is stopped")]
async fn gateway_stopped(world: &mut CliWorld) {
    world.stack.as_mut().unwrap().stop().await;
}

#[given("I am logged in as admin")]
async fn logged_in(world: &mut CliWorld) {
    world.cli().login_admin().await;
    world.token = world.saved_token();
}

#[given("a corrupt config file")]
fn corrupt_config(world: &mut CliWorld) {
    let path = world.cli().config_file();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "gateway_url: [not closed\n  token: {").unwrap();
}

#[given(expr = "a file {string} containing {string}")]
fn a_file(world: &mut CliWorld, name: String, content: String) {
    let path = world.dir().join(name);
    std::fs::write(path, unescape(&content)).unwrap();
}

#[given(expr = "a finished task that ran {string}")]
async fn finished_task(world: &mut CliWorld, command: String) {
    let run = world
        .cli()
        .run(&[
            "task",
            "create",
            "--command",
            &command,
            "--wait",
            "-o",
            "json",
        ])
        .await;
    let result = run.json();
    assert_eq!(result["status"], "completed", "{result}");
    world.task = Some(result["task_id"].as_str().unwrap().to_owned());
}

#[given("a queued task")]
async fn queued_task(world: &mut CliWorld) {
    let task = world
        .cli()
        .run(&["task", "create", "--command", "echo waits", "-o", "json"])
        .await
        .json();
    assert_eq!(task["status"], "queued", "{task}");
    world.task = Some(task["id"].as_str().unwrap().to_owned());
}

#[when(expr = "I run cynork {string}")]
async fn run_cynork(world: &mut CliWorld, line: String) {
    world.last = Some(world.run(&line, None, &[]).await);
}

#[when(expr = "I run cynork {string} answering {string}")]
async fn run_answering(world: &mut CliWorld, line: String, answer: String) {
    let stdin = format!("{answer}\n");
    world.last = Some(world.run(&line, Some(&stdin), &[]).await);
}

#[when(expr = "I log in as {string} with the bootstrap password on stdin")]
async fn login_bootstrap(world: &mut CliWorld, user: String) {
    let stdin = format!("{ADMIN_PASSWORD}\n");
    let line = format!("auth login -u {user} --password-stdin");
    world.last = Some(world.run(&line, Some(&stdin), &[]).await);
}

#[when(expr = "I log in as {string} with the password {string} on stdin")]
async fn login_password(world: &mut CliWorld, user: String, password: String) {
    let stdin = format!("{password}\n");
    let line = format!("auth login -u {user} --password-stdin");
    world.last = Some(world.run(&line, Some(&stdin), &[]).await);
}

#[then(expr = "cynork exits with code {int}")]
fn exits_with(world: &mut CliWorld, code: i32) {
    assert_eq!(world.last().code, code, "{:?}", world.last());
}

#[then(expr = "stdout contains {string}")]
fn stdout_contains(world: &mut CliWorld, needle: String) {
    let needle = world.expand(&needle);
    assert!(
        world.last().stdout.contains(&needle),
        "{needle:?} not in {:?}",
        world.last()
    );
}

#[then(expr = "stderr contains {string}")]
fn stderr_contains(world: &mut CliWorld, needle: String) {
    let needle = world.expand(&needle);
    assert!(
        world.last().stderr.contains(&needle),
        "{needle:?} not in {:?}",
        world.last()
    );
}

#[then(expr = "stdout is JSON with {string} equal to {string}")]
fn stdout_json_field(world: &mut CliWorld, key: String, value: String) {
    let json: Value = serde_json::from_str(&world.last().stdout).expect("JSON on stdout");
    assert_eq!(json[&key], Value::String(value), "{json}");
}

#[then("stderr is one line without JSON")]
fn one_line(world: &mut CliWorld) {
    let run = world.last();
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(
        !run.stderr.contains('{') && !run.stderr.contains("panicked"),
        "{run:?}"
    );
}

#[then("the config file is private")]
fn config_private(world: &mut CliWorld) {
    let path = world.cli().config_file();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[then("stderr names the config file")]
fn names_config(world: &mut CliWorld) {
    let path = world.cli().config_file().display().to_string();
    assert!(world.last().stderr.contains(&path), "{:?}", world.last());
}

#[then("the saved access token changed")]
fn token_changed(world: &mut CliWorld) {
    let now = world.saved_token().expect("a saved token");
    assert_ne!(
        Some(now),
        world.token,
        "the token should have been replaced"
    );
}

#[then(expr = "cynork {string} exits with code {int}")]
async fn other_run_exits(world: &mut CliWorld, line: String, code: i32) {
    let run = world.run(&line, None, &[]).await;
    assert_eq!(run.code, code, "{run:?}");
}

#[then(expr = "cynork {string} prints {string}")]
async fn other_run_prints(world: &mut CliWorld, line: String, needle: String) {
    let run = world.run(&line, None, &[]).await;
    let needle = world.expand(&needle);
    assert!(run.ok().contains(&needle), "{needle:?} not in {run:?}");
}

#[then("the token saved before logout is refused by the gateway")]
async fn old_token_refused(world: &mut CliWorld) {
    let token = world.token.clone().expect("logged in before");
    let run = world
        .run("auth whoami", None, &[("CYNORK_TOKEN", &token)])
        .await;
    assert_eq!(run.code, 3, "{run:?}");
}

#[then("the JSON status is one of queued, running, completed, failed, canceled, superseded")]
fn json_status(world: &mut CliWorld) {
    let json = world.last().json();
    let status = json["status"].as_str().unwrap_or_default();
    assert!(
        [
            "queued",
            "running",
            "completed",
            "failed",
            "canceled",
            "superseded"
        ]
        .contains(&status),
        "{json}"
    );
}

#[then(expr = "the JSON attachments name {string} and {string}")]
fn json_attachments(world: &mut CliWorld, a: String, b: String) {
    let json = world.last().json();
    let names: Vec<&str> = json["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names.len(), 2, "{json}");
    assert!(
        names[0].ends_with(&format!("/{a}")) && names[1].ends_with(&format!("/{b}")),
        "{json}"
    );
}

#[then(expr = "the JSON stdout of the first job is {string}")]
fn json_first_job(world: &mut CliWorld, expected: String) {
    let json = world.last().json();
    assert_eq!(
        json["jobs"][0]["result"]["stdout"],
        Value::String(unescape(&expected)),
        "{json}"
    );
}

#[then("I have no tasks")]
async fn no_tasks(world: &mut CliWorld) {
    let list = world
        .cli()
        .run(&["task", "list", "-o", "json"])
        .await
        .json();
    assert_eq!(list["tasks"], Value::Array(vec![]), "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cynork_features() {
    CliWorld::cucumber()
        // Each scenario starts its own orchestrator (and maybe a node); a few at a time on 2 cores.
        .max_concurrent_scenarios(3)
        .fail_on_skipped()
        // The test harness owns the command line (filters, --nocapture): not cucumber's to parse.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run_and_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/cynork"))
        .await;
}
