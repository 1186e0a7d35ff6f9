//! `cynork task create --attach` uploads the files with the task, and `cynork task artifacts
//! list|get` reads them back byte for byte, against the real gateway.

use crate::common;

use common::{Cynork, Stack};
use serde_json::json;

const USAGE: i32 = 2;
const NOT_FOUND: i32 = 4;

#[tokio::test]
async fn attached_files_are_uploaded_listed_and_downloaded() {
    let stack = Stack::start().await;
    let cli = Cynork::new(&stack.gateway);
    cli.login_admin().await;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.bin");
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&a, "first file\n").unwrap();
    std::fs::write(&b, &binary).unwrap();

    let task = cli
        .run(&[
            "task",
            "create",
            "--command",
            "echo hi",
            "--name",
            "files",
            "-a",
            a.to_str().unwrap(),
            "-a",
            b.to_str().unwrap(),
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(
        task["attachments"],
        json!(["attachments/a.txt", "attachments/b.bin"])
    );
    let id = task["id"].as_str().unwrap();

    let run = cli.run(&["task", "artifacts", "list", "files"]).await;
    let lines: Vec<&str> = run.ok().lines().collect();
    assert_eq!(lines[0], "artifact_id\tname\tcontent_type\tsize_bytes");
    assert!(
        lines[1].ends_with("\tattachments/a.txt\tapplication/octet-stream\t11"),
        "{lines:?}"
    );
    assert!(
        lines[2].ends_with(&format!(
            "\tattachments/b.bin\tapplication/octet-stream\t{}",
            binary.len()
        )),
        "{lines:?}"
    );

    let list = cli
        .run(&["task", "artifacts", "list", id, "-o", "json"])
        .await
        .json();
    let b_id = list["artifacts"][1]["artifact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = dir.path().join("out/sub/b.bin");
    let run = cli
        .run(&[
            "task",
            "artifacts",
            "get",
            id,
            &b_id,
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        run.ok().trim(),
        format!("saved=true path={}", out.display())
    );
    assert_eq!(std::fs::read(&out).unwrap(), binary);

    // Never overwritten without --force.
    std::fs::write(&out, "mine").unwrap();
    let run = cli
        .run(&[
            "task",
            "artifacts",
            "get",
            id,
            &b_id,
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, USAGE, "{run:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    let run = cli
        .run(&[
            "task",
            "artifacts",
            "get",
            id,
            &b_id,
            "--out",
            out.to_str().unwrap(),
            "--force",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(run.json()["size_bytes"], binary.len());
    assert_eq!(std::fs::read(&out).unwrap(), binary);

    let unknown = uuid::Uuid::new_v4().to_string();
    let elsewhere = dir.path().join("nothing");
    let run = cli
        .run(&[
            "task",
            "artifacts",
            "get",
            id,
            &unknown,
            "--out",
            elsewhere.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, NOT_FOUND, "{run:?}");
    assert!(!elsewhere.exists());

    // Two files of one name would collide in the task: refused before anything is sent.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("a.txt"), "again").unwrap();
    let run = cli
        .run(&[
            "task",
            "create",
            "--command",
            "echo hi",
            "-a",
            a.to_str().unwrap(),
            "-a",
            other.join("a.txt").to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, USAGE, "{run:?}");
    let tasks = cli.run(&["task", "list", "-o", "json"]).await.json();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 1);
}
