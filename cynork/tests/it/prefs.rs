//! `cynork prefs` against the real gateway: set, get, list, effective and delete with the
//! spec's outputs and exit codes (bad JSON value 2, not found 4, stale version 5).

use crate::common;

use common::{Cynork, Stack};
use serde_json::json;

const USAGE: i32 = 2;
const NOT_FOUND: i32 = 4;
const CONFLICT: i32 = 5;

#[tokio::test]
async fn set_get_list_effective_delete() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let user = ["--scope-type", "user", "--key", "output.summary_style"];

    let run = cli
        .run(
            &[
                &["prefs", "set"][..],
                &user,
                &["--value", "\"concise\"", "--reason", "short"],
            ]
            .concat(),
        )
        .await;
    assert!(
        run.ok()
            .starts_with("ok=true key=output.summary_style version=1"),
        "{run:?}"
    );
    let run = cli.run(&[&["prefs", "get"][..], &user].concat()).await;
    assert_eq!(
        run.ok().trim(),
        r#"key=output.summary_style value="\"concise\"""#
    );

    // Not JSON: a usage error, and nothing changes.
    let run = cli
        .run(&[&["prefs", "set"][..], &user, &["--value", "concise"]].concat())
        .await;
    assert_eq!(run.code, USAGE, "{run:?}");
    assert!(run.stderr.contains("not JSON"), "{run:?}");
    // A stale version: conflict, and nothing changes.
    let run = cli
        .run(
            &[
                &["prefs", "set"][..],
                &user,
                &["--value", "\"x\"", "--expected-version", "7"],
            ]
            .concat(),
        )
        .await;
    assert_eq!(run.code, CONFLICT, "{run:?}");
    let entry = cli
        .run(&[&["prefs", "get"][..], &user, &["-o", "json"]].concat())
        .await
        .json();
    assert_eq!(
        (entry["value"].clone(), entry["version"].clone()),
        (json!("concise"), json!(1))
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value.json");
    std::fs::write(&file, r#"["rust", "go"]"#).unwrap();
    let run = cli
        .run(&[
            "prefs",
            "set",
            "--scope-type",
            "system",
            "--key",
            "code.language.rank_ordered",
            "--value-file",
            file.to_str().unwrap(),
            "-o",
            "json",
        ])
        .await;
    assert_eq!(run.json()["value_type"], "array");

    let run = cli.run(&["prefs", "list", "--scope-type", "user"]).await;
    let lines: Vec<&str> = run.ok().lines().collect();
    assert_eq!(lines[0], "key\tvalue_json\tupdated_at");
    assert!(
        lines[1].starts_with("output.summary_style\t\"concise\"\t"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");

    let task = cli
        .run(&["task", "create", "--command", "echo hi", "-o", "json"])
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = cli
        .run(&[
            "prefs",
            "set",
            "--scope-type",
            "task",
            "--scope-id",
            &task,
            "--key",
            "output.summary_style",
            "--value",
            "\"detailed\"",
        ])
        .await;
    run.ok();
    let view = cli
        .run(&["prefs", "effective", "--task-id", &task, "-o", "json"])
        .await
        .json();
    assert_eq!(
        view["effective"],
        json!({"code.language.rank_ordered": ["rust", "go"], "output.summary_style": "detailed"})
    );
    assert_eq!(
        view["sources"][1],
        json!({"key": "output.summary_style", "scope_type": "task", "scope_id": task})
    );
    let mine = cli.run(&["prefs", "effective", "-o", "json"]).await.json();
    assert_eq!(mine["effective"]["output.summary_style"], "concise");
    let table = cli.run(&["prefs", "effective", "--task-id", &task]).await;
    assert!(
        table.ok().contains(&format!(
            "key=output.summary_style value=\"\\\"detailed\\\"\" scope_type=task scope_id={task}"
        )),
        "{table:?}"
    );

    let run = cli.run(&[&["prefs", "delete"][..], &user].concat()).await;
    assert_eq!(run.ok().trim(), "deleted=true key=output.summary_style");
    let run = cli.run(&[&["prefs", "get"][..], &user].concat()).await;
    assert_eq!(run.code, NOT_FOUND, "{run:?}");
    let run = cli.run(&[&["prefs", "delete"][..], &user].concat()).await;
    assert_eq!(run.code, NOT_FOUND, "{run:?}");
}

#[tokio::test]
async fn scopes_needing_an_id_are_usage_errors_before_any_request() {
    let cli = Cynork::new("http://127.0.0.1:9");
    for args in [
        &["prefs", "list", "--scope-type", "project"][..],
        &["prefs", "get", "--scope-type", "task", "--key", "k"],
        &[
            "prefs",
            "set",
            "--scope-type",
            "system",
            "--scope-id",
            "00000000-0000-0000-0000-000000000000",
            "--key",
            "k",
            "--value",
            "1",
        ],
        &["prefs", "list", "--scope-type", "group"],
    ] {
        let run = cli.run_with(args, None, &[("CYNORK_TOKEN", "t")]).await;
        assert_eq!(run.code, USAGE, "{args:?}: {run:?}");
    }
}
