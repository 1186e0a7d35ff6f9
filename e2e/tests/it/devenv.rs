//! The development environment's real components answer: PostgreSQL, the Podman REST socket
//! with the offline sandbox image, and the llama.cpp inference server.

use cynode_e2e::DevEnv;
use cynode_e2e::sandbox::run_sh;
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
    let finished = run_sh(
        &env,
        "echo out; echo err >&2; ls -d /workspace; grep CapEff /proc/self/status; exit 3",
    )
    .await;
    assert_eq!(finished.exit_code, 3);
    assert_eq!(
        finished.stdout,
        "out\n/workspace\nCapEff:\t0000000000000000\n"
    );
    assert_eq!(finished.stderr, "err\n");
}

#[tokio::test]
async fn the_inference_server_lists_the_model_and_completes_a_chat() {
    let env = DevEnv::load();
    let models: serde_json::Value = reqwest::get(format!("{}/v1/models", env.inference_url))
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

    let content = env
        .chat("Say hello.", serde_json::json!({"max_tokens": 16}))
        .await;
    assert!(!content.trim().is_empty(), "empty completion");
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
    let content = env
        .chat(
            "What model are you? Answer directly.",
            serde_json::json!({
                "max_tokens": 64,
                "response_format": {"type": "json_schema", "json_schema": {"name": "decision", "schema": schema}}
            }),
        )
        .await;
    let decision: serde_json::Value =
        serde_json::from_str(&content).unwrap_or_else(|e| panic!("not JSON ({e}): {content}"));
    assert!(
        matches!(decision["action"].as_str(), Some("answer" | "run")),
        "{decision}"
    );
}
