//! Bad input that needs no gateway: usage errors, a gateway that is down, attachments refused
//! before anything is sent.

use crate::common;

use std::io::ErrorKind;
use std::net::TcpListener;

use common::Cynork;

const USAGE: i32 = 2;
const NETWORK: i32 = 7;

#[tokio::test]
async fn unknown_flags_and_commands_suggest_the_right_one() {
    let cli = Cynork::new("http://127.0.0.1:9");
    let run = cli.run(&["task", "list", "--limt", "5"]).await;
    assert_eq!(run.code, USAGE, "{run:?}");
    assert!(
        run.stderr
            .contains("tip: a similar argument exists: '--limit'"),
        "{run:?}"
    );
    let run = cli.run(&["task", "lst"]).await;
    assert_eq!(run.code, USAGE, "{run:?}");
    assert!(run.stderr.contains("'list'"), "{run:?}");
    // Two input sources at once.
    let run = cli.run(&["task", "create", "hi", "--command", "ls"]).await;
    assert_eq!(run.code, USAGE, "{run:?}");
    let run = cli.run(&["auth", "login", "--password-stdin"]).await;
    assert_eq!(run.code, USAGE, "{run:?}");
}

#[tokio::test]
async fn a_gateway_that_is_down_is_a_network_error() {
    let port = cynode_e2e::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cli = Cynork::new(&url);
    for args in [
        vec!["status"],
        vec!["auth", "whoami"],
        vec!["task", "list", "-o", "json"],
    ] {
        let run = cli
            .run_with(&args, None, &[("CYNORK_TOKEN", "some-token")])
            .await;
        assert_eq!(run.code, NETWORK, "{args:?}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!("cannot reach gateway at {url}")),
            "{args:?}: {run:?}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    // Login goes to the same gateway and fails the same way (and writes no config).
    let run = cli
        .run_with(
            &["auth", "login", "-u", "admin", "--password-stdin"],
            Some("pw\n"),
            &[],
        )
        .await;
    assert_eq!(run.code, NETWORK, "{run:?}");
    assert!(!cli.config_file().exists());
}

#[tokio::test]
async fn without_a_session_nothing_is_sent() {
    // A listener that never accepts: had cynork connected, accept() would find the connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let cli = Cynork::new(&format!("http://{}", listener.local_addr().unwrap()));
    let run = cli.run(&["task", "list"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("cynork auth login"), "{run:?}");
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[tokio::test]
async fn bad_attachments_are_refused_before_any_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let cli = Cynork::new(&format!("http://{}", listener.local_addr().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let big = dir.path().join("big.bin");
    // 10 MiB + 1 byte, sparse: the size is what counts.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(10 * 1024 * 1024 + 1)
        .unwrap();
    let ok = dir.path().join("ok.txt");
    std::fs::write(&ok, "fine").unwrap();

    for (path, needle) in [
        (&missing, "does not exist"),
        (&big, "the limit is 10485760 bytes (10 MiB)"),
    ] {
        let run = cli
            .run_with(
                &[
                    "task",
                    "create",
                    "summarise",
                    "-a",
                    ok.to_str().unwrap(),
                    "-a",
                    path.to_str().unwrap(),
                ],
                None,
                &[("CYNORK_TOKEN", "some-token")],
            )
            .await;
        assert_eq!(run.code, USAGE, "{run:?}");
        assert!(run.stderr.contains(needle), "{run:?}");
        assert!(run.stderr.contains(&path.display().to_string()), "{run:?}");
        assert!(!run.stderr.contains("cannot reach"), "{run:?}");
    }
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a request was sent"
    );
}

#[tokio::test]
async fn passwords_are_checked_before_any_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let cli = Cynork::new(&format!("http://{}", listener.local_addr().unwrap()));
    let token = [("CYNORK_TOKEN", "some-token")];
    let cases: [(&[&str], Option<&str>, &str); 6] = [
        // No terminal on stdin: no prompt a script would hang on.
        (
            &["user", "create", "alice"],
            None,
            "--password-stdin or --no-password",
        ),
        (
            &["user", "reset-password", "bob"],
            None,
            "--password-stdin or --token",
        ),
        (&["auth", "passwd"], None, "give --password-stdin"),
        (
            &["user", "create", "alice", "--password-stdin"],
            Some("short-pw\n"),
            "at least 12 characters",
        ),
        (
            &["auth", "passwd", "--password-stdin"],
            Some("only-the-current-one\n"),
            "two lines",
        ),
        (
            &["auth", "passwd", "--password-stdin"],
            Some("same-password-1\nsame-password-1\n"),
            "is the current one",
        ),
    ];
    for (args, stdin, needle) in cases {
        let run = cli.run_with(args, stdin, &token).await;
        assert_eq!(run.code, USAGE, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        if let Some(text) = stdin {
            for secret in text.lines() {
                assert!(!run.stderr.contains(secret), "echoed: {run:?}");
            }
        }
    }
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a request was sent"
    );
}

#[tokio::test]
async fn completions_and_man_page_come_from_the_cli_definition() {
    let cli = Cynork::new("http://127.0.0.1:9");
    for shell in ["bash", "zsh", "fish"] {
        let run = cli.run(&["completion", shell]).await;
        let script = run.ok();
        assert!(script.contains("cynork"), "{shell}");
        assert!(
            script.contains("watch") && script.contains("password-stdin"),
            "{shell}"
        );
        for word in [
            "reset-password",
            "revoke-sessions",
            "active-only",
            "rbac",
            "passwd",
        ] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let man = cli.run(&["man"]).await;
    let page = man.ok();
    assert!(
        page.starts_with(".ie") || page.contains(".TH cynork"),
        "{page}"
    );
    assert!(page.contains("Exit codes"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    cli.run(&["man", "--dir", dir.path().to_str().unwrap()])
        .await
        .ok();
    for page in [
        "cynork.1",
        "cynork-task.1",
        "cynork-task-create.1",
        "cynork-auth-login.1",
        "cynork-auth-passwd.1",
        "cynork-user-create.1",
        "cynork-group-add.1",
        "cynork-project-set.1",
        "cynork-project-rbac-grant.1",
        "cynork-rbac-revoke.1",
        "cynork-role-list.1",
        "cynork-rule-create.1",
        "cynork-audit-list.1",
    ] {
        assert!(dir.path().join(page).exists(), "{page} missing");
    }
    let version = cli.run(&["version", "-o", "json"]).await.json();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}
