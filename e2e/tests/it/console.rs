//! The web console in real Chromium against the real stack: `cynode-orchestrator all` serving
//! `console/dist` (`CONSOLE_DIR`), the real node manager and worker API on the real Podman
//! socket, and the dev llama.cpp server with SmolLM2-135M as the node's model. The browser
//! suite itself is `e2e/browser/` (plain `node --test` files driving Debian's `/usr/bin/chromium`
//! with playwright-core; see `e2e/browser/lib.mjs`); this test starts the stack, hands the suite
//! its addresses and the admin's login, and fails with the suite's own output when any browser
//! test fails. Screenshots of every page at desktop and phone widths land in
//! `target/console-artifacts/` (or `$CONSOLE_ARTIFACTS`).
//!
//! A second orchestrator, with an https public URL and no node, answers the security test's
//! question whether the session cookie is `Secure` when the gateway is reached over https.

use crate::node_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cynode_e2e::DevEnv;
use node_support::{NodeManager, Orchestrator, User};
use serde_json::json;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The whole browser suite: the model answers prompt tasks and chats on two shared cores.
const SUITE_LIMIT: Duration = Duration::from_secs(25 * 60);

/// The address the gateway trusts as a TLS-terminating proxy (`X-Forwarded-Proto: https`); the
/// suite connects from it (a loopback address of its own) to be that proxy.
const TRUSTED_PROXY: &str = "127.0.0.2";

/// Every page the accessibility test saves, each at both widths.
const SCREENSHOTS: &[&str] = &[
    "login",
    "tasks",
    "task-new",
    "task-detail",
    "chat",
    "chat-thread",
    "keys",
    "preferences",
    "projects",
    "password",
    "api-docs",
    "nodes",
    "node-detail",
    "users",
    "groups",
    "audit",
    "rules",
    "not-found",
    "forbidden",
    "login-dark",
    "tasks-dark",
];

/// Stored as a model's answer in a thread of the admin's: Markdown that would run script if the
/// console rendered it unsanitized. A model can say anything; the console must keep it inert.
const HOSTILE_MARKDOWN: &str = r#"# Rendered heading

This answer is **bold** and holds hostile markup:

<script>window.__cynodeXss = 'script'</script>

<img src="/no-such-image.png" onerror="window.__cynodeXss = 'img'">

[a javascript link](javascript:window.__cynodeXss='markdown-link')

<a href="javascript:window.__cynodeXss='html-link'">an html link</a>

<iframe src="javascript:parent.__cynodeXss='iframe'"></iframe>

<svg><script>window.__cynodeXss = 'svg'</script></svg>

[a safe link](https://example.invalid/docs)

Text that looks like a tag, as SmolLM2 answers now and then: <what the output shows when it worked>
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ lives in the repository")
        .to_path_buf()
}

#[tokio::test]
async fn the_web_console_passes_its_browser_suite_against_the_real_stack() {
    let repo = repo_root();
    let dist = repo.join("console").join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "{} is missing: build the console first (`just console`, or `scripts/bootstrap.sh`, which runs `npm ci` and `npm run build` in console/)",
        dist.join("index.html").display()
    );
    let suite = repo.join("e2e").join("browser");
    assert!(
        suite.join("node_modules").join("playwright-core").is_dir(),
        "{} has no node_modules: run `scripts/bootstrap.sh` (npm ci in e2e/browser)",
        suite.display()
    );
    let artifacts = std::env::var_os("CONSOLE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target").join("console-artifacts"));
    // Last run's pictures must not pass for this run's.
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts).unwrap();
    }
    std::fs::create_dir_all(&artifacts).unwrap();

    let env = DevEnv::load();
    let dist_text = dist.display().to_string();
    let orchestrator = Orchestrator::start(
        &env,
        &[
            ("CONSOLE_DIR", dist_text.as_str()),
            ("TRUSTED_PROXIES", TRUSTED_PROXY),
        ],
    )
    .await;
    let node = NodeManager::start_serving(&env, &orchestrator).await;
    let https = Orchestrator::start(
        &env,
        &[
            ("CONSOLE_DIR", dist_text.as_str()),
            ("USER_GATEWAY_PUBLIC_URL", "https://console.example.invalid"),
        ],
    )
    .await;
    let xss_thread = seed_hostile_thread(&orchestrator).await;

    let mut command = tokio::process::Command::new("node");
    command
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .arg(&suite)
        .current_dir(&repo)
        .env("GATEWAY_URL", &orchestrator.gw)
        .env("HTTPS_GATEWAY_URL", &https.gw)
        .env("TRUSTED_PROXY", TRUSTED_PROXY)
        .env("ADMIN_HANDLE", "admin")
        .env("ADMIN_PASSWORD", &orchestrator.admin_password)
        .env("HTTPS_ADMIN_PASSWORD", &https.admin_password)
        .env("PYTHON", &env.python)
        .env("MODEL", &env.inference_model)
        .env("NODE_SLUG", &node.slug)
        .env("XSS_THREAD_ID", &xss_thread)
        .env("CONSOLE_ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .expect("node runs (Node.js 20 is on the machine)");
    // The suite's output as it comes (nextest shows it for a failure), and kept for the tally.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let relay = |stream: Box<dyn tokio::io::AsyncRead + Unpin + Send>, err: bool| {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            let mut kept = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if err {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
                kept.push(line);
            }
            kept
        })
    };
    let out = relay(Box::new(stdout), false);
    let err = relay(Box::new(stderr), true);
    let status = tokio::time::timeout(SUITE_LIMIT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the browser suite did not finish within {SUITE_LIMIT:?}"))
        .expect("wait for node");
    let out = out.await.unwrap();
    let err = err.await.unwrap();
    assert!(
        status.success(),
        "the browser suite failed ({status}); its stderr:\n{}\n--- orchestrator log (tail):\n{}",
        err.join("\n"),
        tail(&orchestrator.log(), 80)
    );

    // A suite that found no test would pass too: the tally must show every file's tests ran.
    let count = |label: &str| -> u64 {
        out.iter()
            .rev()
            .find_map(|l| l.trim().strip_prefix(&format!("ℹ {label} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `ℹ {label} N` line in the suite's output"))
    };
    assert!(count("pass") >= 60, "too few browser tests ran: {out:?}");
    assert_eq!(count("fail"), 0);
    assert_eq!(count("skipped"), 0, "a browser test skipped itself");
    assert_eq!(count("todo"), 0);
    assert_eq!(count("cancelled"), 0);

    for page in SCREENSHOTS {
        for width in ["desktop", "phone"] {
            let file = artifacts.join(format!("{page}-{width}.png"));
            let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(size > 1000, "{} missing or empty", file.display());
        }
    }
    let metrics = std::fs::read_to_string(artifacts.join("metrics.json"))
        .expect("the performance test wrote metrics.json");
    let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    for key in [
        "gzip_js_css_bytes_login_and_tasks",
        "tti_ms",
        "longest_long_task_ms",
    ] {
        assert!(metrics[key].is_number(), "{key} missing in {metrics}");
    }
    println!("console metrics: {metrics}");
    drop(node);
}

/// A real thread of the admin's (one real completion through the gateway), then an assistant
/// message with hostile Markdown appended to it as if the model had answered so, and the thread
/// left idle. Returns the thread's id.
async fn seed_hostile_thread(orchestrator: &Orchestrator) -> String {
    let user = User::login(orchestrator).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", orchestrator.gw))
        .bearer_auth(user.token())
        .json(&json!({"model": node_support::MODEL, "max_tokens": 4,
                      "messages": [{"role": "user", "content": "Show me some Markdown."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let thread = resp
        .headers()
        .get("x-cynodeai-thread-id")
        .expect("the answer names its thread")
        .to_str()
        .unwrap()
        .to_owned();
    let mut db = sqlx::PgConnection::connect(&orchestrator.database_url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO chat_messages (id, thread_id, role, content, model)
         VALUES ($1, $2::uuid, 'assistant', $3, $4)",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(&thread)
    .bind(HOSTILE_MARKDOWN)
    .bind(node_support::MODEL)
    .execute(&mut db)
    .await
    .unwrap();
    // Idle, so that the chat test's new conversation starts a thread of its own.
    sqlx::query(
        "UPDATE chat_threads SET updated_at = now() - interval '3 hours' WHERE id = $1::uuid",
    )
    .bind(&thread)
    .execute(&mut db)
    .await
    .unwrap();
    thread
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
