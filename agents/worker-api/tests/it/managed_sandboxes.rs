//! Managed sandboxes with the real binary on the real Podman socket: create → exec → files →
//! delete; the same hardening as a job's sandbox; bad paths refused with nothing written; an
//! exec's timeout; idle removal, the cap, and the start-up sweep of an earlier worker's.

use std::time::Duration;

use cynode_contracts::routes::worker;
use cynode_e2e::DevEnv;
use cynode_e2e::worker::Worker;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// Sends `method path` with the worker's token and an optional JSON body; the status and the
/// raw answer.
async fn call(w: &Worker, method: Method, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
    let mut request = w
        .client
        .request(method, format!("{}{path}", w.base))
        .bearer_auth(&w.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("worker API reachable");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

async fn create(w: &Worker, id: Uuid, extra: Value) -> (u16, Value) {
    let mut body = json!({"version": 1, "task_id": Uuid::new_v4(), "sandbox_id": id});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, bytes) = call(w, Method::POST, worker::SANDBOXES, Some(body)).await;
    (status, json_of(&bytes))
}

async fn exec(w: &Worker, id: Uuid, body: Value) -> (u16, Value) {
    let (status, bytes) = call(w, Method::POST, &worker::sandbox_exec(id), Some(body)).await;
    (status, json_of(&bytes))
}

async fn sh(w: &Worker, id: Uuid, script: &str) -> Value {
    let (status, answer) = exec(w, id, json!({"argv": ["sh", "-c", script]})).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn files(w: &Worker, id: Uuid, path: &str) -> reqwest::Url {
    let mut url: reqwest::Url = format!("{}{}", w.base, worker::sandbox_files(id))
        .parse()
        .unwrap();
    url.query_pairs_mut().append_pair("path", path);
    url
}

async fn put(w: &Worker, id: Uuid, path: &str, bytes: &[u8]) -> (u16, Vec<u8>) {
    let resp = w
        .client
        .put(files(w, id, path))
        .bearer_auth(&w.token)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

async fn get(w: &Worker, id: Uuid, path: &str) -> (u16, Vec<u8>) {
    let resp = w
        .client
        .get(files(w, id, path))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

async fn destroy(w: &Worker, id: Uuid) -> u16 {
    call(w, Method::DELETE, &worker::sandbox(id), None).await.0
}

/// Waits until `check` holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn create_exec_files_and_destroy_with_the_jobs_hardening() {
    let env = DevEnv::load();
    let w = Worker::start(&env, &[]).await;
    let id = Uuid::new_v4();
    let (status, created) = create(&w, id, json!({})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["sandbox_id"], id.to_string());
    assert_eq!(created["limits"]["user_namespaces_denied"], true);

    // Labelled like a job's sandbox, plus its role; the worker's mount root.
    let containers = env.job_containers(id).await;
    assert_eq!(containers.len(), 1);
    let labels = containers[0].labels.clone().unwrap();
    assert_eq!(labels["cynodeai.role"], "managed");
    assert_eq!(
        labels["cynodeai.mount_root"],
        w.mount_root.path().display().to_string()
    );
    assert_eq!(containers[0].state.as_deref(), Some("running"));

    let echoed = sh(&w, id, "echo hello; echo oops >&2; exit 3").await;
    assert_eq!(echoed["stdout"], "hello\n");
    assert_eq!(echoed["stderr"], "oops\n");
    assert_eq!(echoed["exit_code"], 3);
    assert_eq!(echoed["timed_out"], false);

    // The hardening of a job: no capabilities, no new privileges, read-only root, no network,
    // its own user namespace, the job's context in its env.
    let seen = sh(
        &w,
        id,
        "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; ls /sys/class/net; \
         touch /etc/x 2>/dev/null && echo ROOT-WRITABLE; cat /proc/self/uid_map; \
         echo job=$CYNODE_JOB_ID; pwd",
    )
    .await;
    let out = seen["stdout"].as_str().unwrap();
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("\nlo\n"), "{out}");
    assert!(!out.contains("eth"), "{out}");
    assert!(!out.contains("ROOT-WRITABLE"), "{out}");
    assert!(
        !out.contains("         0          0 4294967295"),
        "host identity map: {out}"
    );
    assert!(out.contains(&format!("job={id}")), "{out}");
    assert!(out.ends_with("/workspace\n"), "{out}");

    // A file in, read back by a command and by the API.
    let content = b"line one\n\xffbinary\n";
    assert_eq!(put(&w, id, "dir/sub/hello.txt", content).await.0, 204);
    let cat = exec(
        &w,
        id,
        json!({"argv": ["cat", "hello.txt"], "cwd": "dir/sub"}),
    )
    .await;
    assert_eq!(cat.0, 200, "{}", cat.1);
    assert_eq!(cat.1["exit_code"], 0);
    assert!(cat.1["stdout"].as_str().unwrap().starts_with("line one\n"));
    let (status, bytes) = get(&w, id, "dir/sub/hello.txt").await;
    assert_eq!(status, 200);
    assert_eq!(bytes, content);
    // What a command wrote comes out too; missing files and directories do not.
    sh(&w, id, "printf made > made.txt").await;
    assert_eq!(get(&w, id, "made.txt").await, (200, b"made".to_vec()));
    assert_eq!(get(&w, id, "missing.txt").await.0, 404);
    assert_eq!(get(&w, id, "dir").await.0, 400);

    // Symlinks resolve inside the sandbox, never on the host: a link to a host file reads
    // nothing, one to a host directory writes nothing there, one to /etc/passwd is the image's.
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("secret"), "host secret").unwrap();
    let host = host_dir.path().display();
    sh(
        &w,
        id,
        &format!("ln -s {host}/secret to-host-file; ln -s {host} to-host-dir; ln -s /etc/passwd to-passwd"),
    )
    .await;
    let (status, body) = get(&w, id, "to-host-file").await;
    assert_ne!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!String::from_utf8_lossy(&body).contains("host secret"));
    assert_ne!(put(&w, id, "to-host-dir/planted", b"x").await.0, 204);
    assert!(!host_dir.path().join("planted").exists());
    let passwd = sh(&w, id, "cat /etc/passwd").await;
    let (status, body) = get(&w, id, "to-passwd").await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        passwd["stdout"].as_str().unwrap()
    );

    // Bad paths: 400 naming the path, nothing written anywhere.
    for bad in [
        "../escape.txt",
        "/etc/escape.txt",
        "a/../../escape.txt",
        "nul\0.txt",
        "",
    ] {
        let (status, body) = put(&w, id, bad, b"x").await;
        assert_eq!(status, 400, "{bad:?}: {}", String::from_utf8_lossy(&body));
        assert!(
            String::from_utf8_lossy(&body).contains("path"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(get(&w, id, bad).await.0, 400, "{bad:?}");
    }
    let listed = sh(&w, id, "ls -a /workspace /; ls /workspace/dir").await;
    let listed = listed["stdout"].as_str().unwrap();
    assert!(
        !listed.contains("escape") && !listed.contains("nul"),
        "{listed}"
    );
    let on_host: Vec<_> = std::fs::read_dir(w.mount_root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(on_host.iter().all(|n| !n.contains("escape")), "{on_host:?}");

    // Bad execs and ids.
    assert_eq!(exec(&w, id, json!({"argv": []})).await.0, 400);
    assert_eq!(
        exec(&w, id, json!({"argv": ["true"], "cwd": "../.."}))
            .await
            .0,
        400
    );
    assert_eq!(
        exec(&w, id, json!({"argv": ["true"], "bogus": 1})).await.0,
        400
    );
    assert_eq!(
        exec(&w, Uuid::new_v4(), json!({"argv": ["true"]})).await.0,
        404
    );
    assert_eq!(get(&w, Uuid::new_v4(), "made.txt").await.0, 404);
    let (status, again) = create(&w, id, json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (status, refused) = create(&w, Uuid::new_v4(), json!({"image": "docker.io/evil"})).await;
    assert_eq!(status, 400);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("docker.io/evil"),
        "{refused}"
    );

    // Delete: the container and the directory go; again is no error; the id is unknown then.
    assert_eq!(destroy(&w, id).await, 204);
    assert!(env.job_containers(id).await.is_empty());
    assert!(
        !w.job_dir(id).exists(),
        "the sandbox's directory is removed"
    );
    assert_eq!(destroy(&w, id).await, 204);
    assert_eq!(exec(&w, id, json!({"argv": ["true"]})).await.0, 404);
}

#[tokio::test]
async fn a_timed_out_exec_is_killed_and_the_sandbox_stays_usable() {
    let env = DevEnv::load();
    let w = Worker::start(&env, &[]).await;
    let id = Uuid::new_v4();
    assert_eq!(create(&w, id, json!({})).await.0, 201);
    let started = std::time::Instant::now();
    let (status, answer) = exec(
        &w,
        id,
        json!({"argv": ["sh", "-c", "echo before; sleep 60; echo after"], "timeout_seconds": 1}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["timed_out"], true);
    assert_eq!(answer["exit_code"], -1);
    assert!(started.elapsed() < Duration::from_secs(20));
    let ps = sh(&w, id, "ps -o pid,args").await;
    let ps = ps["stdout"].as_str().unwrap();
    assert!(
        !ps.contains("sleep 60"),
        "the timed-out command still runs:\n{ps}"
    );
    assert_eq!(
        sh(&w, id, "echo still here").await["stdout"],
        "still here\n"
    );
    // A command or directory that is not there ends as a shell would say it (127), not as a
    // fault of the node.
    for (body, named) in [
        (json!({"argv": ["no-such-program"]}), "no-such-program"),
        (json!({"argv": ["true"], "cwd": "not/here"}), "not/here"),
    ] {
        let (status, answer) = exec(&w, id, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["exit_code"], 127, "{answer}");
        assert!(
            answer["stderr"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    let (status, too_long) = exec(
        &w,
        id,
        json!({"argv": ["true"], "timeout_seconds": 99_999_999}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        too_long["detail"]
            .as_str()
            .unwrap()
            .contains("timeout_seconds"),
        "{too_long}"
    );
    assert_eq!(destroy(&w, id).await, 204);
}

#[tokio::test]
async fn idle_sandboxes_are_removed_and_the_cap_holds() {
    let env = DevEnv::load();
    let w = Worker::start(&env, &[]).await;
    let idle = Uuid::new_v4();
    assert_eq!(
        create(&w, idle, json!({"idle_timeout_seconds": 1})).await.0,
        201
    );
    eventually(
        Duration::from_secs(20),
        "the idle sandbox is removed",
        || async { env.job_containers(idle).await.is_empty() && !w.job_dir(idle).exists() },
    )
    .await;
    assert_eq!(exec(&w, idle, json!({"argv": ["true"]})).await.0, 404);

    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        let (status, answer) = create(&w, *id, json!({})).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, refused) = create(&w, Uuid::new_v4(), json!({})).await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(destroy(&w, ids[0]).await, 204);
    let fifth = Uuid::new_v4();
    assert_eq!(
        create(&w, fifth, json!({})).await.0,
        201,
        "a freed slot is usable"
    );
    for id in ids.iter().skip(1).chain([&fifth]) {
        assert_eq!(destroy(&w, *id).await, 204);
    }
}

#[tokio::test]
async fn a_new_worker_removes_the_managed_sandboxes_an_earlier_one_left() {
    let env = DevEnv::load();
    let mut w = Worker::start(&env, &[]).await;
    let id = Uuid::new_v4();
    assert_eq!(create(&w, id, json!({})).await.0, 201);
    assert_eq!(put(&w, id, "kept.txt", b"x").await.0, 204);
    w.kill().await;
    assert_eq!(env.job_containers(id).await.len(), 1, "SIGKILL leaves it");
    w.restart().await;
    // The sweep runs before the worker listens.
    assert!(env.job_containers(id).await.is_empty());
    assert!(!w.job_dir(id).exists());
    assert_eq!(exec(&w, id, json!({"argv": ["true"]})).await.0, 404);
    // And the id is free again.
    assert_eq!(create(&w, id, json!({})).await.0, 201);
    assert_eq!(destroy(&w, id).await, 204);
}
