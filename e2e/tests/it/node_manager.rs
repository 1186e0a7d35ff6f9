//! The node manager against the real orchestrator, PostgreSQL, Podman, worker API and inference
//! server: systemd readiness comes only after the `applied` ack is in PostgreSQL; without
//! inference the node never becomes ready, exits non-zero and the orchestrator stays unready;
//! with no inference running it starts the container itself and removes it on SIGTERM.

use crate::node_support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::metrics::sample;
use node_support::{
    INFERENCE_COMMAND, NodeManager, NodeOptions, Orchestrator, container_exists, remove_container,
    start_inference_server, unique_container_name,
};

const START_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn ready_comes_only_after_the_applied_ack_is_recorded_in_postgres() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let (status, reason) = orchestrator.readyz().await;
    assert_eq!(status, 503, "no node yet: {reason}");

    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options
        .extra_env
        .push(("CAPABILITY_REPORT_INTERVAL".into(), "1s".into()));
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;

    // The ack was committed before the orchestrator answered 204, and READY=1 only follows 204.
    let row = orchestrator.node_row(&node.slug).await.expect("node row");
    assert_eq!(row.ack_status.as_deref(), Some("applied"), "{row:?}");
    assert_eq!(
        row.ack_version.as_deref(),
        Some(row.config_version.as_str())
    );
    assert_eq!(
        row.worker_url.as_deref(),
        Some(format!("http://127.0.0.1:{}", node.worker_port).as_str())
    );
    let (status, reason) = orchestrator.ready_within(Duration::from_secs(90)).await;
    assert_eq!(status, 200, "{reason}");

    node.assert_started_in_order();

    // The worker API child got the delivered token over stdin: it answers with it, and the
    // token is in no argv, environment, log or the node's state database.
    let token = row.worker_token.expect("per-node worker token");
    let children = node.children();
    assert_eq!(children.len(), 1, "exactly the worker API: {children:?}");
    let worker = children[0];
    let cmdline = std::fs::read(format!("/proc/{worker}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
    for (what, bytes) in [("cmdline", &cmdline), ("environ", &environ)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(&token), "token in the worker's {what}");
        assert!(
            !text.contains(&orchestrator.psk),
            "PSK in the worker's {what}"
        );
        assert!(
            !text.contains("NOTIFY_SOCKET"),
            "notify socket in the worker's {what}"
        );
    }
    let http = reqwest::Client::new();
    let run = format!("http://127.0.0.1:{}/v1/worker/jobs:run", node.worker_port);
    let unauthorized = http
        .post(&run)
        .bearer_auth("wrong")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let authorized = http
        .post(&run)
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), 400, "past auth, rejected as a bad job");

    let db_path = node.state_dir().join("node_manager.db");
    let mode = std::fs::metadata(&db_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let db_bytes = std::fs::read(&db_path).unwrap();
    let db_text = String::from_utf8_lossy(&db_bytes);
    assert!(db_text.contains(&node.slug), "identity persisted");
    assert!(!db_text.contains(&token), "worker token persisted");
    assert!(!db_text.contains("eyJ"), "node JWT persisted");
    // The node's identity secret, issued at its first registration: 0600, next to the database.
    let secret_path = node.state_dir().join("node_secret");
    let secret = std::fs::read_to_string(&secret_path).expect("node_secret kept");
    assert_eq!(secret.len(), 64);
    assert_eq!(
        std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        !db_text.contains(&secret),
        "the secret is its own file only"
    );
    let log = node.log();
    assert!(
        !log.contains(&token) && !log.contains(&orchestrator.psk),
        "secret in log"
    );
    // One line from the worker API (strict policy), then one from the node manager after its
    // ack (best effort); both go through service-kit's hardening module.
    let hardening: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("self-hardening applied"))
        .collect();
    assert_eq!(hardening.len(), 2, "{log}");
    eprintln!("{}", hardening.join("\n"));

    eprintln!(
        "node-manager idle VmRSS after READY: {} KiB",
        node.rss_kib()
    );

    // While healthy: watchdog pings, and capability reports on schedule (interval 1 s here).
    assert!(
        node.notify
            .wait_for("WATCHDOG=1", Duration::from_secs(10))
            .await,
        "{:?}",
        node.notify.received()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while orchestrator.capability_reports(&node.slug).await < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no periodic capability reports:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = orchestrator.node_row(&node.slug).await.unwrap();
    assert_eq!(
        row.ack_version.as_deref(),
        Some(row.config_version.as_str()),
        "periodic reports do not change the configuration the node acked"
    );

    // SIGTERM stops the worker API and exits cleanly.
    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        node.log()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{worker}")).exists()
            || std::fs::read_to_string(format!("/proc/{worker}/status"))
                .is_ok_and(|s| s.contains("zombie")),
        "worker API still running after the node manager stopped"
    );
}

#[tokio::test]
async fn without_inference_the_node_never_becomes_ready_and_exits_non_zero() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(
        &env,
        &[
            (
                "NODE_INFERENCE_IMAGE",
                "localhost/cynode-no-such-image:latest",
            ),
            ("NODE_INFERENCE_COMMAND", INFERENCE_COMMAND),
        ],
    )
    .await;
    let options = NodeOptions {
        extra_yaml: String::new(),
        // Nobody listens here, and the image cannot start.
        inference_url: format!("http://127.0.0.1:{}", cynode_e2e::free_port()),
        inference_image: "localhost/cynode-no-such-image:latest".into(),
        container_name: unique_container_name(),
        psk: orchestrator.psk.clone(),
        extra_env: Vec::new(),
        existing_wait_seconds: 0,
    };
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    let status = node.process.wait_exit(START_LIMIT).await;
    node.notify.drain(Duration::from_millis(300)).await;
    let log = node.log();
    let status = status.unwrap_or_else(|| panic!("still running; log:\n{log}"));
    assert!(!status.success(), "exit status {status:?}");
    assert!(
        !node.notify.received().iter().any(|l| l == "READY=1"),
        "{:?}",
        node.notify.received()
    );
    let last = node.statuses().last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("failed:") && last.contains("cynode-no-such-image"),
        "the last STATUS says why: {last:?}"
    );

    let row = orchestrator.node_row(&node.slug).await.expect("node row");
    assert_eq!(row.ack_status.as_deref(), Some("failed"), "{row:?}");
    assert!(
        row.ack_error
            .as_deref()
            .is_some_and(|e| e.contains("inference_start_failed")),
        "{row:?}"
    );
    let (code, reason) = orchestrator.readyz().await;
    assert_eq!(code, 503, "{reason}");
    assert!(!container_exists(&env, &options.container_name).await);
}

#[tokio::test]
async fn with_no_inference_running_it_starts_the_container_and_removes_it_on_sigterm() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(
        &env,
        &[
            ("NODE_INFERENCE_IMAGE", env.inference_image.as_str()),
            ("NODE_INFERENCE_COMMAND", INFERENCE_COMMAND),
        ],
    )
    .await;
    let port = cynode_e2e::free_port();
    let options = NodeOptions {
        extra_yaml: String::new(),
        inference_url: format!("http://127.0.0.1:{port}"),
        inference_image: "localhost/cynode-no-such-image:latest".into(),
        container_name: unique_container_name(),
        psk: orchestrator.psk.clone(),
        extra_env: Vec::new(),
        existing_wait_seconds: 0,
    };
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;

    let podman = env.podman();
    let info = podman
        .containers()
        .get(&options.container_name)
        .inspect()
        .await
        .expect("the node manager created the inference container");
    let image = info.image_name.clone().unwrap_or_default();
    assert_eq!(image, env.inference_image, "the orchestrator's image");
    let bindings = info
        .host_config
        .and_then(|h| h.port_bindings)
        .expect("published port");
    let binding = bindings
        .get("11434/tcp")
        .and_then(|b| b.as_ref())
        .and_then(|b| b.first())
        .cloned()
        .expect("11434/tcp binding");
    assert_eq!(
        binding.host_ip.as_deref(),
        Some("127.0.0.1"),
        "loopback only"
    );
    assert_eq!(binding.host_port, Some(port.to_string()));
    let models: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models.to_string().contains(node_support::MODEL), "{models}");
    let row = orchestrator.node_row(&node.slug).await.unwrap();
    assert_eq!(row.ack_status.as_deref(), Some("applied"));

    let status = node.process.terminate(Duration::from_secs(60)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        node.log()
    );
    assert!(
        !container_exists(&env, &options.container_name).await,
        "inference container left behind"
    );
}

#[tokio::test]
async fn a_wrong_psk_is_a_clear_error_retried_with_growing_delays() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options.psk = "not-the-psk".into();
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    // Attempts at 0 s, 1 s, 3 s and 7 s: wait for the fourth failure's status line.
    let failures = |node: &NodeManager| {
        node.statuses()
            .iter()
            .filter(|s| s.starts_with("registration failed"))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while failures(&node) < 4 && tokio::time::Instant::now() < deadline {
        node.notify.drain(Duration::from_millis(500)).await;
    }
    assert!(
        failures(&node) >= 4,
        "statuses {:?}\n{}",
        node.statuses(),
        node.log()
    );
    let retries: Vec<String> = node
        .statuses()
        .iter()
        .filter(|s| s.starts_with("registration failed"))
        .map(|s| {
            s.rsplit("retrying in ")
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(retries[..4], ["1s", "2s", "4s", "8s"], "{retries:?}");
    assert!(
        node.statuses()[0..]
            .iter()
            .any(|s| s.contains("pre-shared key")),
        "the error names the PSK: {:?}",
        node.statuses()
    );
    assert!(
        node.process.0.try_wait().unwrap().is_none(),
        "keeps retrying"
    );
    assert!(!node.notify.received().iter().any(|l| l == "READY=1"));
    let (code, _) = orchestrator.readyz().await;
    assert_eq!(code, 503);
    assert!(
        orchestrator.node_row(&node.slug).await.is_none(),
        "no node row"
    );
}

#[tokio::test]
async fn the_node_renews_its_jwt_before_it_expires_and_stays_dispatchable() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[("JWT_NODE_DURATION", "4s")]).await;
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options
        .extra_env
        .push(("CAPABILITY_REPORT_INTERVAL".into(), "1s".into()));
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;

    // Renewal is due at 80 % of the lifetime (3.2 s); wait for two of them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while node.log().matches("node JWT renewed").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no JWT renewal:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = node.log();
    assert!(!log.contains("capability report failed"), "{log}");
    let reports_before = orchestrator.capability_reports(&node.slug).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        orchestrator.capability_reports(&node.slug).await > reports_before,
        "reports keep being accepted after the first JWT expired"
    );
    let (code, reason) = orchestrator.ready_within(Duration::from_secs(90)).await;
    assert_eq!(code, 200, "{reason}");
}

#[tokio::test]
async fn sigterm_while_waiting_for_the_model_removes_the_container_it_created() {
    let env = DevEnv::load();
    // The container serves another alias, so the selected model never shows up.
    let orchestrator = Orchestrator::start(
        &env,
        &[
            ("NODE_INFERENCE_IMAGE", env.inference_image.as_str()),
            (
                "NODE_INFERENCE_COMMAND",
                "-m /models/model.gguf --alias some-other-model --host 0.0.0.0 --port 11434",
            ),
        ],
    )
    .await;
    let options = NodeOptions {
        extra_yaml: String::new(),
        inference_url: format!("http://127.0.0.1:{}", cynode_e2e::free_port()),
        inference_image: "localhost/cynode-no-such-image:latest".into(),
        container_name: unique_container_name(),
        psk: orchestrator.psk.clone(),
        extra_env: Vec::new(),
        existing_wait_seconds: 0,
    };
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    let deadline = tokio::time::Instant::now() + START_LIMIT;
    while !container_exists(&env, &options.container_name).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no container:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = node.process.terminate(Duration::from_secs(60)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        node.log()
    );
    node.notify.drain(Duration::from_millis(200)).await;
    assert!(!node.notify.received().iter().any(|l| l == "READY=1"));
    assert!(
        !container_exists(&env, &options.container_name).await,
        "inference container left behind:\n{}",
        node.log()
    );
}

#[tokio::test]
async fn a_killed_node_manager_leaves_no_worker_api_behind() {
    // systemd's KillMode=mixed would clean up the cgroup, but outside systemd (and after an
    // OOM kill) nothing else would stop the worker API: it must notice its parent is gone.
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let options = NodeOptions::existing_inference(&env, &orchestrator);
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(Duration::from_secs(120)).await;
    let workers = node.children();
    assert_eq!(
        workers.len(),
        1,
        "expected exactly the worker API as child: {workers:?}"
    );
    let worker = workers[0];
    let healthz = format!("http://127.0.0.1:{}/healthz", node.worker_port);
    assert!(cynode_e2e::process::wait_http(&healthz, 200, Duration::from_secs(5)).await);

    node.process.0.start_kill().unwrap();
    node.process.wait_exit(Duration::from_secs(10)).await;
    let mut gone = false;
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{worker}")).exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "worker API {worker} outlived its killed node manager");
    assert!(
        reqwest::get(&healthz).await.is_err(),
        "{healthz} still answers"
    );
}

#[tokio::test]
async fn a_new_config_version_restarts_the_node_which_then_acks_it() {
    // Dispatch needs the ack of the node's current config_version. An orchestrator restarted
    // with other inference settings issues a new one; the node must notice, stop cleanly and
    // exit 75 so that systemd's Restart=on-failure brings it back to ack the new version.
    let env = DevEnv::load();
    let mut orchestrator = Orchestrator::start(&env, &[]).await;
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options
        .extra_env
        .push(("CAPABILITY_REPORT_INTERVAL".into(), "1s".into()));
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;
    let first = orchestrator.node_row(&node.slug).await.unwrap();
    assert_eq!(
        first.ack_version.as_deref(),
        Some(first.config_version.as_str())
    );
    let workers = node.children();
    assert_eq!(workers.len(), 1, "exactly the worker API: {workers:?}");
    let worker = workers[0];

    // Another inference image changes the node's configuration content; the dev server still
    // serves the model, so the restarted node can apply it.
    orchestrator
        .restart_with(&[(
            "NODE_INFERENCE_IMAGE",
            "localhost/cynode-other-inference:latest",
        )])
        .await;
    let status = node.process.wait_exit(Duration::from_secs(60)).await;
    node.notify.drain(Duration::from_millis(300)).await;
    let status = status.unwrap_or_else(|| {
        panic!(
            "the node manager kept running on an unacked configuration:\n{}",
            node.log()
        )
    });
    assert_eq!(status.code(), Some(75), "{status:?}\n{}", node.log());

    let second = orchestrator.node_row(&node.slug).await.unwrap();
    assert_ne!(second.config_version, first.config_version);
    assert_eq!(
        second.ack_version.as_deref(),
        Some(first.config_version.as_str()),
        "the old process acked nothing new"
    );
    let announced = format!(
        "configuration changed from {} to {}; restarting to apply it",
        first.config_version, second.config_version
    );
    let received = node.notify.received().to_vec();
    let at = received
        .iter()
        .position(|l| l == &format!("STATUS={announced}"))
        .unwrap_or_else(|| panic!("no STATUS={announced:?} in {received:?}"));
    assert!(
        !received[at..].iter().any(|l| l == "WATCHDOG=1"),
        "watchdog pinged after the change: {received:?}"
    );
    assert!(node.log().contains(&announced), "{}", node.log());
    assert!(
        !std::path::Path::new(&format!("/proc/{worker}")).exists(),
        "worker API {worker} outlived the node manager"
    );
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", node.worker_port))
            .await
            .is_err(),
        "the worker API still answers"
    );

    // As systemd would: the fresh start acks the new version and the node is dispatchable again.
    node.restart();
    node.expect_ready(START_LIMIT).await;
    let third = orchestrator.node_row(&node.slug).await.unwrap();
    assert_eq!(third.config_version, second.config_version);
    assert_eq!(third.ack_status.as_deref(), Some("applied"));
    assert_eq!(
        third.ack_version.as_deref(),
        Some(second.config_version.as_str())
    );
    let (code, reason) = orchestrator.ready_within(Duration::from_secs(90)).await;
    assert_eq!(code, 200, "{reason}");
    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test]
async fn an_existing_inference_server_that_stops_answering_does_not_change_the_configuration() {
    // existing_service is how the node got its inference, decided at start-up; the orchestrator
    // derives inference_backend.enabled from it. If a failed probe flipped it, the node would get
    // a new config_version it never acked and silently drop out of dispatch.
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let port = cynode_e2e::free_port();
    let server = unique_container_name();
    start_inference_server(&env, &server, port).await;
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options.inference_url = format!("http://127.0.0.1:{port}");
    options
        .extra_env
        .push(("CAPABILITY_REPORT_INTERVAL".into(), "1s".into()));
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;
    let before = orchestrator.node_row(&node.slug).await.unwrap();
    let inference = orchestrator.latest_inference_report(&node.slug).await;
    assert_eq!(inference["existing_service"], true, "{inference}");
    assert_eq!(inference["running"], true, "{inference}");

    remove_container(&env, &server).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let inference = orchestrator.latest_inference_report(&node.slug).await;
        if inference["running"] == false {
            assert_eq!(inference["existing_service"], true, "{inference}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no report of the stopped server: {inference}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more report-and-check rounds: the configuration stays the acked one and the node
    // keeps running (degraded, without watchdog pings) rather than restarting.
    let reports = orchestrator.capability_reports(&node.slug).await;
    while orchestrator.capability_reports(&node.slug).await < reports + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reports stopped:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = orchestrator.node_row(&node.slug).await.unwrap();
    assert_eq!(after.config_version, before.config_version);
    assert_eq!(
        after.ack_version.as_deref(),
        Some(after.config_version.as_str())
    );
    assert!(
        node.process.0.try_wait().unwrap().is_none(),
        "the node manager exited:\n{}",
        node.log()
    );
    while !node.statuses().iter().any(|s| s.starts_with("degraded:")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no degraded status: {:?}",
            node.statuses()
        );
        node.notify.drain(Duration::from_millis(200)).await;
    }
    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test]
async fn the_node_manager_and_its_worker_serve_metrics_on_their_own_listeners() {
    let env = DevEnv::load();
    let orchestrator = Orchestrator::start(&env, &[]).await;
    let (node_port, worker_port) = (cynode_e2e::free_port(), cynode_e2e::free_port());
    let mut options = NodeOptions::existing_inference(&env, &orchestrator);
    options
        .extra_env
        .push(("CAPABILITY_REPORT_INTERVAL".into(), "1s".into()));
    options.extra_yaml = format!(
        "metrics:\n  listen: 127.0.0.1:{node_port}\n  worker_listen: 127.0.0.1:{worker_port}\n"
    );
    let mut node = NodeManager::start(&env, &orchestrator, &options);
    node.expect_ready(START_LIMIT).await;

    let node_url = format!("http://127.0.0.1:{node_port}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (text, scrape) = loop {
        let (text, scrape) = cynode_e2e::metrics::scrape(&node_url).await;
        let reports = sample(
            &scrape,
            "cynode_node_capability_reports",
            &[("result", "ok")],
        );
        let healthy = sample(&scrape, "cynode_node_healthy", &[]);
        if reports.unwrap_or(0.0) >= 1.0 && healthy == Some(1.0) {
            break (text, scrape);
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        sample(
            &scrape,
            "cynode_node_capability_reports",
            &[("result", "failed")]
        ),
        None,
        "{text}"
    );
    let (text, worker) =
        cynode_e2e::metrics::scrape(&format!("http://127.0.0.1:{worker_port}/metrics")).await;
    assert_eq!(
        sample(&worker, "cynode_worker_sandboxes_running", &[]),
        Some(0.0),
        "{text}"
    );
    let status = node.process.terminate(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{}", node.log());
}
