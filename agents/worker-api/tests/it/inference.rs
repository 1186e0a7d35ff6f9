//! Inference on the node (issue 8): the worker API's authenticated OpenAI-compatible routes and
//! inference from inside a sandbox through the job's pod and sidecar. Everything real: the
//! worker binary, the sidecar binary, Podman, and the dev llama.cpp server (SmolLM2-135M). No
//! assertion depends on what the model says, only that it said something.

use std::time::Duration;

use cynode_e2e::DevEnv;
use cynode_e2e::worker::Worker;
use futures::StreamExt;
use podman_api::opts::{PodListFilter, PodListOpts};
use serde_json::{Value, json};
use uuid::Uuid;

const MODELS: &str = "/v1/worker/inference/v1/models";
const CHAT: &str = "/v1/worker/inference/v1/chat/completions";

fn chat_body(env: &DevEnv, extra: Value) -> Value {
    let mut body = json!({
        "model": env.inference_model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
        "temperature": 0
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

async fn post(
    worker: &Worker,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = worker
        .client
        .post(format!("{}{path}", worker.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("worker reachable")
}

/// An OpenAI-shaped error: `{"error": {"message", "type", "code"}}`; returns it.
async fn openai_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.expect("JSON error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn the_routes_need_the_token() {
    let env = DevEnv::load();
    let worker = Worker::with_inference(&env, &env.inference_url).await;
    let resp = worker
        .client
        .get(format!("{}{MODELS}", worker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post(
        &worker,
        CHAT,
        Some("wrong"),
        chat_body(&env, json!({})).to_string(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let resp = post(&worker, CHAT, None, chat_body(&env, json!({})).to_string()).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn models_and_a_real_completion_with_the_token() {
    let env = DevEnv::load();
    let worker = Worker::with_inference(&env, &env.inference_url).await;
    let models: Value = worker
        .client
        .get(format!("{}{MODELS}", worker.base))
        .bearer_auth(&worker.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&env.inference_model.as_str()), "{models}");

    let resp = post(
        &worker,
        CHAT,
        Some(&worker.token),
        chat_body(&env, json!({})).to_string(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(!text.is_empty(), "{answer}");
    assert!(
        answer["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0,
        "{answer}"
    );
}

#[tokio::test]
async fn a_stream_delivers_chunks_before_its_end() {
    let env = DevEnv::load();
    let worker = Worker::with_inference(&env, &env.inference_url).await;
    let resp = post(
        &worker,
        CHAT,
        Some(&worker.token),
        chat_body(&env, json!({"stream": true, "max_tokens": 16})).to_string(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        resp.headers()
    );
    let mut stream = resp.bytes_stream();
    let mut events_before_done = 0;
    let mut done = false;
    let mut pending = String::new();
    while let Some(chunk) = stream.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            if event.contains("[DONE]") {
                done = true;
            } else if event.starts_with("data:") && !done {
                events_before_done += 1;
            }
        }
    }
    assert!(done, "the stream never ended with [DONE]");
    assert!(
        events_before_done > 1,
        "only {events_before_done} event(s) before the end"
    );
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let env = DevEnv::load();
    let worker = Worker::with_inference(&env, &env.inference_url).await;
    let token = Some(worker.token.as_str());
    let unknown = post(
        &worker,
        CHAT,
        token,
        chat_body(&env, json!({"model": "no-such-model:1b"})).to_string(),
    )
    .await;
    let body = openai_error(unknown, 404).await;
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");

    let malformed = post(&worker, CHAT, token, "{\"model\": ").await;
    let body = openai_error(malformed, 400).await;
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

    let huge = vec![b' '; 11 * 1024 * 1024];
    let body = openai_error(post(&worker, CHAT, token, huge).await, 413).await;
    assert_eq!(body["error"]["code"], "request_too_large", "{body}");
}

#[tokio::test]
async fn a_backend_that_is_down_is_503_and_inference_off_is_503_too() {
    let env = DevEnv::load();
    let nothing_there = format!("http://127.0.0.1:{}", cynode_e2e::free_port());
    let worker = Worker::with_inference(&env, &nothing_there).await;
    let token = Some(worker.token.as_str());
    let body = openai_error(
        post(&worker, CHAT, token, chat_body(&env, json!({})).to_string()).await,
        503,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not answering"), "{body}");
    assert!(
        !message.contains(&nothing_there),
        "the backend's address leaked: {body}"
    );

    let without = Worker::start(&env, &[]).await;
    let resp = post(
        &without,
        CHAT,
        Some(&without.token),
        chat_body(&env, json!({})).to_string(),
    )
    .await;
    let body = openai_error(resp, 503).await;
    assert_eq!(body["error"]["code"], "inference_disabled", "{body}");
    // And a job may not ask for it there: refused before anything is created.
    let job_id = Uuid::new_v4();
    let (status, problem) = without
        .run_job(job_id, json!({"command": ["true"], "use_inference": true}))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("inference is disabled"),
        "{problem}"
    );
    assert!(env.job_containers(job_id).await.is_empty());
}

/// A backend killed while it streams: the client gets an error event and a clean end.
#[tokio::test]
async fn a_backend_that_dies_mid_stream_ends_the_stream_with_an_error_event() {
    let env = DevEnv::load();
    let port = cynode_e2e::free_port();
    let mut server = env.spawn_llama_server(port);
    let url = format!("http://127.0.0.1:{port}");
    assert!(
        cynode_e2e::process::wait_http(&format!("{url}/health"), 200, Duration::from_secs(60))
            .await,
        "own llama-server did not start"
    );
    let worker = Worker::with_inference(&env, &url).await;
    let resp = post(
        &worker,
        CHAT,
        Some(&worker.token),
        chat_body(
            &env,
            json!({"stream": true, "max_tokens": 400, "temperature": 1.0}),
        )
        .to_string(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.expect("a first chunk").unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data:"));
    server.0.start_kill().unwrap();
    let mut rest = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => rest.push_str(&String::from_utf8_lossy(&bytes)),
                Err(e) => panic!("the client saw a transport error instead of an error event: {e}"),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream did not end after the backend died"
    );
    assert!(
        rest.contains("\"code\":\"upstream_error\""),
        "no error event in: {rest}"
    );
    assert!(
        !rest.contains("[DONE]"),
        "a broken answer must not look finished: {rest}"
    );
}

/// The sandbox's side: a request through `$OLLAMA_BASE_URL`, nothing else reachable, only `lo`,
/// 413 from the sidecar, counts in the result, nothing left afterwards.
#[tokio::test]
async fn a_sandbox_reaches_the_model_through_its_sidecar_and_nothing_else() {
    let env = DevEnv::load();
    let worker = Worker::with_inference(&env, &env.inference_url).await;
    let pg_port = url::Url::parse(&env.database_url)
        .unwrap()
        .port()
        .unwrap_or(5432);
    let body = json!({
        "model": env.inference_model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8
    })
    .to_string();
    // busybox only: nc speaks the HTTP by hand.
    let script = format!(
        r#"set -u
echo "uid_map: $(cat /proc/self/uid_map)"
echo "net: $(ls /sys/class/net | tr '\n' ' ')"
echo "urls: $OLLAMA_BASE_URL $OPENAI_BASE_URL"
body='{body}'
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "${{#body}}" "$body" \
  | nc 127.0.0.1 11434 > /tmp/answer
head -n 1 /tmp/answer
grep -q '"choices"' /tmp/answer && echo "completion: yes"
for port in {pg_port} {worker_port} 12080 12082; do
  if nc -w 2 127.0.0.1 $port </dev/null; then echo "port $port: OPEN"; else echo "port $port: closed"; fi
done
{{ printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11534336\r\n\r\n'; head -c 11534336 /dev/zero; }} \
  | nc 127.0.0.1 11434 | head -n 1
env | grep -i -e token -e secret -e '\.sock' || echo "no secrets in env"
"#,
        worker_port = worker.port
    );
    let job_id = Uuid::new_v4();
    let (status, result) = worker
        .run_job(
            job_id,
            json!({"command": ["sh", "-c", script], "use_inference": true, "timeout_seconds": 120}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let stdout = result["stdout"].as_str().unwrap();
    assert_eq!(result["status"], "completed", "{result}");
    assert!(stdout.contains("net: lo \n"), "{stdout}");
    // The pod's user namespace, which the job shares with its sidecar: container root is an
    // unprivileged host uid, and the sidecar (the same uid) still reached the worker's socket.
    let uid_map: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("uid_map: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(uid_map.len(), 3, "{stdout}");
    assert_eq!(uid_map[0], 0, "{stdout}");
    assert_ne!(uid_map[1], 0, "container root is host root: {stdout}");
    assert_eq!(uid_map[2], 65536, "{stdout}");
    assert!(
        stdout.contains("urls: http://localhost:11434 http://localhost:11434/v1"),
        "{stdout}"
    );
    assert!(stdout.contains("HTTP/1.1 200"), "{stdout}");
    assert!(stdout.contains("completion: yes"), "{stdout}");
    assert!(!stdout.contains("OPEN"), "{stdout}");
    assert_eq!(stdout.matches(": closed").count(), 4, "{stdout}");
    assert!(stdout.contains("HTTP/1.1 413"), "{stdout}");
    assert!(stdout.contains("no secrets in env"), "{stdout}");
    let usage = &result["run_diagnostics"]["inference"];
    assert_eq!(usage["requests"], 1, "{result}");
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{result}");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{result}");
    assert_nothing_left(&env, &worker, job_id).await;
}

#[tokio::test]
async fn an_inference_job_that_times_out_leaves_nothing_behind() {
    let env = DevEnv::load();
    let worker = Worker::with_inference(&env, &env.inference_url).await;
    let job_id = Uuid::new_v4();
    let (status, result) = worker
        .run_job(
            job_id,
            json!({"command": ["sleep", "60"], "use_inference": true, "timeout_seconds": 2}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "timeout", "{result}");
    assert_eq!(
        result["run_diagnostics"]["inference"]["requests"], 0,
        "{result}"
    );
    assert_nothing_left(&env, &worker, job_id).await;
}

#[tokio::test]
async fn a_missing_sidecar_fails_the_job_with_the_reason() {
    let env = DevEnv::load();
    let worker = Worker::start(
        &env,
        &[
            "--inference-url".into(),
            env.inference_url.clone(),
            "--inference-proxy-binary".into(),
            "/nonexistent/cynode-inference-proxy".into(),
        ],
    )
    .await;
    let job_id = Uuid::new_v4();
    let (status, result) = worker
        .run_job(job_id, json!({"command": ["true"], "use_inference": true}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "failed", "{result}");
    assert!(
        result["stderr"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/cynode-inference-proxy"),
        "{result}"
    );
    assert_nothing_left(&env, &worker, job_id).await;
}

async fn assert_nothing_left(env: &DevEnv, worker: &Worker, job_id: Uuid) {
    assert!(
        env.job_containers(job_id).await.is_empty(),
        "containers of the job are left"
    );
    let pods = env
        .podman()
        .pods()
        .list(
            &PodListOpts::builder()
                .filter([PodListFilter::LabelKeyVal(
                    "cynodeai.job_id".into(),
                    job_id.to_string(),
                )])
                .build(),
        )
        .await
        .unwrap();
    assert!(pods.is_empty(), "the job's pod is left: {pods:?}");
    assert!(
        !worker.job_dir(job_id).join("inference").exists(),
        "the job's socket directory is left"
    );
}
