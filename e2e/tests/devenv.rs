//! The development environment's real components answer: PostgreSQL, the Podman REST socket
//! with the offline sandbox image, and the llama.cpp inference server.

use cynode_e2e::DevEnv;
use futures::StreamExt;
use podman_api::conn::TtyChunk;
use podman_api::models::Namespace;
use podman_api::opts::{ContainerCreateOpts, ContainerDeleteOpts, ContainerLogsOpts};
use sqlx::{Connection, Row};

#[tokio::test]
async fn postgres_gives_each_test_its_own_database() {
    let env = DevEnv::load();
    let first = env.fresh_database().await;
    let second = env.fresh_database().await;
    assert_ne!(first, second);
    let mut conn = sqlx::PgConnection::connect(&first).await.unwrap();
    sqlx::query("CREATE TABLE t (v text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES ($1)")
        .bind("'; DROP TABLE t; --")
        .execute(&mut conn)
        .await
        .unwrap();
    let v: String = sqlx::query("SELECT v FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "'; DROP TABLE t; --");
    // The second database is untouched by the first.
    let mut other = sqlx::PgConnection::connect(&second).await.unwrap();
    let tables: i64 = sqlx::query("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
        .fetch_one(&mut other)
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn a_sandbox_container_runs_through_the_podman_socket() {
    let env = DevEnv::load();
    let podman = env.podman();
    let created = podman
        .containers()
        .create(
            &ContainerCreateOpts::builder()
                .image(&env.sandbox_image)
                .command([
                    "sh",
                    "-c",
                    "echo out; echo err >&2; ls -d /workspace; exit 3",
                ])
                .net_namespace(Namespace {
                    nsmode: Some("none".into()),
                    value: None,
                })
                .drop_capabilities(["ALL"])
                .no_new_privilages(true)
                .build(),
        )
        .await
        .expect("create container through the Podman socket");
    let container = podman.containers().get(&created.id);
    container.start(None).await.expect("start");
    let exit = podman_wait_exit(&container).await;

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut logs = container.logs(
        &ContainerLogsOpts::builder()
            .stdout(true)
            .stderr(true)
            .build(),
    );
    while let Some(chunk) = logs.next().await {
        match chunk.expect("log chunk") {
            TtyChunk::StdOut(b) => stdout.extend(b),
            TtyChunk::StdErr(b) => stderr.extend(b),
            TtyChunk::StdIn(_) => {}
        }
    }
    drop(logs);
    container
        .delete(&ContainerDeleteOpts::builder().force(true).build())
        .await
        .expect("remove container");

    assert_eq!(exit, 3);
    assert_eq!(String::from_utf8_lossy(&stdout), "out\n/workspace\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "err\n");
}

async fn podman_wait_exit(container: &podman_api::api::Container) -> i64 {
    for _ in 0..200 {
        let state = container
            .inspect()
            .await
            .expect("inspect")
            .state
            .expect("state");
        if state.status.as_deref() == Some("exited") {
            return state.exit_code.expect("exit code") as i64;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("container did not exit within 10 s");
}

#[tokio::test]
async fn the_inference_server_lists_the_model_and_completes_a_chat() {
    let env = DevEnv::load();
    let client = reqwest::Client::new();
    let models: serde_json::Value = client
        .get(format!("{}/v1/models", env.inference_url))
        .send()
        .await
        .expect("inference server reachable")
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&env.inference_model.as_str()), "{ids:?}");

    let body = serde_json::json!({
        "model": env.inference_model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 16,
        "temperature": 0
    });
    let resp: serde_json::Value = client
        .post(format!("{}/v1/chat/completions", env.inference_url))
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = resp["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(!content.trim().is_empty(), "empty completion: {resp}");
}

#[tokio::test]
async fn the_inference_server_honours_a_json_schema() {
    // The Project Manager step relies on schema-constrained output (ARCHITECTURE.md §4).
    let env = DevEnv::load();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["answer", "run"]},
            "text": {"type": "string", "maxLength": 80}
        },
        "required": ["action", "text"]
    });
    let body = serde_json::json!({
        "model": env.inference_model,
        "messages": [{"role": "user", "content": "What model are you? Answer directly."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "decision", "schema": schema}},
        "max_tokens": 64,
        "temperature": 0
    });
    let resp: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", env.inference_url))
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let content = resp["choices"][0]["message"]["content"].as_str().unwrap();
    let decision: serde_json::Value =
        serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content}"));
    assert!(
        matches!(decision["action"].as_str(), Some("answer" | "run")),
        "{decision}"
    );
}
