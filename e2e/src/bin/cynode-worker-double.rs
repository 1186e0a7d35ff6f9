//! A worker API double for benchmarks of the dispatcher (`just bench-scheduler`): serves
//! `POST /v1/worker/jobs:run` on one port per simulated node, checks that port's bearer token,
//! parses the `RunJobRequest` (unknown fields refused, as the real worker does) and answers at
//! once with a completed `RunJobResponse`. Nothing runs, nothing is kept, so it is far faster
//! than the orchestrator that calls it and the benchmark measures the dispatcher.
//!
//! Usage: cynode-worker-double --nodes FILE [--threads N]
//! FILE has one line per node: `ADDR TOKEN` (e.g. `127.0.0.1:41001 tok-…`); ADDR must be a
//! loopback address. On SIGTERM or SIGINT it prints how many runs each port answered and how
//! many requests it refused, then exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cynode_contracts::routes;
use cynode_contracts::worker::{RunJobRequest, RunJobResponse, RunStatus, Truncated};

struct Port {
    addr: SocketAddr,
    /// `Bearer <token>`, compared as bytes.
    expected: Vec<u8>,
    answered: AtomicU64,
    refused: AtomicU64,
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn run_job(State(port): State<Arc<Port>>, headers: HeaderMap, body: Bytes) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if given != port.expected.as_slice() {
        port.refused.fetch_add(1, Ordering::Relaxed);
        return problem(StatusCode::UNAUTHORIZED, "bad bearer token");
    }
    let req: RunJobRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => {
            port.refused.fetch_add(1, Ordering::Relaxed);
            return problem(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let now = chrono::Utc::now();
    let answer = RunJobResponse {
        version: 1,
        task_id: req.task_id,
        job_id: req.job_id,
        status: RunStatus::Completed,
        exit_code: 0,
        stdout: "ok\n".into(),
        stderr: String::new(),
        started_at: now,
        ended_at: now,
        truncated: Truncated {
            stdout: false,
            stderr: false,
        },
        sba_result: None,
        artifacts: None,
        run_diagnostics: None,
        limits: None,
        oom_killed: false,
    };
    port.answered.fetch_add(1, Ordering::Relaxed);
    axum::Json(answer).into_response()
}

fn parse_nodes(text: &str) -> Result<Vec<Arc<Port>>, String> {
    let mut ports = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (addr, token) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("line {}: expected `ADDR TOKEN`", n + 1))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| format!("line {}: {addr}: {e}", n + 1))?;
        if !addr.ip().is_loopback() {
            return Err(format!("line {}: {addr} is not a loopback address", n + 1));
        }
        ports.push(Arc::new(Port {
            addr,
            expected: format!("Bearer {}", token.trim()).into_bytes(),
            answered: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }));
    }
    if ports.is_empty() {
        return Err("no nodes given".into());
    }
    Ok(ports)
}

fn usage(message: &str) -> ! {
    eprintln!(
        "cynode-worker-double: {message}\nusage: cynode-worker-double --nodes FILE [--threads N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut nodes_file = None;
    let mut threads = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nodes" => nodes_file = args.next(),
            "--threads" => {
                threads = Some(
                    args.next()
                        .and_then(|t| t.parse::<usize>().ok())
                        .filter(|&t| t > 0)
                        .unwrap_or_else(|| usage("--threads needs a positive number")),
                );
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let nodes_file = nodes_file.unwrap_or_else(|| usage("--nodes FILE is required"));
    let text = std::fs::read_to_string(&nodes_file)
        .unwrap_or_else(|e| usage(&format!("{nodes_file}: {e}")));
    let ports = parse_nodes(&text).unwrap_or_else(|e| usage(&format!("{nodes_file}: {e}")));
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    runtime.block_on(serve(ports));
}

async fn serve(ports: Vec<Arc<Port>>) {
    let mut servers = Vec::new();
    for port in &ports {
        let listener = tokio::net::TcpListener::bind(port.addr)
            .await
            .unwrap_or_else(|e| usage(&format!("bind {}: {e}", port.addr)));
        let app = Router::new()
            .route(routes::worker::JOBS_RUN, post(run_job))
            .with_state(port.clone());
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    eprintln!("cynode-worker-double: serving {} node(s)", ports.len());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Callers keep their connections open: do not wait for them to go.
    for server in servers {
        server.abort();
    }
    for port in &ports {
        eprintln!(
            "cynode-worker-double: {} answered {} refused {}",
            port.addr,
            port.answered.load(Ordering::Relaxed),
            port.refused.load(Ordering::Relaxed)
        );
    }
}
