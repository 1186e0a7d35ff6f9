//! Control-plane endpoints against a real PostgreSQL: registration, capability, config, ack,
//! readiness, and every bad-input line of the issue.

use crate::common;

use std::time::Duration;

use common::*;
use cynode_contracts::node::NodeConfigurationPayload;
use cynode_contracts::routes;
use cynode_orchestrator::Role;
use cynode_orchestrator::auth::TokenType;
use serde_json::{Value, json};

#[tokio::test]
async fn node_registers_reports_fetches_config_and_acks() {
    let o = Orchestrator::start(&[
        ("NODE_INFERENCE_IMAGE", "localhost/cynode-inference:latest"),
        (
            "NODE_INFERENCE_COMMAND",
            "-m /models/model.gguf --port 11434",
        ),
    ])
    .await;
    // Before any node: not ready, with a reason.
    let readyz = format!("{}/readyz", o.cp);
    let resp = o.fetch(&readyz).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("no inference path"));
    let health = o.fetch(&format!("{}/healthz", o.cp)).await;
    assert_eq!(health.text().await.unwrap(), "ok");

    let cap_a = capability("node-a", "http://127.0.0.1:1");
    let first = o.register_node(&cap_a).await;
    assert_eq!(first.status(), 201);
    let bootstrap: Value = first.json().await.unwrap();
    assert_eq!(bootstrap["version"], 1);
    assert_eq!(
        bootstrap["orchestrator"]["endpoints"]["node_config_url"],
        format!("{}/v1/nodes/config", o.cp)
    );
    assert_eq!(
        bootstrap["orchestrator"]["endpoints"]["node_report_url"],
        format!("{}/v1/nodes/capability", o.cp)
    );
    assert!(bootstrap["auth"]["expires_at"].is_string());
    assert_eq!(o.register_node(&cap_a).await.status(), 200);

    let mut node = Node::register(&o, "node-a", "http://127.0.0.1:1").await;
    let report = node
        .report(&o, &capability("node-a", "http://127.0.0.1:1"))
        .await;
    assert_eq!(report.status(), 204);
    let (hash, snapshots): (String, i64) = sqlx::query_as(
        "SELECT n.capability_hash, (SELECT count(*) FROM node_capabilities c WHERE c.node_id = n.id) FROM nodes n WHERE node_slug = 'node-a'")
        .fetch_one(&o.db).await.unwrap();
    assert!(
        hash.starts_with("sha256:") && hash.len() == 7 + 64,
        "{hash}"
    );
    assert_eq!(snapshots, 1, "unchanged reports add no snapshot");
    let seen_before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_seen_at FROM nodes WHERE node_slug = 'node-a'")
            .fetch_one(&o.db)
            .await
            .unwrap();
    let mut bigger = capability("node-a", "http://127.0.0.1:1");
    bigger["compute"]["ram_mb"] = json!(8192);
    assert_eq!(node.report(&o, &bigger).await.status(), 204);
    assert_eq!(node.report(&o, &bigger).await.status(), 204);
    let (snapshots, reports, seen_after): (i64, i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM node_capabilities c WHERE c.node_id = n.id),
                    n.capability_reports, n.last_seen_at
             FROM nodes n WHERE node_slug = 'node-a'",
        )
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(snapshots, 2, "a changed capability is stored once");
    assert_eq!(
        reports, 6,
        "three registrations and three reports are counted"
    );
    assert!(seen_after > seen_before, "every report counts as seen");
    // Back to the first capability for the configuration checks below.
    assert_eq!(
        node.report(&o, &capability("node-a", "http://127.0.0.1:1"))
            .await
            .status(),
        204
    );

    let config = node.fetch_config(&o).await.clone();
    assert_eq!(config.config_version.len(), 26);
    assert!(ulid::Ulid::from_string(&config.config_version).is_ok());
    assert_eq!(config.node_slug, "node-a");
    assert_eq!(
        config.orchestrator.endpoints.worker_api_target_url,
        "http://127.0.0.1:1"
    );
    assert_eq!(config.worker_api.orchestrator_bearer_token.len(), 64);
    assert_eq!(
        config
            .constraints
            .as_ref()
            .and_then(|c| c.max_job_timeout_seconds),
        Some(9),
        "jobs end before the 10 s dispatch HTTP timeout of these tests"
    );
    let backend = config.inference_backend.clone().unwrap();
    assert!(backend.enabled);
    assert_eq!(backend.selected_model, "smollm2:135m");
    assert_eq!(
        backend.image.as_deref(),
        Some("localhost/cynode-inference:latest")
    );
    assert_eq!(backend.port, 11434);
    assert_eq!(
        backend.command,
        ["-m", "/models/model.gguf", "--port", "11434"]
    );
    // Debug output never shows the token.
    assert!(!format!("{config:?}").contains(&config.worker_api.orchestrator_bearer_token));

    // Same inputs, same version; ack makes the node dispatchable and the orchestrator ready.
    assert_eq!(
        node.fetch_config(&o).await.config_version,
        config.config_version
    );
    assert_eq!(
        node.ack(&o, &config.config_version, "applied")
            .await
            .status(),
        204
    );
    let (status, version): (String, String) = sqlx::query_as(
        "SELECT config_ack_status, config_ack_version FROM nodes WHERE node_slug='node-a'",
    )
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), version.as_str()),
        ("applied", config.config_version.as_str())
    );
    let ready = o.fetch(&format!("{}/readyz", o.gw)).await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");

    // A new worker URL is a new configuration: new ULID, greater, and the old ack no longer counts.
    let moved = node
        .report(&o, &capability("node-a", "http://127.0.0.1:2"))
        .await;
    assert_eq!(moved.status(), 204);
    let newer = node.fetch_config(&o).await.clone();
    assert!(newer.config_version > config.config_version);
    assert_eq!(
        newer.worker_api.orchestrator_bearer_token, config.worker_api.orchestrator_bearer_token,
        "token is stable"
    );
    assert_eq!(o.fetch(&readyz).await.status(), 503);
    // The stale version is a conflict.
    assert_problem(
        node.ack(&o, &config.config_version, "applied").await,
        409,
        "not the node's current configuration",
    )
    .await;
    // A failed ack is recorded and does not make the node dispatchable.
    let failed = node
        .send_ack(&o, &json!({"version":1,"node_slug":"node-a","config_version":newer.config_version,"ack_at":chrono::Utc::now(),
                              "status":"failed","error":{"type":"inference","message":"model did not load"}}))
        .await;
    assert_eq!(failed.status(), 204);
    let err: Value =
        sqlx::query_scalar("SELECT config_ack_error FROM nodes WHERE node_slug='node-a'")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(err["message"], "model did not load");
    assert_eq!(o.fetch(&readyz).await.status(), 503);

    let doc = o.openapi(&o.cp).await;
    // The documented paths are the ones nodes call.
    assert!(doc["paths"][cynode_contracts::routes::node::REGISTER]["post"].is_object());
    assert!(doc["paths"][cynode_contracts::routes::node::CONFIG]["get"].is_object());
    assert!(doc["paths"][cynode_contracts::routes::node::CAPABILITY]["post"].is_object());
}

#[tokio::test]
async fn inference_backend_follows_the_capability() {
    let o = Orchestrator::start(&[]).await;
    let mut cap = capability("sandbox-only", "http://127.0.0.1:1");
    cap["inference"]["existing_service"] = json!(true);
    cap["gpu"] = json!({"present": true, "devices": [{"vram_mb": 8000, "features": {"cuda_capability": "8.9"}}]});
    let resp = o.register_node(&cap).await;
    assert_eq!(resp.status(), 201);
    let bootstrap: cynode_contracts::node::NodeBootstrapPayload = resp.json().await.unwrap();
    let mut node = Node {
        slug: "sandbox-only".into(),
        bootstrap,
        config: None,
    };
    let backend = node
        .fetch_config(&o)
        .await
        .inference_backend
        .clone()
        .unwrap();
    assert!(
        !backend.enabled,
        "an existing inference service means: don't start one"
    );
    assert_eq!(backend.variant.as_deref(), Some("cuda"));
}

#[tokio::test]
async fn bad_registrations_are_refused_and_write_nothing() {
    let o = Orchestrator::start(&[("MAX_REQUEST_BODY_MB", "1")]).await;
    let url = format!("{}/v1/nodes/register", o.cp);
    let send = |body: String| o.post_raw(&url, None, body);
    let good = capability("n1", "http://127.0.0.1:1");
    assert_problem(
        send(json!({"psk": "wrong", "capability": good}).to_string()).await,
        401,
        "pre-shared key",
    )
    .await;
    assert_problem(send("{\"psk\": ".into()).await, 400, "malformed JSON").await;
    assert_problem(
        send(json!({"capability": good}).to_string()).await,
        400,
        "psk",
    )
    .await;
    assert_problem(
        send(json!({"psk": PSK, "capability": good, "extra": 1}).to_string()).await,
        400,
        "extra",
    )
    .await;
    assert_problem(
        send(json!({"psk": 7, "capability": good}).to_string()).await,
        400,
        "invalid type",
    )
    .await;
    // One bad field of the capability at a time.
    for (field, value, needle) in [
        ("/version", json!(2), "version 2"),
        ("/node/node_slug", json!(" "), "node_slug"),
        ("/worker_api/base_url", json!("ftp://x"), "base_url"),
        ("/compute/cpu_cores", json!("many"), "invalid type"),
        ("/node/labels", json!(["a\u{0}b"]), "NUL"),
        ("/platform/os", json!("li\u{0}nux"), "NUL"),
    ] {
        let mut bad = good.clone();
        *bad.pointer_mut(field).unwrap() = value;
        assert_problem(
            send(json!({"psk": PSK, "capability": bad}).to_string()).await,
            400,
            needle,
        )
        .await;
    }
    let big =
        json!({"psk": PSK, "capability": good, "pad": "x".repeat(2 * 1024 * 1024)}).to_string();
    assert_problem(send(big).await, 413, "exceeds").await;
    assert_eq!(o.count("nodes").await, 0);
    assert_eq!(o.count("node_capabilities").await, 0);
}

#[tokio::test]
async fn node_tokens_are_checked() {
    let o = Orchestrator::start(&[]).await;
    let a = Node::register(&o, "node-a", "http://127.0.0.1:1").await;
    let b = Node::register(&o, "node-b", "http://127.0.0.1:2").await;
    let cfg_url = &a.bootstrap.orchestrator.endpoints.node_config_url;
    assert_problem(o.fetch(cfg_url).await, 401, "Bearer").await;
    // A token signed with another key.
    let forged = sign_token(
        b"not-the-orchestrator-key",
        TokenType::Node,
        Duration::from_secs(60),
        |c| c.node_slug = Some("node-a".into()),
    );
    assert_problem(o.get_url(cfg_url, &forged).await, 401, "invalid").await;
    // A user access token is not a node token.
    let user = o.admin_token().await;
    assert_problem(o.get_url(cfg_url, &user).await, 401, "wrong type").await;

    // Node A's token cannot speak for node B.
    let cfg_b = o
        .get_url(cfg_url, b.jwt())
        .await
        .json::<cynode_contracts::node::NodeConfigurationPayload>()
        .await
        .unwrap();
    assert_eq!(cfg_b.node_slug, "node-b");
    let as_b = a
        .send_ack(&o, &ack_body("node-b", &cfg_b.config_version, "applied"))
        .await;
    assert_problem(as_b, 403, "node-a").await;
    let report_b = a.report(&o, &capability("node-b", "http://evil:1")).await;
    assert_problem(report_b, 403, "node-b").await;
    let unknown_version = a
        .send_ack(
            &o,
            &ack_body("node-a", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "applied"),
        )
        .await;
    assert_problem(unknown_version, 409, "01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    let rolled = a.send_ack(&o, &ack_body("node-a", "x", "bogus")).await;
    assert_problem(rolled, 400, "bogus").await;
    let acked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM nodes WHERE config_ack_status IS NOT NULL")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(acked, 0, "no rejected ack was recorded");
    let url_b: String =
        sqlx::query_scalar("SELECT worker_api_target_url FROM nodes WHERE node_slug='node-b'")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(url_b, "http://127.0.0.1:2");

    // A correctly signed node JWT past its expiry.
    let expired = sign_token(
        JWT_SECRET.as_bytes(),
        TokenType::Node,
        Duration::ZERO,
        |c| {
            c.exp -= 5;
            c.node_slug = Some("node-a".into());
        },
    );
    assert_problem(o.get_url(cfg_url, &expired).await, 401, "expired").await;
}

/// The node's stored token column and the token its config hands out, on orchestrator `o`.
async fn stored_and_delivered(o: &Orchestrator, node: &Node) -> (String, String) {
    let stored: String =
        sqlx::query_scalar("SELECT worker_api_bearer_token FROM nodes WHERE node_slug = $1")
            .bind(&node.slug)
            .fetch_one(&o.db)
            .await
            .unwrap();
    let resp = o
        .get_url(&format!("{}/v1/nodes/config", o.cp), node.jwt())
        .await;
    assert_eq!(resp.status(), 200);
    let config: cynode_contracts::node::NodeConfigurationPayload = resp.json().await.unwrap();
    (stored, config.worker_api.orchestrator_bearer_token)
}

#[tokio::test]
async fn worker_tokens_are_encrypted_at_rest_migrated_and_rotated() {
    let key_a = [("WORKER_TOKEN_KEY", "key-a-0123456789abcdef")];
    let mut o = Orchestrator::start(&key_a).await;
    let url = o.database_url.clone();
    let node = Node::register(&o, "node-k", "http://127.0.0.1:1").await;
    let (stored, token) = stored_and_delivered(&o, &node).await;
    assert_eq!(token.len(), 64);
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert!(!stored.contains(&token));

    // A row from before encryption (plaintext) is encrypted at start-up, token unchanged.
    sqlx::query("UPDATE nodes SET worker_api_bearer_token = $1")
        .bind(&token)
        .execute(&o.db)
        .await
        .unwrap();
    o.stop().await;
    let mut o = Orchestrator::start_on(&url, Role::All, &key_a).await;
    let (stored, delivered) = stored_and_delivered(&o, &node).await;
    assert!(stored.starts_with("enc:v1:") && !stored.contains(&token));
    assert_eq!(delivered, token, "plaintext row migrated with its token");

    // Rotation: key B current, key A previous; the row is rewritten, the token kept.
    o.stop().await;
    let mut o = Orchestrator::start_on(
        &url,
        Role::All,
        &[
            ("WORKER_TOKEN_KEY", "key-b-0123456789abcdef"),
            ("WORKER_TOKEN_KEY_PREVIOUS", "key-a-0123456789abcdef"),
        ],
    )
    .await;
    let (rotated, delivered) = stored_and_delivered(&o, &node).await;
    assert_ne!(rotated, stored, "re-encrypted with the new key");
    assert_eq!(delivered, token);
    // Key B alone now reads it: the previous key is no longer needed.
    o.stop().await;
    let mut o = Orchestrator::start_on(
        &url,
        Role::All,
        &[("WORKER_TOKEN_KEY", "key-b-0123456789abcdef")],
    )
    .await;
    let (unchanged, delivered) = stored_and_delivered(&o, &node).await;
    assert_eq!(unchanged, rotated, "nothing to rewrite");
    assert_eq!(delivered, token);

    // A key that opens nothing: the node gets a new token and a new config version.
    let (version,): (String,) = sqlx::query_as("SELECT config_version FROM nodes")
        .fetch_one(&o.db)
        .await
        .unwrap();
    o.stop().await;
    let o = Orchestrator::start_on(
        &url,
        Role::All,
        &[("WORKER_TOKEN_KEY", "key-c-0123456789abcdef")],
    )
    .await;
    let (version_after,): (String,) = sqlx::query_as("SELECT config_version FROM nodes")
        .fetch_one(&o.db)
        .await
        .unwrap();
    let (_, delivered) = stored_and_delivered(&o, &node).await;
    assert_ne!(delivered, token, "a fresh token");
    assert_ne!(version_after, version, "the node is told to restart");
}

#[tokio::test]
async fn a_known_slug_registers_again_only_with_its_node_secret_and_admins_revoke_nodes() {
    let o = Orchestrator::start(&[]).await;
    let cap = capability("node-id", "http://127.0.0.1:1");
    let first = o.register_node_with(&cap, None).await;
    assert_eq!(first.status(), 201);
    let first: cynode_contracts::node::NodeBootstrapPayload = first.json().await.unwrap();
    let secret = first
        .auth
        .node_secret
        .clone()
        .expect("issued at first registration");
    assert_eq!(secret.len(), 64);
    let hash: Vec<u8> = sqlx::query_scalar("SELECT node_secret_hash FROM nodes")
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(hash.len(), 32, "only its hash is kept");
    let mut node = Node {
        slug: "node-id".into(),
        bootstrap: first,
        config: None,
    };
    let token = node
        .fetch_config(&o)
        .await
        .worker_api
        .orchestrator_bearer_token
        .clone();
    let row = || async {
        sqlx::query_as::<_, (uuid::Uuid, String, Option<Vec<u8>>)>(
            "SELECT id, worker_api_bearer_token, node_secret_hash FROM nodes",
        )
        .fetch_one(&o.db)
        .await
        .unwrap()
    };
    let before = row().await;

    // The PSK alone no longer takes over the slug; a malformed proof is a 400. Nothing changes
    // and the original node keeps working.
    assert_problem(o.register_node_with(&cap, None).await, 401, "node_secret").await;
    let wrong = "0".repeat(64);
    assert_problem(
        o.register_node_with(&cap, Some(&wrong)).await,
        401,
        "node_secret",
    )
    .await;
    assert_problem(
        o.register_node_with(&cap, Some("not-hex")).await,
        400,
        "node_secret",
    )
    .await;
    assert_eq!(row().await, before);
    assert_eq!(
        node.fetch_config(&o)
            .await
            .worker_api
            .orchestrator_bearer_token,
        token
    );
    // With its secret: the same node, the same token, no new secret.
    let again = o.register_node_with(&cap, Some(&secret)).await;
    assert_eq!(again.status(), 200);
    let again: cynode_contracts::node::NodeBootstrapPayload = again.json().await.unwrap();
    assert!(again.auth.node_secret.is_none());
    assert_eq!(row().await, before);

    // A node from before identities existed binds one at its next registration.
    sqlx::query("UPDATE nodes SET node_secret_hash = NULL")
        .execute(&o.db)
        .await
        .unwrap();
    let legacy = o.register_node_with(&cap, None).await;
    assert_eq!(legacy.status(), 200);
    let legacy: cynode_contracts::node::NodeBootstrapPayload = legacy.json().await.unwrap();
    let secret = legacy.auth.node_secret.expect("bound now");
    assert_eq!(
        o.register_node_with(&cap, Some(&secret)).await.status(),
        200
    );

    // Revocation: admin only; unknown slug 404; afterwards the JWT is refused and the slug is
    // a new node (new id, new token, new secret).
    o.create_user("alice", "correct-horse-a-2").await;
    let (alice, _) = o.login("alice", "correct-horse-a-2").await;
    let admin = o.admin_token().await;
    let delete = |token: String, slug: &'static str| {
        let http = o.http.clone();
        let url = format!("{}/v1/nodes/{slug}", o.gw);
        async move { http.delete(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_problem(
        delete(alice, "node-id").await,
        403,
        "node.manage is not allowed",
    )
    .await;
    assert_problem(delete(admin.clone(), "nope").await, 404, "nope").await;
    assert_eq!(delete(admin.clone(), "node-id").await.status(), 204);
    assert_eq!(o.count("nodes").await, 0);
    let resp = o
        .get_url(&format!("{}/v1/nodes/config", o.cp), node.jwt())
        .await;
    assert!(
        resp.status() == 401 || resp.status() == 404,
        "{}",
        resp.status()
    );
    let renewed = o.register_node_with(&cap, Some(&secret)).await;
    assert_eq!(renewed.status(), 201, "a new node");
    let renewed: cynode_contracts::node::NodeBootstrapPayload = renewed.json().await.unwrap();
    assert!(
        renewed
            .auth
            .node_secret
            .as_ref()
            .is_some_and(|s| *s != secret)
    );
    let after = row().await;
    assert_ne!(after.0, before.0);
    node.bootstrap = renewed;
    assert_ne!(
        node.fetch_config(&o)
            .await
            .worker_api
            .orchestrator_bearer_token,
        token
    );
}

/// An orchestrator whose runtime has gone holds no database connection: nothing of its state
/// outlives the tasks that used it (a reference cycle once kept every pool of a test binary
/// open, and a busy binary ran PostgreSQL out of connection slots).
#[tokio::test]
async fn an_orchestrator_gone_with_its_runtime_leaves_no_database_connection() {
    let database_url = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let o = Orchestrator::start(&[]).await;
            // A prompt task's planner and a login use the pool's connections.
            let admin = o.admin_token().await;
            o.create_task(&admin, json!({"prompt": "hello"})).await;
            o.database_url.clone()
        })
    })
    .join()
    .unwrap();
    let name = database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&cynode_e2e::DevEnv::load().database_url)
        .await
        .unwrap();
    let mut open = -1;
    // The server notices closed connections at once; allow it a moment all the same.
    for _ in 0..50 {
        open = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&name)
        .fetch_one(&admin)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "connections to {name} still open");
}

/// The orchestrator's caps on sandbox limits reach every node in its configuration (the node
/// manager applies the lower of cap and own limit); without caps the field is absent.
#[tokio::test]
async fn sandbox_limit_caps_reach_the_node_in_its_configuration() {
    let o = Orchestrator::start(&[
        ("NODE_SANDBOX_MEMORY_MIB", "512"),
        ("NODE_SANDBOX_WORKSPACE_MIB", "256"),
    ])
    .await;
    let mut node = Node::register(&o, "capped", "http://127.0.0.1:1").await;
    let config = node.fetch_config(&o).await.clone();
    let caps = config
        .constraints
        .unwrap()
        .sandbox_limits
        .expect("caps delivered");
    assert_eq!(
        (caps.memory_mib, caps.workspace_mib, caps.cpu_millis),
        (Some(512), Some(256), None)
    );
    // Changed caps are a new configuration (the node applies it), the same ones are not. The
    // node talks to another orchestrator process on the same database, as after a restart.
    let fetch = async |orchestrator: &Orchestrator| -> NodeConfigurationPayload {
        let url = format!("{}{}", orchestrator.cp, routes::node::CONFIG);
        let resp = orchestrator.get_url(&url, node.jwt()).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    };
    let same = Orchestrator::start_on(
        &o.database_url,
        Role::All,
        &[
            ("NODE_SANDBOX_MEMORY_MIB", "512"),
            ("NODE_SANDBOX_WORKSPACE_MIB", "256"),
        ],
    )
    .await;
    assert_eq!(fetch(&same).await.config_version, config.config_version);
    let tighter = Orchestrator::start_on(
        &o.database_url,
        Role::All,
        &[("NODE_SANDBOX_MEMORY_MIB", "256")],
    )
    .await;
    // Nodes report their capabilities periodically; the configuration follows the latest.
    let report = tighter
        .http
        .post(format!("{}{}", tighter.cp, routes::node::CAPABILITY))
        .bearer_auth(node.jwt())
        .json(&capability("capped", "http://127.0.0.1:1"))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 204);
    let changed = fetch(&tighter).await;
    assert!(changed.config_version > config.config_version);
    let caps = changed.constraints.unwrap().sandbox_limits.unwrap();
    assert_eq!((caps.memory_mib, caps.workspace_mib), (Some(256), None));

    let o = Orchestrator::start(&[]).await;
    let mut node = Node::register(&o, "free", "http://127.0.0.1:1").await;
    let constraints = node.fetch_config(&o).await.constraints.clone().unwrap();
    assert_eq!(constraints.sandbox_limits, None);
}
