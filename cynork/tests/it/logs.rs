//! Live logs end to end: the real `cynork task logs -f` against the real orchestrator and the
//! real worker API on the dev Podman socket prints a running job's line while the task still
//! runs, then the rest, and exits when the task has ended.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{Cynork, Stack};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

fn saved_token(cli: &Cynork) -> String {
    let text = std::fs::read_to_string(cli.config_file()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("a token in the config file")
        .to_owned()
}

async fn task_status(gateway: &str, token: &str, id: &str) -> String {
    let task: Value = reqwest::Client::new()
        .get(format!("{gateway}/v1/tasks/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("gateway reachable")
        .json()
        .await
        .expect("a task");
    task["status"].as_str().expect("status").to_owned()
}

#[tokio::test]
async fn logs_follow_prints_a_running_jobs_line_before_the_task_ends() {
    let mut stack = Stack::start().await;
    stack.add_node("logs-node").await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let token = saved_token(&cli);

    let created = cli
        .run(&[
            "task",
            "create",
            "--command",
            "echo first; echo oops >&2; sleep 4; echo second",
            "-o",
            "json",
        ])
        .await
        .json();
    let id = created["id"].as_str().expect("task id").to_owned();

    let mut follow = cli
        .command()
        .args(["task", "logs", "-f", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cynork");
    let mut stdout = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("a line within 60 s")
        .expect("stdout reads")
        .expect("a line before cynork exits");
    // The moment the line is read, the task has not ended.
    let status = task_status(&stack.gateway, &token, &id).await;
    assert_eq!(first, "first");
    assert_eq!(status, "running", "the line came only after the task ended");

    let second = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("the second line within 60 s")
        .expect("stdout reads");
    assert_eq!(second.as_deref(), Some("second"));
    let rest = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("cynork exits after the task ended")
        .expect("stdout reads");
    assert_eq!(rest, None, "nothing after the last line");
    let exit = tokio::time::timeout(Duration::from_secs(30), follow.wait())
        .await
        .expect("cynork exits")
        .expect("exit status");
    let mut stderr = String::new();
    follow
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0), "stderr: {stderr}");
    // With `--stream all` (the default), the job's stderr goes to cynork's stderr.
    assert_eq!(stderr, "oops\n");
    assert_eq!(task_status(&stack.gateway, &token, &id).await, "completed");

    // A finished task: its stored output at once, then the end.
    let again = cli.run(&["task", "logs", "-f", &id]).await;
    assert_eq!(again.ok(), "first\nsecond\n");
    assert_eq!(again.stderr, "oops\n");
    let only_err = cli
        .run(&["task", "logs", "-F", &id, "--stream", "stderr"])
        .await;
    assert_eq!(only_err.ok(), "oops\n");
    // Without follow, as before.
    let plain = cli.run(&["task", "logs", &id, "--stream", "stdout"]).await;
    assert_eq!(plain.ok(), "first\nsecond\n");

    // The stream itself: server-sent events, ending with the task's status.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/v1/tasks/{id}/logs?follow=true", stack.gateway))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let body = resp.text().await.unwrap();
    assert!(
        body.ends_with(&format!(
            "event: end\ndata: {{\"task_id\":\"{id}\",\"status\":\"completed\"}}\n\n"
        )),
        "{body}"
    );
    assert_eq!(body.matches("event: line").count(), 3, "{body}");

    // Bad input: problem+json, nothing streamed.
    for query in [
        "follow=maybe",
        "follow=true&stream=both",
        "follow=true&tail=1",
    ] {
        let resp = http
            .get(format!("{}/v1/tasks/{id}/logs?{query}", stack.gateway))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{query}"
        );
    }
    let missing = http
        .get(format!(
            "{}/v1/tasks/{}/logs?follow=true",
            stack.gateway,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let missing = cli.run(&["task", "logs", "-f", "no-such-task"]).await;
    assert_eq!(missing.code, 4, "{missing:?}");
}
