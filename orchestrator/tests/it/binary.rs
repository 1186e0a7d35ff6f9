//! The real `cynode-orchestrator` binary: systemd readiness, configuration errors, secrets kept
//! out of its output, and a crash in the middle of a dispatch.

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use cynode_e2e::notify::NotifySocket;
use cynode_e2e::process::{ChildGuard, binary, wait_http};
use cynode_e2e::{DevEnv, free_port};
use serde_json::Value;
use tokio::process::Command;

/// An `extra` value that removes the variable instead of setting it.
const UNSET: &str = "\u{0}unset";

struct Proc {
    child: ChildGuard,
    gw: String,
    cp: String,
    stderr: std::path::PathBuf,
}

/// Starts `cynode-orchestrator all` with secrets from env and files, on fresh ports.
fn spawn(dir: &Path, database_url: &str, notify: Option<&Path>, extra: &[(&str, &str)]) -> Proc {
    let (cp_port, gw_port) = (free_port(), free_port());
    let password_file = dir.join("admin-password");
    std::fs::write(&password_file, format!("{ADMIN_PASSWORD}\n")).unwrap();
    let stderr = dir.join(format!("stderr-{cp_port}.log"));
    let mut cmd = Command::new(binary("cynode-orchestrator"));
    cmd.arg("all")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        // The worker doubles serve no model: readiness is the node part (PM: tests/pm.rs).
        .env("PM_REQUIRED", "false")
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("NODE_REGISTRATION_PSK", PSK)
        .env("BOOTSTRAP_ADMIN_PASSWORD_FILE", &password_file)
        .env("CONTROL_PLANE_LISTEN_ADDR", format!("127.0.0.1:{cp_port}"))
        .env("USER_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gw_port}"))
        .env("MCP_LISTEN_ADDR", "127.0.0.1:0")
        .env(
            "ORCHESTRATOR_PUBLIC_URL",
            format!("http://127.0.0.1:{cp_port}"),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    if let Some(socket) = notify {
        cmd.env("NOTIFY_SOCKET", socket);
    }
    for (k, v) in extra {
        if *v == UNSET {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    Proc {
        child: ChildGuard::spawn(&mut cmd),
        gw: format!("http://127.0.0.1:{gw_port}"),
        cp: format!("http://127.0.0.1:{cp_port}"),
        stderr,
    }
}

/// An [`Orchestrator`] handle for HTTP helpers, pointing at a running binary.
async fn handle(p: &Proc, database_url: &str) -> Orchestrator {
    assert!(
        wait_http(&format!("{}/healthz", p.gw), 200, LIMIT).await,
        "binary did not come up"
    );
    Orchestrator {
        running: None,
        gw: p.gw.clone(),
        cp: p.cp.clone(),
        db: sqlx::PgPool::connect(database_url).await.unwrap(),
        database_url: database_url.to_owned(),
        http: reqwest::Client::new(),
    }
}

#[tokio::test]
async fn ready_is_announced_status_follows_readiness_and_secrets_stay_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // An empty database, unlike the other tests' migrated copies: the start migrates it.
    let db = DevEnv::load().fresh_database().await;
    let mut notify = NotifySocket::bind();
    let mut p = spawn(dir.path(), &db, Some(notify.path()), &[]);
    assert!(
        notify.wait_for("READY=1", LIMIT).await,
        "no READY=1: {:?}",
        notify.received()
    );
    let o = handle(&p, &db).await;
    // Migrated before READY: the schema is there.
    assert!(o.count("users").await >= 2);
    let waiting = "STATUS=not ready: no inference path available";
    let waiting_seen = |n: &NotifySocket| n.received().iter().any(|l| l.starts_with(waiting));
    notify.drain(Duration::from_millis(500)).await;
    assert!(waiting_seen(&notify), "{:?}", notify.received());

    let worker = WorkerDouble::start(Mode::Instant).await;
    let (_node, token) = Node::ready(&o, "n1", &worker).await;
    assert!(
        notify
            .wait_for("STATUS=ready: 1 dispatchable node(s)", LIMIT)
            .await,
        "{:?}",
        notify.received()
    );
    let admin = o.admin_token().await;
    let id = o.create_script_task(&admin, "echo via binary").await;
    let task = o
        .wait_task(&admin, &id, LIMIT, |t| t["status"] == "completed")
        .await;
    assert_eq!(task["status"], "completed");

    let status = p.child.terminate(LIMIT).await.expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&p.stderr).unwrap();
    assert!(log.contains("request"), "the log is not empty");
    for secret in [
        JWT_SECRET,
        PSK,
        ADMIN_PASSWORD,
        token.as_str(),
        admin.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret leaked into the log");
    }
    assert!(
        !log.contains(db.split('@').next().unwrap()),
        "the database password leaked"
    );
}

#[tokio::test]
async fn missing_secrets_stop_the_start_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = DevEnv::load().migrated_database().await;
    // No admin yet and no password: refuse, name every way to give it.
    let mut p = spawn(
        dir.path(),
        &db,
        None,
        &[("BOOTSTRAP_ADMIN_PASSWORD_FILE", UNSET)],
    );
    let status = p.child.wait_exit(LIMIT).await.expect("exits");
    assert!(!status.success());
    let log = std::fs::read_to_string(&p.stderr).unwrap();
    assert!(log.contains("BOOTSTRAP_ADMIN_PASSWORD"), "{log}");
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE handle = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admins, 0, "no default admin");

    // A weak secret is a configuration error: EX_CONFIG, which the units do not restart on.
    let mut p = spawn(dir.path(), &db, None, &[("JWT_SECRET", "short")]);
    assert_eq!(p.child.wait_exit(LIMIT).await.unwrap().code(), Some(78));
    assert!(
        std::fs::read_to_string(&p.stderr)
            .unwrap()
            .contains("JWT_SECRET")
    );
}

#[tokio::test]
async fn a_crash_mid_dispatch_loses_nothing_and_runs_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = DevEnv::load().migrated_database().await;
    let settings = [
        ("DISPATCH_HTTP_TIMEOUT", "2s"),
        ("DISPATCH_CONCURRENCY", "2"),
    ];
    let mut first = spawn(dir.path(), &db, None, &settings);
    let o = handle(&first, &db).await;
    let worker = WorkerDouble::start(Mode::Block).await;
    Node::ready(&o, "n1", &worker).await;
    let admin = o.admin_token().await;
    let ids = o.create_echo_tasks(&admin, 4).await;
    // Two jobs are with the worker, two wait in the queue; then the orchestrator dies.
    worker.wait_received(LIMIT, |r| r.len() == 2).await;
    first.child.0.start_kill().unwrap();
    first.child.wait_exit(LIMIT).await.expect("killed");
    let in_flight: HashSet<_> = worker.received().iter().map(|r| r.job_id).collect();
    let leased: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'running'")
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(leased, 2, "the dead process still holds two leases");

    // From now on the worker answers at once; the requests of the dead process are never answered.
    worker.set_mode(Mode::Instant);
    let second = spawn(dir.path(), &db, None, &settings);
    let o2 = handle(&second, &db).await;
    for id in &ids {
        let task = o2
            .wait_task(&admin, id, LIMIT, |t| t["status"] == "completed")
            .await;
        assert_eq!(task["status"], "completed");
    }
    let completed = worker.completed();
    assert_eq!(completed.len(), 4, "every job ran");
    assert!(
        completed.values().all(|n| *n == 1),
        "no job ran twice: {completed:?}"
    );
    let rows: Vec<(uuid::Uuid, i32, Value)> =
        sqlx::query_as("SELECT id, attempts, result FROM jobs")
            .fetch_all(&o2.db)
            .await
            .unwrap();
    for (job_id, attempts, result) in rows {
        assert_eq!(result["job_id"], job_id.to_string());
        if in_flight.contains(&job_id) {
            assert_eq!(attempts, 2, "requeued exactly once");
        } else {
            assert_eq!(attempts, 1);
        }
    }
    let reclaims = std::fs::read_to_string(&second.stderr)
        .unwrap()
        .matches("expired lease reclaimed")
        .count();
    assert_eq!(reclaims, 2);
}

/// A config file that does not parse stops the start with EX_CONFIG (78), which the units do not
/// restart on, and names the file; nothing is contacted.
#[tokio::test]
async fn an_invalid_config_file_exits_78_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orchestrator.toml");
    std::fs::write(&file, "listen = [unclosed\n").unwrap();
    let output = Command::new(binary("cynode-orchestrator"))
        .arg("--config")
        .arg(&file)
        .arg("all")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(78), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("orchestrator.toml"), "{stderr}");
}

/// `worker-token --node SLUG` gives an operator (and the benches) a node's worker token, which
/// the database holds only encrypted: exactly the token on stdout; an unknown node or the wrong
/// key fails with the reason and prints no token.
#[tokio::test]
async fn worker_token_prints_the_decrypted_token_of_a_node_and_nothing_else() {
    let o = Orchestrator::start(&[]).await;
    let worker = WorkerDouble::start(Mode::Instant).await;
    let (_node, token) = Node::ready(&o, "n1", &worker).await;
    let stored: String =
        sqlx::query_scalar("SELECT worker_api_bearer_token FROM nodes WHERE node_slug = 'n1'")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert!(!stored.contains(&token), "the token is stored in plaintext");
    let run = |slug: &str, jwt_secret: &str| {
        Command::new(binary("cynode-orchestrator"))
            .args(["worker-token", "--node", slug])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &o.database_url)
            .env("JWT_SECRET", jwt_secret)
            .env("NODE_REGISTRATION_PSK", PSK)
            .output()
    };
    let out = run("n1", JWT_SECRET).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{token}\n"));
    assert!(!stderr.contains(&token), "{stderr}");

    let out = run("nope", JWT_SECRET).await.unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("node nope does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without WORKER_TOKEN_KEY the key comes from the JWT secret: another secret cannot open it.
    let out = run("n1", "another-jwt-secret-0123456789abcdef")
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("cannot decrypt the worker token of node n1"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token), "{stderr}");
}
