//! Terminal behaviour, driven through tmux (a real pty): the password prompt does not echo, and
//! `task watch` draws a live spinner line on a terminal but plain lines when piped.

use crate::common;

use std::process::Stdio;

use common::{ADMIN_PASSWORD, Cynork, Stack};
use cynode_e2e::tmux::Tmux;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The shell line that runs cynork in the pane with the test's config dir and gateway, then
/// prints its exit code and keeps the pane open for capture.
pub(crate) fn pane_command(cli: &Cynork, args: &str) -> String {
    format!(
        "env LANG=C.UTF-8 XDG_CONFIG_HOME='{}' CYNORK_GATEWAY_URL='{}' '{}' {args}; echo EXIT=$?; sleep 600",
        cli.config_home().display(),
        cli.gateway,
        Cynork::binary().display()
    )
}

#[tokio::test]
async fn password_prompt_does_not_echo() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    let tmux = Tmux::start(&pane_command(&cli, "auth login"));
    tmux.wait_for("the user prompt", |s| s.contains("User:"))
        .await;
    tmux.send_literal("admin");
    tmux.send_enter();
    tmux.wait_for("the password prompt", |s| s.contains("Password:"))
        .await;
    tmux.send_literal(ADMIN_PASSWORD);
    tmux.send_enter();
    let screen = tmux
        .wait_for("the exit code", |s| s.contains("EXIT="))
        .await;
    assert!(screen.contains("logged_in=true user=admin"), "{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains(ADMIN_PASSWORD),
        "the password was echoed:\n{screen}"
    );
    // The session really is saved.
    assert!(
        cli.run(&["auth", "whoami"])
            .await
            .ok()
            .contains("user=admin")
    );
}

#[tokio::test]
async fn task_watch_spins_on_a_tty_and_prints_lines_when_piped() {
    // No node: a commands task stays queued until we cancel it.
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let task = cli
        .run(&[
            "task",
            "create",
            "--command",
            "sleep 1",
            "--name",
            "watched",
            "-o",
            "json",
        ])
        .await
        .json();
    let id = task["id"].as_str().unwrap().to_owned();

    // On a terminal: one spinner line, redrawn in place.
    let tmux = Tmux::start(&pane_command(&cli, &format!("task watch {id} -n 1")));
    let first = tmux
        .wait_for("the spinner line", |s| s.contains("task watched queued"))
        .await;
    let spinner_line = |screen: &str| {
        screen
            .lines()
            .find(|l| l.contains("task watched queued"))
            .map(str::to_owned)
    };
    let first_line = spinner_line(&first).unwrap();
    // It keeps moving (frame and elapsed seconds change) but never scrolls: still one line.
    let later = tmux
        .wait_for("the spinner to advance", |s| {
            spinner_line(s).is_some_and(|l| l != first_line)
        })
        .await;
    assert_eq!(
        later.lines().filter(|l| l.contains("queued")).count(),
        1,
        "the spinner must redraw one line:\n{later}"
    );
    assert!(
        !later.contains("status=queued"),
        "no plain lines on a TTY:\n{later}"
    );

    // Piped: plain key=value lines, one per status change, no escape sequences.
    let mut piped = cli.command();
    piped
        .args(["task", "watch", &id, "-n", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = piped.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first_piped = lines
        .next_line()
        .await
        .unwrap()
        .expect("a first status line");
    assert_eq!(
        first_piped,
        format!("task_id={id} status=queued task_name=watched")
    );

    // Cancel: both watchers see the terminal status and exit 0.
    cli.run(&["task", "cancel", &id, "-y"]).await.ok();
    let screen = tmux
        .wait_for("the watch to end", |s| s.contains("EXIT="))
        .await;
    assert!(
        screen.contains(&format!("task_id={id} status=canceled task_name=watched")),
        "{screen}"
    );
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains("task watched queued"),
        "the spinner line is cleared:\n{screen}"
    );

    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert_eq!(
        rest,
        vec![format!("task_id={id} status=canceled task_name=watched")]
    );
    let status = child.wait().await.unwrap();
    assert!(status.success());
}
