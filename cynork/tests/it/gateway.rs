//! The real `cynork` binary against the real gateway (`cynode-orchestrator all` on a fresh
//! PostgreSQL database) and, for tasks that run, the real worker API on the dev Podman socket.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{Cynork, Stack};

const AUTH: i32 = 3;
const NOT_FOUND: i32 = 4;
const CONFLICT: i32 = 5;
const TASK_FAILED: i32 = 10;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn saved_token(cli: &Cynork) -> String {
    let text = std::fs::read_to_string(cli.config_file()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("a token in the config file")
        .to_owned()
}

/// The acceptance path: login → whoami → commands task with --wait → result shows the stdout →
/// logout → whoami fails with the auth exit code (and the old token is revoked on the server).
#[tokio::test]
async fn login_task_result_logout() {
    let mut stack = Stack::start().await;
    stack.add_node("cynork-node-1").await;
    let cli = Cynork::new(&stack.gateway);

    let status = cli.run(&["status", "-o", "json"]).await.json();
    assert_eq!(status["gateway"], "ok");
    assert_eq!(status["ready"], true, "{status}");

    cli.login_admin().await;
    assert_eq!(mode(&cli.config_file()), 0o600);
    assert_eq!(mode(cli.config_file().parent().unwrap()), 0o700);
    let who = cli.run(&["auth", "whoami"]).await;
    assert!(who.ok().contains("user=admin"), "{who:?}");

    let created = cli
        .run(&[
            "task",
            "create",
            "--command",
            "echo hello from cynork",
            "--command",
            "echo second line",
            "--name",
            "greeting",
            "--wait",
        ])
        .await;
    let line = created.ok();
    assert!(line.contains("status=completed"), "{created:?}");
    assert!(
        line.contains(r#"stdout="hello from cynork\nsecond line\n""#),
        "{created:?}"
    );
    assert!(line.contains("exit_code=0"), "{created:?}");

    // By name, as JSON: the stored result of the real sandbox run.
    let result = cli
        .run(&["task", "result", "greeting", "-o", "json"])
        .await
        .json();
    assert_eq!(result["status"], "completed");
    assert_eq!(
        result["jobs"][0]["result"]["stdout"],
        "hello from cynork\nsecond line\n"
    );
    let logs = cli
        .run(&["task", "logs", "greeting", "--stream", "stdout"])
        .await;
    assert_eq!(logs.ok(), "hello from cynork\nsecond line\n");
    let listed = cli
        .run(&["task", "list", "--status", "completed", "-o", "json"])
        .await
        .json();
    assert_eq!(listed["tasks"][0]["task_name"], "greeting", "{listed}");
    let got = cli.run(&["task", "get", "greeting"]).await;
    assert!(got.ok().contains("input_mode=commands"), "{got:?}");

    // A command that fails: the result is still shown, and the exit code says so.
    let failed = cli
        .run(&["task", "create", "--command", "echo oops >&2; exit 3", "-w"])
        .await;
    assert_eq!(failed.code, TASK_FAILED, "{failed:?}");
    assert!(failed.stdout.contains("exit_code=3"), "{failed:?}");
    assert!(failed.stdout.contains(r#"stderr="oops\n""#), "{failed:?}");
    assert!(failed.stderr.contains("exited with code 3"), "{failed:?}");

    // Finished tasks cannot be canceled: 409 is its own exit code.
    let cancel = cli.run(&["task", "cancel", "greeting", "-y"]).await;
    assert_eq!(cancel.code, CONFLICT, "{cancel:?}");
    assert_eq!(
        cancel.stderr.lines().count(),
        1,
        "one readable line: {cancel:?}"
    );
    let missing = cli.run(&["task", "get", "no-such-task"]).await;
    assert_eq!(missing.code, NOT_FOUND, "{missing:?}");
    assert!(missing.stderr.contains("Not found"), "{missing:?}");
    assert!(!missing.stderr.contains('{'), "no raw JSON: {missing:?}");

    let old_token = saved_token(&cli);
    assert_eq!(
        cli.run(&["auth", "logout"]).await.ok().trim(),
        "logged_out=true"
    );
    let after = cli.run(&["auth", "whoami"]).await;
    assert_eq!(after.code, AUTH, "{after:?}");
    assert!(after.stderr.contains("cynork auth login"), "{after:?}");
    assert!(
        !std::fs::read_to_string(cli.config_file())
            .unwrap()
            .contains("token")
    );
    // The server revoked the session: the old access token no longer works either.
    let revoked = cli
        .run_with(&["auth", "whoami"], None, &[("CYNORK_TOKEN", &old_token)])
        .await;
    assert_eq!(revoked.code, AUTH, "{revoked:?}");
}

/// An expired access token is refreshed without the user noticing: before the request when the
/// saved expiry says so, and after a 401 when it does not. The new tokens are saved.
#[tokio::test]
async fn expired_access_token_is_refreshed() {
    let stack = Stack::start_with(&[("JWT_ACCESS_DURATION", "1s")]).await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let first = saved_token(&cli);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // The saved expiry is in the past: refreshed before the call.
    let who = cli.run(&["auth", "whoami"]).await;
    assert!(who.ok().contains("user=admin"), "{who:?}");
    let second = saved_token(&cli);
    assert_ne!(first, second);

    // Pretend the expiry is far away: the gateway's 401 triggers the refresh and one retry.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let text = std::fs::read_to_string(cli.config_file()).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("token_expires_at:") {
                "token_expires_at: 2999-01-01T00:00:00Z".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(cli.config_file(), text).unwrap();
    let who = cli.run(&["auth", "whoami"]).await;
    assert!(who.ok().contains("user=admin"), "{who:?}");
    assert_ne!(saved_token(&cli), second);
    assert_eq!(mode(&cli.config_file()), 0o600);
}

/// Without a node, commands tasks stay queued: cancel asks first, `-y` cancels, a second cancel is 409.
/// A corrupt config is an error naming the file, and `auth login` rewrites it.
#[tokio::test]
async fn cancel_and_corrupt_config() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let created = cli
        .run(&[
            "task",
            "create",
            "-p",
            "echo never runs",
            "--input-mode",
            "script",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["status"], "queued");
    assert_eq!(created["input_mode"], "script");
    let id = created["id"].as_str().unwrap();

    let declined = cli
        .run_with(&["task", "cancel", id], Some("n\n"), &[])
        .await;
    assert_eq!(declined.code, 0, "{declined:?}");
    assert!(
        declined
            .stderr
            .contains(&format!("Cancel task {id}? [y/N]")),
        "{declined:?}"
    );
    assert!(declined.stdout.is_empty(), "{declined:?}");
    let still = cli.run(&["task", "get", id, "-o", "json"]).await.json();
    assert_eq!(still["status"], "queued");

    let canceled = cli
        .run_with(&["task", "cancel", id], Some("y\n"), &[])
        .await;
    assert_eq!(canceled.ok().trim(), format!("task_id={id} canceled=true"));
    let again = cli.run(&["task", "cancel", id, "-y"]).await;
    assert_eq!(again.code, CONFLICT, "{again:?}");
    let result = cli.run(&["task", "result", id]).await;
    assert_eq!(result.code, TASK_FAILED, "{result:?}");
    assert!(result.stdout.contains("status=canceled"), "{result:?}");

    // Corrupt the config file.
    std::fs::write(cli.config_file(), "token: [unterminated\n\tgarbage: {").unwrap();
    let broken = cli.run(&["task", "list"]).await;
    assert_eq!(broken.code, 2, "{broken:?}");
    assert!(
        broken
            .stderr
            .contains(&cli.config_file().display().to_string()),
        "the error names the file: {broken:?}"
    );
    assert!(!broken.stderr.contains("panicked"), "{broken:?}");
    cli.login_admin().await;
    let listed = cli.run(&["task", "list"]).await;
    assert!(listed.ok().contains("status=canceled"), "{listed:?}");
    assert_eq!(mode(&cli.config_file()), 0o600);
}
