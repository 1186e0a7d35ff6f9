//! MCP from inside a sandbox (issue 11): a job with `use_mcp` reaches the orchestrator's MCP
//! gateway at `$CYNODE_MCP_URL` through its pod's sidecar and its own socket on the worker,
//! which attaches the job's grant. Everything real (the worker and sidecar binaries, Podman, the
//! busybox sandbox image) but the gateway: a small JSON-RPC server of this test on loopback that
//! records what reaches it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_e2e::DevEnv;
use cynode_e2e::worker::Worker;
use podman_api::opts::{PodListFilter, PodListOpts};
use serde_json::{Value, json};
use uuid::Uuid;

const PROBLEM_JSON: &str = "application/problem+json";

/// What the stand-in gateway saw of one request.
#[derive(Debug, Clone)]
struct Call {
    headers: HeaderMap,
    body: Value,
}

#[derive(Debug)]
struct Gateway {
    /// The only bearer token it accepts; any other gets 401, as an expired one would.
    token: String,
    calls: Mutex<VecDeque<Call>>,
    /// Answered to `test/released`: the sandbox waits for it, so the test can look at the
    /// running job.
    released: AtomicBool,
}

/// The stand-in gateway on a free loopback port; its MCP URL and its state.
async fn gateway(token: &str) -> (String, Arc<Gateway>) {
    let state = Arc::new(Gateway {
        token: token.to_owned(),
        calls: Mutex::new(VecDeque::new()),
        released: AtomicBool::new(false),
    });
    let port = cynode_e2e::free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the stand-in gateway");
    let app = axum::Router::new()
        .route("/mcp", axum::routing::any(answer))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/mcp"), state)
}

async fn answer(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    gateway.calls.lock().unwrap().push_back(Call {
        headers: headers.clone(),
        body: body.clone(),
    });
    let bearer = format!("Bearer {}", gateway.token);
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(bearer.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
            Json(json!({"error": "token expired"})),
        )
            .into_response();
    }
    let id = body["id"].clone();
    match body["method"].as_str() {
        Some("tools/call") => {
            let text = body["params"]["arguments"]["text"].as_str().unwrap_or("");
            (
                [("mcp-session-id", "sess-from-gateway")],
                Json(json!({"jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": format!("echo:{text}")}]}})),
            )
                .into_response()
        }
        // A streamed answer, as MCP's streamable HTTP may give.
        Some("tools/list") => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            format!(
                "event: message\ndata: {}\n\n",
                json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [{"name": "echo"}]}})
            ),
        )
            .into_response(),
        Some("test/released") => Json(json!({"jsonrpc": "2.0", "id": id,
            "result": {"released": gateway.released.load(Ordering::SeqCst)}}))
        .into_response(),
        _ => Json(json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": "method not found"}}))
        .into_response(),
    }
}

impl Gateway {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().iter().cloned().collect()
    }

    fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.body["method"] == method)
            .collect()
    }
}

/// A grant as `(url, token)`.
type Grant<'a> = Option<(&'a str, &'a str)>;

fn run_body(job_id: Uuid, sandbox: Value, grant: Grant<'_>) -> Value {
    let mut body = json!({"version": 1, "task_id": Uuid::new_v4(), "job_id": job_id,
                          "sandbox": sandbox});
    if let Some((url, token)) = grant {
        body["mcp"] = json!({"url": url, "token": token});
    }
    body
}

/// `wget` (busybox) POSTing `body` to `$CYNODE_MCP_URL` with the headers a client may send and
/// some it must not get through; server headers and answer on stdout. (No `-T`: the image's
/// static busybox 1.35 wget crashes with it; nothing here needs it, as a closed port in the
/// pod's loopback refuses at once, and the job has its own timeout.)
fn mcp_post(body: &str) -> String {
    format!(
        "wget -S -q -O - --header 'Content-Type: application/json' \
         --header 'Accept: application/json, text/event-stream' \
         --header 'Authorization: Bearer evil' --header 'Cookie: session=stolen' \
         --header 'X-Forwarded-For: 10.9.9.9' --header 'Mcp-Session-Id: sess-from-sandbox' \
         --header 'MCP-Protocol-Version: 2025-06-18' --post-data '{body}' \"$CYNODE_MCP_URL\" 2>&1"
    )
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && std::fs::read(&path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// Polls until `check` holds (up to 60 s).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The inspect output of the job's containers and pod, as JSON text.
async fn inspected(env: &DevEnv, job_id: Uuid) -> Vec<String> {
    let podman = env.podman();
    let mut out = Vec::new();
    for container in env.job_containers(job_id).await {
        let id = container.id.expect("container id");
        let inspect = podman.containers().get(&id).inspect().await.unwrap();
        out.push(serde_json::to_string(&inspect).unwrap());
    }
    for pod in job_pods(env, job_id).await {
        let inspect = podman
            .pods()
            .get(pod.id.expect("pod id"))
            .inspect()
            .await
            .unwrap();
        out.push(serde_json::to_string(&inspect).unwrap());
    }
    out
}

async fn job_pods(env: &DevEnv, job_id: Uuid) -> Vec<podman_api::models::ListPodsReport> {
    env.podman()
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
        .unwrap()
}

async fn assert_nothing_left(env: &DevEnv, worker: &Worker, job_id: Uuid) {
    assert!(
        env.job_containers(job_id).await.is_empty(),
        "containers of the job are left"
    );
    assert!(
        job_pods(env, job_id).await.is_empty(),
        "the job's pod is left"
    );
    for dir in ["mcp", "inference"] {
        assert!(
            !worker.job_dir(job_id).join(dir).exists(),
            "the job's {dir} socket directory is left"
        );
    }
}

/// One job with inference and MCP: the call reaches the gateway with the grant's token and
/// none of the sandbox's credentials, the answer (JSON and event stream) comes back, and the
/// token is nowhere the job or the host can read it.
#[tokio::test]
async fn a_sandbox_calls_the_gateway_with_the_jobs_grant_and_never_holds_it() {
    let env = DevEnv::load();
    let token = format!("grant-{}", Uuid::new_v4().simple());
    let (url, gateway) = gateway(&token).await;
    let gateway_port = url::Url::parse(&url).unwrap().port().unwrap();
    cynode_e2e::worker::inference_proxy_binary();
    let worker = Worker::start(
        &env,
        &[
            "--inference-url".into(),
            env.inference_url.clone(),
            "--mcp-gateway-url".into(),
            url.clone(),
        ],
    )
    .await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let script = format!(
        r#"echo "url: $CYNODE_MCP_URL"
echo "--- call"; {call}; echo "--- list"; {list}; echo "--- end"
wget -q -O - http://127.0.0.1:11434/v1/models | grep -q '"data"' && echo "inference: yes"
if wget -q -O - http://127.0.0.1:{gateway_port}/mcp >/dev/null 2>&1; then echo "direct: OPEN"; else echo "direct: closed"; fi
until wget -q -O - --header 'Content-Type: application/json' \
  --post-data '{{"jsonrpc":"2.0","id":9,"method":"test/released"}}' "$CYNODE_MCP_URL" \
  | grep -q '"released":true'; do sleep 0.2; done
echo "--- env"; env; echo "--- ls"; ls /run/cynode 2>&1
"#,
        call = mcp_post(call),
        list = mcp_post(list),
    );
    let job_id = Uuid::new_v4();
    let delivery = worker.deliver(&run_body(
        job_id,
        json!({"command": ["sh", "-c", script], "use_inference": true, "use_mcp": true,
               "timeout_seconds": 120}),
        Some((&url, &token)),
    ));

    // While the job waits for its release: its containers, pod and files hold no token.
    eventually("the sandbox's first calls", || {
        !gateway.calls_of("test/released").is_empty()
    })
    .await;
    let inspected = inspected(&env, job_id).await;
    assert!(
        inspected.len() >= 3,
        "sandbox, sidecar and pod: {inspected:?}"
    );
    for text in &inspected {
        assert!(
            !text.contains(&token),
            "podman inspect holds the token: {text}"
        );
    }
    assert!(
        worker.job_dir(job_id).join("mcp").exists(),
        "the MCP socket directory while the job runs"
    );
    let leaked = files_containing(worker.mount_root.path(), &token);
    assert!(leaked.is_empty(), "files hold the token: {leaked:?}");
    gateway.released.store(true, Ordering::SeqCst);

    let (status, result) = delivery.await.unwrap().expect("the worker answered");
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "completed", "{result}");
    let stdout = result["stdout"].as_str().unwrap();
    assert!(
        stdout.contains("url: http://127.0.0.1:12083/mcp\n"),
        "{stdout}"
    );
    let section = |name: &str| {
        let start = stdout
            .find(&format!("--- {name}\n"))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"));
        let rest = &stdout[start + name.len() + 5..];
        rest[..rest.find("--- ").unwrap_or(rest.len())].to_owned()
    };
    let answered = section("call");
    assert!(answered.contains("HTTP/1.1 200"), "{answered}");
    assert!(answered.contains(r#""text":"echo:hi""#), "{answered}");
    assert!(
        answered
            .to_ascii_lowercase()
            .contains("mcp-session-id: sess-from-gateway"),
        "{answered}"
    );
    let streamed = section("list");
    assert!(
        streamed.to_ascii_lowercase().contains("text/event-stream"),
        "{streamed}"
    );
    assert!(streamed.contains("event: message\ndata: {"), "{streamed}");
    assert!(streamed.contains(r#""name":"echo""#), "{streamed}");
    assert!(stdout.contains("inference: yes"), "{stdout}");
    assert!(stdout.contains("direct: closed"), "{stdout}");

    // What the gateway saw: the grant's token, the MCP headers, none of the smuggled ones.
    let calls = gateway.calls_of("tools/call");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let headers = &calls[0].headers;
    let bearer = format!("Bearer {token}");
    assert_eq!(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .collect::<Vec<_>>(),
        [bearer.as_str()],
        "{headers:?}"
    );
    assert!(headers.get(header::COOKIE).is_none(), "{headers:?}");
    assert!(headers.get("x-forwarded-for").is_none(), "{headers:?}");
    assert_eq!(headers["mcp-session-id"], "sess-from-sandbox");
    assert_eq!(headers["mcp-protocol-version"], "2025-06-18");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        headers[header::ACCEPT],
        "application/json, text/event-stream"
    );
    assert_eq!(calls[0].body["params"]["arguments"]["text"], "hi");
    assert!(
        gateway
            .calls()
            .iter()
            .all(|c| c.headers[header::AUTHORIZATION] == bearer.as_str()),
        "every call carried the grant"
    );

    // The sandbox never had the token, the socket or its path.
    let env_out = section("env");
    assert!(!env_out.contains(&token), "{env_out}");
    assert!(!env_out.contains(".sock"), "{env_out}");
    assert!(!env_out.contains("/run/cynode"), "{env_out}");
    let ls = section("ls");
    assert!(ls.contains("No such file"), "{ls}");
    assert!(!result.to_string().contains(&token), "{result}");
    let diagnostics = &result["run_diagnostics"];
    assert_eq!(
        diagnostics["mcp"]["requests"].as_u64(),
        Some(gateway.calls().len() as u64),
        "{result}"
    );
    assert_eq!(diagnostics["inference"]["requests"], 1, "{result}");

    assert_nothing_left(&env, &worker, job_id).await;
    let leaked = files_containing(worker.mount_root.path(), &token);
    assert!(leaked.is_empty(), "files hold the token: {leaked:?}");
}

/// An expired grant: the gateway's 401 reaches the job as it is. The pod of an MCP-only job has
/// no inference listener.
#[tokio::test]
async fn an_expired_grant_gets_the_gateways_401_and_mcp_alone_has_no_inference() {
    let env = DevEnv::load();
    let (url, gateway) = gateway("the-current-token").await;
    cynode_e2e::worker::inference_proxy_binary();
    let worker = Worker::start(&env, &["--mcp-gateway-url".into(), url.clone()]).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#;
    let script = format!(
        r#"{call}; echo "exit: $?"
if wget -q -O - http://127.0.0.1:11434/v1/models >/dev/null 2>&1; then echo "inference: OPEN"; else echo "inference: closed"; fi
"#,
        call = mcp_post(call)
    );
    let job_id = Uuid::new_v4();
    let (status, result) = worker
        .deliver(&run_body(
            job_id,
            json!({"command": ["sh", "-c", script], "use_mcp": true, "timeout_seconds": 60}),
            Some((&url, "an-expired-token")),
        ))
        .await
        .unwrap()
        .expect("the worker answered");
    assert_eq!(status, 200, "{result}");
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.contains("HTTP/1.1 401"), "{stdout}");
    assert!(stdout.contains("exit: 1"), "{stdout}");
    assert!(stdout.contains("inference: closed"), "{stdout}");
    let calls = gateway.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].headers[header::AUTHORIZATION],
        "Bearer an-expired-token"
    );
    assert_eq!(result["run_diagnostics"]["mcp"]["requests"], 1, "{result}");
    assert!(
        result["run_diagnostics"].get("inference").is_none(),
        "{result}"
    );
    assert_nothing_left(&env, &worker, job_id).await;
}

/// A job without `use_mcp` on a node with a gateway: no URL, nothing listening, no way out.
#[tokio::test]
async fn a_job_without_mcp_has_no_url_and_cannot_reach_the_gateway() {
    let env = DevEnv::load();
    let (url, gateway) = gateway("t").await;
    let gateway_port = url::Url::parse(&url).unwrap().port().unwrap();
    cynode_e2e::worker::inference_proxy_binary();
    let worker = Worker::start(&env, &["--mcp-gateway-url".into(), url.clone()]).await;
    let script = format!(
        r#"env | grep CYNODE_ ; echo "---"
for port in 12083 {gateway_port}; do
  if wget -q -O - --post-data '{{}}' http://127.0.0.1:$port/mcp >/dev/null 2>&1; then echo "$port: OPEN"; else echo "$port: closed"; fi
done
"#
    );
    let job_id = Uuid::new_v4();
    let (status, result) = worker
        .run_job(
            job_id,
            json!({"command": ["sh", "-c", script], "timeout_seconds": 60}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.contains("CYNODE_JOB_ID="), "{stdout}");
    assert!(!stdout.contains("CYNODE_MCP_URL"), "{stdout}");
    assert!(stdout.contains("12083: closed"), "{stdout}");
    assert!(
        stdout.contains(&format!("{gateway_port}: closed")),
        "{stdout}"
    );
    assert!(gateway.calls().is_empty(), "{:?}", gateway.calls());
    assert!(result.get("run_diagnostics").is_none(), "{result}");
    assert_nothing_left(&env, &worker, job_id).await;
}

/// Refused requests name the field, never echo the token, and start nothing.
#[tokio::test]
async fn bad_mcp_requests_are_refused_by_name_and_start_nothing() {
    let env = DevEnv::load();
    let (url, _gateway) = gateway("t").await;
    let worker = Worker::start(&env, &["--mcp-gateway-url".into(), url.clone()]).await;
    let without_gateway = Worker::start(&env, &[]).await;
    let secret = "refused-secret-token";
    let mcp_job = json!({"command": ["true"], "use_mcp": true});
    let other_origin = url.replace("127.0.0.1", "localhost");
    // (worker, sandbox, grant, what the problem's detail starts with)
    let cases: [(&Worker, Value, Grant<'_>, &str); 5] = [
        (&worker, mcp_job.clone(), None, "mcp: "),
        (
            &worker,
            json!({"command": ["true"]}),
            Some((&url, secret)),
            "mcp: ",
        ),
        (
            &worker,
            mcp_job.clone(),
            Some((&other_origin, secret)),
            "mcp.url ",
        ),
        (
            &worker,
            mcp_job.clone(),
            Some((&url, "two words")),
            "mcp.token ",
        ),
        (
            &without_gateway,
            mcp_job.clone(),
            Some((&url, secret)),
            "sandbox.use_mcp: ",
        ),
    ];
    for (target, sandbox, grant, field) in cases {
        let job_id = Uuid::new_v4();
        let resp = target
            .client
            .post(format!(
                "{}{}",
                target.base,
                cynode_contracts::routes::worker::JOBS_RUN
            ))
            .bearer_auth(&target.token)
            .json(&run_body(job_id, sandbox, grant))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{field}");
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(ctype.as_deref(), Some(PROBLEM_JSON), "{problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with(field), "{field}: {problem}");
        assert!(!problem.to_string().contains(secret), "{problem}");
        assert!(!problem.to_string().contains("two words"), "{problem}");
        assert!(
            !target.job_dir(job_id).exists(),
            "{field}: the job directory was made"
        );
        assert!(env.job_containers(job_id).await.is_empty(), "{field}");
        assert!(job_pods(&env, job_id).await.is_empty(), "{field}");
    }
}
