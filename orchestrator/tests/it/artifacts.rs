//! Task artifacts against a real PostgreSQL: upload and download byte for byte with their
//! checksum, paths that would leave the task and oversized files refused with nothing written,
//! owner-only access, and tasks created with their uploaded files in one transaction.

use crate::common;

use common::*;
use cynode_orchestrator::artifacts::{self, ArtifactError, MAX_ARTIFACT_BYTES, Writer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// One part of a multipart body: name, file name, content.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body. Returns (content type, body).
fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = format!("cynode-test-{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every byte value, and then some: what a text-only path would mangle.
fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

impl Orchestrator {
    async fn upload(
        &self,
        token: &str,
        task: &str,
        path: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .put(format!("{}/v1/tasks/{task}/artifacts", self.gw))
            .query(&[("path", path)])
            .bearer_auth(token)
            .body(bytes);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        req.send().await.unwrap()
    }

    async fn download(&self, token: &str, task: &str, artifact: &str) -> reqwest::Response {
        self.get_url(
            &format!("{}/v1/tasks/{task}/artifacts/{artifact}", self.gw),
            token,
        )
        .await
    }

    async fn create_multipart(&self, token: &str, parts: &[Part<'_>]) -> reqwest::Response {
        let (content_type, body) = multipart(parts);
        self.http
            .post(format!("{}/v1/tasks", self.gw))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn users(&self) -> (String, String, String) {
        self.create_user("alice", "correct-horse-a-1").await;
        self.create_user("bob", "correct-horse-b-0").await;
        (
            self.admin_token().await,
            self.login("alice", "correct-horse-a-1").await.0,
            self.login("bob", "correct-horse-b-0").await.0,
        )
    }

    async fn nothing_stored(&self) {
        assert_eq!(self.count("task_artifacts").await, 0);
        assert_eq!(self.count("task_artifact_contents").await, 0);
    }
}

#[tokio::test]
async fn an_upload_comes_back_byte_for_byte_with_its_checksum() {
    let o = Orchestrator::start(&[]).await;
    let (_, alice, _) = o.users().await;
    let task = o.create_script_task(&alice, "echo hi").await;
    let bytes = binary(300 * 1024 + 3);

    let resp = o
        .upload(
            &alice,
            &task,
            "out/data.bin",
            Some("image/png"),
            bytes.clone(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let artifact: Value = resp.json().await.unwrap();
    assert_eq!(artifact["path"], "out/data.bin");
    assert_eq!(artifact["size_bytes"], bytes.len());
    assert_eq!(artifact["content_type"], "image/png");
    assert_eq!(artifact["checksum_sha256"], sha256_hex(&bytes));
    let id = artifact["artifact_id"].as_str().unwrap().to_owned();

    let (status, list) = o.get(&alice, &format!("/v1/tasks/{task}/artifacts")).await;
    assert_eq!(status, 200);
    assert_eq!(list["artifacts"], json!([artifact]));

    let resp = o.download(&alice, &task, &id).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        resp.headers()["x-checksum-sha256"],
        sha256_hex(&bytes).as_str()
    );
    let got = resp.bytes().await.unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
    assert_eq!(sha256_hex(&got), artifact["checksum_sha256"]);

    // The same path again replaces it in place; no type given: octet-stream.
    let second = b"second version".to_vec();
    let resp = o
        .upload(&alice, &task, "out/data.bin", None, second.clone())
        .await;
    assert_eq!(resp.status(), 200);
    let replaced: Value = resp.json().await.unwrap();
    assert_eq!(replaced["artifact_id"], id.as_str());
    assert_eq!(replaced["checksum_sha256"], sha256_hex(&second));
    let resp = o.download(&alice, &task, &id).await;
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), second.as_slice());
    assert_eq!(o.count("task_artifact_contents").await, 1);

    // The store API the MCP tools call sees the same, by path and by id.
    let task_id: Uuid = task.parse().unwrap();
    let (meta, content) = artifacts::get(&o.db, task_id, "out/data.bin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (meta.size_bytes, content),
        (Some(second.len() as i64), second.clone())
    );
    let by_id = artifacts::get_by_id(&o.db, task_id, id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(by_id.unwrap().0, meta);
    assert!(
        artifacts::get(&o.db, task_id, "nope")
            .await
            .unwrap()
            .is_none()
    );

    // An exactly maximal file fits.
    let max = binary(MAX_ARTIFACT_BYTES);
    let resp = o.upload(&alice, &task, "max.bin", None, max.clone()).await;
    assert_eq!(resp.status(), 201);
    let max_id = resp.json::<Value>().await.unwrap()["artifact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = o
        .download(&alice, &task, &max_id)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&max));
}

#[tokio::test]
async fn paths_that_leave_the_task_and_oversized_files_write_nothing() {
    let o = Orchestrator::start(&[]).await;
    let (_, alice, _) = o.users().await;
    let task = o.create_script_task(&alice, "echo hi").await;
    for (path, needle) in [
        ("../escape", "'..'"),
        ("a/../../b", "'..'"),
        ("/etc/passwd", "relative"),
        ("a\0b", "NUL"),
        ("a\nb", "control"),
        ("", "empty"),
    ] {
        let resp = o.upload(&alice, &task, path, None, b"x".to_vec()).await;
        assert_problem(resp, 400, needle).await;
    }
    let resp = o
        .upload(&alice, &task, "ok", Some("textplain"), b"x".to_vec())
        .await;
    assert_eq!(resp.status(), 400);
    let resp = o
        .http
        .put(format!("{}/v1/tasks/{task}/artifacts", o.gw))
        .bearer_auth(&alice)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "path").await;

    let resp = o
        .upload(
            &alice,
            &task,
            "big.bin",
            None,
            vec![0; MAX_ARTIFACT_BYTES + 1],
        )
        .await;
    assert_eq!(resp.status(), 413);
    o.nothing_stored().await;

    // The store refuses the same without HTTP's body limit in front.
    let task_id: Uuid = task.parse().unwrap();
    let writer = Writer::default();
    let err = artifacts::put(
        &o.db,
        task_id,
        "big",
        None,
        &vec![0; MAX_ARTIFACT_BYTES + 1],
        writer,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { .. }), "{err:?}");
    for path in ["..", "/abs", "a\0"] {
        let err = artifacts::put(&o.db, task_id, path, None, b"x", writer)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ArtifactError::Invalid(_)),
            "{path:?}: {err:?}"
        );
    }
    let err = artifacts::put(&o.db, Uuid::new_v4(), "a", None, b"x", writer)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound(_)), "{err:?}");
    let bad_job = Writer {
        user_id: None,
        job_id: Some(Uuid::new_v4()),
    };
    let err = artifacts::put(&o.db, task_id, "a", None, b"x", bad_job)
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::Invalid(_)), "{err:?}");
    o.nothing_stored().await;
}

#[tokio::test]
async fn only_the_owner_reads_and_writes_and_others_see_no_task() {
    let o = Orchestrator::start(&[]).await;
    let (admin, alice, bob) = o.users().await;
    let task = o.create_script_task(&alice, "echo hi").await;
    let resp = o
        .upload(
            &alice,
            &task,
            "secret.txt",
            Some("text/plain"),
            b"alice's".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["artifact_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _) = o.get(&bob, &format!("/v1/tasks/{task}/artifacts")).await;
    assert_eq!(status, 404);
    let resp = o.download(&bob, &task, &id).await;
    assert_problem(resp, 404, "does not exist").await;
    let resp = o
        .upload(&bob, &task, "secret.txt", None, b"bob's".to_vec())
        .await;
    assert_eq!(resp.status(), 404);
    let resp = o
        .upload(&bob, &task, "new.txt", None, b"bob's".to_vec())
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(o.count("task_artifacts").await, 1);

    // A system admin holds the owner role in every project: lists and downloads.
    let (status, list) = o.get(&admin, &format!("/v1/tasks/{task}/artifacts")).await;
    assert_eq!(status, 200);
    assert_eq!(list["artifacts"][0]["path"], "secret.txt");
    let resp = o.download(&admin, &task, &id).await;
    assert_eq!(resp.status(), 200);

    // An artifact of another task is not found through this one.
    let other = o.create_script_task(&alice, "echo other").await;
    let resp = o.download(&alice, &other, &id).await;
    assert_eq!(resp.status(), 404);
    let resp = o.download(&alice, &task, &id).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"alice's");
}

#[tokio::test]
async fn a_task_and_its_uploaded_files_are_created_together() {
    let o = Orchestrator::start(&[]).await;
    let (_, alice, _) = o.users().await;
    let first = b"first file".to_vec();
    let second = binary(70_000);
    let task_json =
        json!({"prompt": "echo hi", "input_mode": "script", "task_name": "with-files"}).to_string();
    let resp = o
        .create_multipart(
            &alice,
            &[
                ("task", None, task_json.as_bytes()),
                ("file", Some("a.txt"), &first),
                ("file", Some("b.bin"), &second),
            ],
        )
        .await;
    assert_eq!(resp.status(), 201);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["task_name"], "with-files");
    assert_eq!(
        task["attachments"],
        json!(["attachments/a.txt", "attachments/b.bin"])
    );
    let id = task["id"].as_str().unwrap();
    let (_, list) = o.get(&alice, &format!("/v1/tasks/{id}/artifacts")).await;
    let list = list["artifacts"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    for (artifact, bytes) in list.iter().zip([&first, &second]) {
        assert_eq!(artifact["size_bytes"], bytes.len());
        assert_eq!(artifact["checksum_sha256"], sha256_hex(bytes));
        let aid = artifact["artifact_id"].as_str().unwrap();
        let got = o.download(&alice, id, aid).await.bytes().await.unwrap();
        assert_eq!(got.as_ref(), bytes.as_slice());
    }
    // What a job writes is an artifact of the task, not one of its attachments.
    let task_id: Uuid = id.parse().unwrap();
    let job: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1")
        .bind(task_id)
        .fetch_one(&o.db)
        .await
        .unwrap();
    let writer = Writer {
        user_id: None,
        job_id: Some(job),
    };
    artifacts::put(
        &o.db,
        task_id,
        "out/report.md",
        Some("text/markdown"),
        b"# done",
        writer,
    )
    .await
    .unwrap();
    let (_, task) = o.get(&alice, &format!("/v1/tasks/{id}")).await;
    assert_eq!(
        task["attachments"],
        json!(["attachments/a.txt", "attachments/b.bin"])
    );
    assert_eq!(artifacts::list(&o.db, task_id).await.unwrap().len(), 3);

    // The JSON body still takes path-only references, which have no content to download.
    let task = o
        .create_task(
            &alice,
            json!({"prompt": "echo", "input_mode": "script", "attachments": ["/home/a.txt"]}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    let (_, list) = o.get(&alice, &format!("/v1/tasks/{id}/artifacts")).await;
    let reference = &list["artifacts"][0];
    assert_eq!(reference["path"], "/home/a.txt");
    assert!(reference.get("size_bytes").is_none(), "{reference}");
    let resp = o
        .download(&alice, id, reference["artifact_id"].as_str().unwrap())
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_refused_upload_creates_no_task() {
    // A body limit above the per-file limit, so that the per-file check itself answers.
    let o = Orchestrator::start(&[("MAX_REQUEST_BODY_MB", "32")]).await;
    let (_, alice, _) = o.users().await;
    let task = json!({"prompt": "echo hi", "input_mode": "script"}).to_string();
    let task = task.as_bytes();
    let big = vec![1u8; MAX_ARTIFACT_BYTES + 1];
    let small = b"x".to_vec();
    let seventeen: Vec<(String, Vec<u8>)> =
        (0..17).map(|i| (format!("f{i}"), small.clone())).collect();
    let mut too_many: Vec<Part> = vec![("task", None, task)];
    too_many.extend(
        seventeen
            .iter()
            .map(|(n, b)| ("file", Some(n.as_str()), b.as_slice())),
    );

    let cases: Vec<(Vec<Part>, u16, &str)> = vec![
        (
            vec![("task", None, task), ("file", Some("big.bin"), &big)],
            413,
            "big.bin",
        ),
        (too_many, 400, "at most 16"),
        (
            vec![
                ("task", None, task),
                ("file", Some("a"), &small),
                ("file", Some("a"), &small),
            ],
            400,
            "twice",
        ),
        (
            vec![("task", None, task), ("file", Some(".."), &small)],
            400,
            "'..'",
        ),
        (
            vec![("task", None, task), ("file", Some(""), &small)],
            400,
            "plain name",
        ),
        (
            vec![("task", None, task), ("file", None, &small)],
            400,
            "no filename",
        ),
        (vec![("file", Some("a"), &small)], 400, "no task part"),
        (vec![("task", None, b"{\"prompt\": 1}")], 400, "part task"),
        (
            vec![
                ("task", None, b"{\"prompt\": \"\"}"),
                ("file", Some("a"), &small),
            ],
            400,
            "prompt",
        ),
    ];
    for (parts, status, needle) in cases {
        let resp = o.create_multipart(&alice, &parts).await;
        assert_problem(resp, status, needle).await;
    }
    assert_eq!(o.count("tasks").await, 0);
    o.nothing_stored().await;
}

#[tokio::test]
async fn openapi_documents_the_artifact_routes() {
    let o = Orchestrator::start(&[]).await;
    let doc = o.openapi(&o.gw).await;
    use cynode_contracts::routes::user;
    assert!(doc["paths"][user::TASK_ARTIFACTS]["get"].is_object());
    assert!(doc["paths"][user::TASK_ARTIFACTS]["put"].is_object());
    assert!(doc["paths"][user::TASK_ARTIFACT]["get"].is_object());
    let create = &doc["paths"][user::TASKS]["post"]["requestBody"]["content"];
    assert!(create["multipart/form-data"].is_object(), "{create}");
    assert!(create["application/json"].is_object(), "{create}");
}
