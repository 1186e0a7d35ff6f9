//! `cynork chat` against the real stack (orchestrator, node manager, worker API, llama.cpp):
//! one message with an API key, and an interactive session on a real terminal (tmux) with a
//! login, whose second turn carries the first as history.

use crate::node_support;

use cynode_e2e::DevEnv;
use cynode_e2e::process::binary;
use cynode_e2e::tmux::Tmux;
use node_support::{MODEL, NodeManager, Orchestrator, User};
use serde_json::{Value, json};
use sqlx::Connection;

async fn stack() -> (Orchestrator, NodeManager, String) {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let node = NodeManager::start_serving(&env, &orchestrator).await;
    let token = User::login(&orchestrator).await.token().to_owned();
    (orchestrator, node, token)
}

#[tokio::test]
async fn one_message_with_an_api_key_prints_the_answer() {
    let (orchestrator, _node, token) = stack().await;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/users/me/api-keys", orchestrator.gw))
        .bearer_auth(&token)
        .json(&json!({"name": "cynork chat"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let config = tempfile::tempdir().unwrap();
    let run = |args: Vec<&str>| {
        let mut cmd = tokio::process::Command::new(binary("cynork"));
        cmd.args(["--gateway", &orchestrator.gw])
            .args(args)
            .env("XDG_CONFIG_HOME", config.path())
            .env("CYNORK_API_KEY", key)
            .env_remove("CYNORK_TOKEN")
            .kill_on_drop(true);
        cmd
    };
    let out = run(vec!["chat", "--model", MODEL, "-m", "Say hello."])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.trim().is_empty());

    let out = run(vec!["-o", "json", "chat", "--model", MODEL, "-m", "Hi"])
        .output()
        .await
        .unwrap();
    let completion: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(completion["object"], "chat.completion");

    // An unknown model: the gateway's 404, exit code 4, the reason on stderr.
    let out = run(vec!["chat", "--model", "no-such:1b", "-m", "Hi"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model_not_found"));
}

fn prompts(screen: &str) -> usize {
    screen.lines().filter(|l| l.starts_with("> ")).count()
        + usize::from(screen.lines().any(|l| l == ">"))
}

#[tokio::test]
async fn an_interactive_session_streams_answers_and_keeps_the_conversation() {
    let (orchestrator, _node, token) = stack().await;
    let config = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&format!(
        "env LANG=C.UTF-8 XDG_CONFIG_HOME='{}' CYNORK_TOKEN='{token}' '{}' --gateway '{}' chat --model '{MODEL}'; echo EXIT=$?; sleep 600",
        config.path().display(),
        binary("cynork").display(),
        orchestrator.gw,
    ));
    tmux.wait_for("the first prompt", |s| {
        s.contains("chatting with") && prompts(s) >= 1
    })
    .await;
    tmux.type_line("Say hi.");
    tmux.wait_for("the answer and the next prompt", |s| prompts(s) >= 2)
        .await;
    tmux.type_line("/nonsense");
    tmux.wait_for("a hint", |s| s.contains("unknown command /nonsense"))
        .await;
    tmux.type_line("Say hi.");
    tmux.wait_for("the second answer", |s| prompts(s) >= 4)
        .await;
    tmux.type_line("/exit");
    let screen = tmux.wait_for("the exit", |s| s.contains("EXIT=")).await;
    assert!(screen.contains("EXIT=0"), "{screen}");

    // One thread: both lines and both answers, the unknown command never sent.
    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT role FROM chat_messages ORDER BY created_at")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    let threads: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_threads")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(threads, 1);
    // The same line twice: the second prompt is longer only because it carries the history.
    let prompt_tokens: Vec<i64> =
        sqlx::query_scalar("SELECT prompt_tokens FROM token_usage ORDER BY created_at")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(prompt_tokens.len(), 2);
    assert!(prompt_tokens[1] > prompt_tokens[0], "{prompt_tokens:?}");
}
