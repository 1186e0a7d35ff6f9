//! The `sandbox.*` MCP tools end to end: a PM token drives a managed sandbox on a real worker
//! API (real Podman) registered as a node of a real orchestrator (real PostgreSQL); a sandbox
//! agent may not; every call leaves one audit row.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{Node, Orchestrator};
use cynode_e2e::DevEnv;
use cynode_e2e::worker::Worker;
use cynode_orchestrator::mcp::Agent;
use serde_json::{Value, json};
use uuid::Uuid;

/// A dispatchable node whose worker API is the real binary, started with the token the
/// orchestrator's configuration gave the node.
async fn real_node(o: &Orchestrator, env: &DevEnv, slug: &str) -> Worker {
    let port = cynode_e2e::free_port();
    let mut node = Node::register(o, slug, &format!("http://127.0.0.1:{port}")).await;
    let config = node.fetch_config(o).await.clone();
    let worker = Worker::start_as(
        &env.podman_socket,
        &env.sandbox_image,
        port,
        &config.worker_api.orchestrator_bearer_token,
        &[],
    )
    .await;
    assert_eq!(
        node.ack(o, &config.config_version, "applied")
            .await
            .status(),
        204
    );
    worker
}

fn ok(envelope: &Value) -> &Value {
    assert_eq!(envelope["status"], "success", "{envelope}");
    &envelope["result"]
}

fn failed(envelope: &Value, kind: &str) {
    assert_eq!(envelope["status"], "error", "{envelope}");
    assert_eq!(envelope["error"]["type"], kind, "{envelope}");
}

/// Audit rows of `tool`: (decision, status, error_type).
async fn audit(o: &Orchestrator, tool: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT decision, status, error_type FROM mcp_tool_call_audit_log \
         WHERE tool_name = $1 ORDER BY created_at, id",
    )
    .bind(tool)
    .fetch_all(&o.db)
    .await
    .unwrap()
}

fn rows(expected: &[(&str, &str, Option<&str>)]) -> Vec<(String, String, Option<String>)> {
    expected
        .iter()
        .map(|(d, s, e)| ((*d).into(), (*s).into(), e.map(Into::into)))
        .collect()
}

#[tokio::test]
async fn a_pm_drives_a_sandbox_on_a_real_worker_and_a_sandbox_agent_may_not() {
    let env = DevEnv::load();
    let o = Orchestrator::start(&[]).await;
    let worker = real_node(&o, &env, "sandbox-host").await;
    let admin = o.admin_token().await;
    // A task that stays open while the test runs: its job needs a label no node has.
    let task: Uuid = o
        .create_task(
            &admin,
            json!({"prompt": "true", "input_mode": "script",
                   "requirements": {"labels": ["nowhere"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (owner, job): (Uuid, Uuid) = sqlx::query_as(
        "SELECT t.created_by, j.id FROM tasks t JOIN jobs j ON j.task_id = t.id WHERE t.id = $1",
    )
    .bind(task)
    .fetch_one(&o.db)
    .await
    .unwrap();
    let mcp = o.mcp();
    let pm = o.agent_token(&Agent::pm());
    let sandbox_agent = o.agent_token(&Agent::sandbox(owner, task, job, None));
    let id = Uuid::new_v4();
    let args = |extra: Value| {
        let mut a = json!({"task_id": task, "job_id": id});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };

    let tools = mcp.tool_names(&pm).await;
    for name in [
        "sandbox.create",
        "sandbox.exec",
        "sandbox.put_file",
        "sandbox.get_file",
        "sandbox.destroy",
    ] {
        assert!(tools.contains(&name.to_owned()), "{name} in {tools:?}");
    }
    assert!(
        !mcp.tool_names(&sandbox_agent)
            .await
            .iter()
            .any(|t| t.starts_with("sandbox."))
    );
    let denied = mcp
        .call(
            Some(&sandbox_agent),
            "sandbox.create",
            args(json!({"image_ref": ""})),
        )
        .await;
    failed(&denied, "not_allowed");

    let created = mcp
        .call(Some(&pm), "sandbox.create", args(json!({"image_ref": ""})))
        .await;
    let created = ok(&created);
    assert_eq!(created["job_id"], id.to_string());
    assert_eq!(created["image_ref"], env.sandbox_image);
    let (node_slug, recorded_task): (String, Uuid) = sqlx::query_as(
        "SELECT n.node_slug, s.task_id FROM pm_sandboxes s JOIN nodes n ON n.id = s.node_id \
         WHERE s.id = $1",
    )
    .bind(id)
    .fetch_one(&o.db)
    .await
    .unwrap();
    assert_eq!((node_slug.as_str(), recorded_task), ("sandbox-host", task));
    let containers = env.job_containers(id).await;
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0].labels.as_ref().unwrap()["cynodeai.mount_root"],
        worker.mount_root.path().display().to_string()
    );
    let again = mcp
        .call(Some(&pm), "sandbox.create", args(json!({"image_ref": ""})))
        .await;
    failed(&again, "conflict");
    let foreign = mcp
        .call(
            Some(&pm),
            "sandbox.create",
            json!({"task_id": task, "job_id": Uuid::new_v4(), "image_ref": "docker.io/evil:1"}),
        )
        .await;
    failed(&foreign, "invalid_arguments");
    assert!(
        foreign["error"]["message"]
            .as_str()
            .unwrap()
            .contains("docker.io/evil:1"),
        "{foreign}"
    );
    assert_eq!(
        o.count("pm_sandboxes").await,
        1,
        "a refused create records nothing"
    );

    let echoed = mcp
        .call(
            Some(&pm),
            "sandbox.exec",
            args(json!({"command": "echo", "argv": ["hello", "pm"]})),
        )
        .await;
    let echoed = ok(&echoed);
    assert_eq!(echoed["stdout"], "hello pm\n");
    assert_eq!(echoed["exit_code"], 0);
    assert_eq!(echoed["timed_out"], false);

    let content = b"first line\n\x00\xffbytes";
    let put = mcp
        .call(
            Some(&pm),
            "sandbox.put_file",
            args(json!({"path": "notes/a.bin", "content_bytes_base64": BASE64.encode(content)})),
        )
        .await;
    assert_eq!(ok(&put)["size_bytes"], content.len());
    let cat = mcp
        .call(
            Some(&pm),
            "sandbox.exec",
            args(json!({"command": "head", "argv": ["-n1", "a.bin"], "cwd": "notes"})),
        )
        .await;
    assert_eq!(ok(&cat)["stdout"], "first line\n");
    let got = mcp
        .call(
            Some(&pm),
            "sandbox.get_file",
            args(json!({"path": "notes/a.bin"})),
        )
        .await;
    let got = ok(&got)["content_bytes_base64"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(BASE64.decode(got).unwrap(), content);

    // Refusals name what is wrong; nothing was written.
    let escape = mcp
        .call(
            Some(&pm),
            "sandbox.put_file",
            args(json!({"path": "../escape", "content_bytes_base64": "eA=="})),
        )
        .await;
    failed(&escape, "invalid_arguments");
    assert!(
        escape["error"]["message"]
            .as_str()
            .unwrap()
            .contains("path"),
        "{escape}"
    );
    let not_base64 = mcp
        .call(
            Some(&pm),
            "sandbox.put_file",
            args(json!({"path": "x", "content_bytes_base64": "***"})),
        )
        .await;
    failed(&not_base64, "invalid_arguments");
    let listed = mcp
        .call(
            Some(&pm),
            "sandbox.exec",
            args(json!({"command": "ls", "argv": ["-a", "/", "/workspace"]})),
        )
        .await;
    let listed = ok(&listed)["stdout"].as_str().unwrap().to_owned();
    assert!(
        !listed.contains("escape") && !listed.contains("\nx\n"),
        "{listed}"
    );
    let missing = mcp
        .call(
            Some(&pm),
            "sandbox.get_file",
            args(json!({"path": "nope.txt"})),
        )
        .await;
    failed(&missing, "not_found");
    let other_task = mcp
        .call(
            Some(&pm),
            "sandbox.exec",
            json!({"task_id": Uuid::new_v4(), "job_id": id, "command": "true"}),
        )
        .await;
    failed(&other_task, "not_found");

    let destroyed = mcp
        .call(Some(&pm), "sandbox.destroy", args(json!({})))
        .await;
    ok(&destroyed);
    assert!(env.job_containers(id).await.is_empty());
    assert_eq!(o.count("pm_sandboxes").await, 0);
    let after = mcp
        .call(Some(&pm), "sandbox.exec", args(json!({"command": "true"})))
        .await;
    failed(&after, "not_found");

    // An ended task gets no new sandbox.
    let canceled = o.cancel(&admin, &task.to_string()).await;
    let status = canceled.status();
    assert_eq!(status, 200, "{}", canceled.text().await.unwrap());
    let closed = mcp
        .call(
            Some(&pm),
            "sandbox.create",
            json!({"task_id": task, "job_id": Uuid::new_v4(), "image_ref": ""}),
        )
        .await;
    failed(&closed, "conflict");

    // One audit row per call, allowed or denied.
    assert_eq!(
        audit(&o, "sandbox.create").await,
        rows(&[
            ("deny", "error", Some("not_allowed")),
            ("allow", "success", None),
            ("allow", "error", Some("conflict")),
            ("deny", "error", Some("invalid_arguments")),
            ("allow", "error", Some("conflict")),
        ])
    );
    assert_eq!(
        audit(&o, "sandbox.exec").await,
        rows(&[
            ("allow", "success", None),
            ("allow", "success", None),
            ("allow", "success", None),
            ("allow", "error", Some("not_found")),
            ("allow", "error", Some("not_found")),
        ])
    );
    assert_eq!(
        audit(&o, "sandbox.put_file").await,
        rows(&[
            ("allow", "success", None),
            // Bad arguments are refusals (`deny`), whoever finds them.
            ("deny", "error", Some("invalid_arguments")),
            ("deny", "error", Some("invalid_arguments")),
        ])
    );
    assert_eq!(
        audit(&o, "sandbox.get_file").await,
        rows(&[
            ("allow", "success", None),
            ("allow", "error", Some("not_found")),
        ])
    );
    assert_eq!(
        audit(&o, "sandbox.destroy").await,
        rows(&[("allow", "success", None)])
    );
    drop(worker);
}
