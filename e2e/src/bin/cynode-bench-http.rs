//! Latency of one HTTP request, measured the same way against several targets in one run, for
//! `just bench-inference-proxy`. Each request opens a fresh connection (the sidecar serves one
//! request per connection, so every target pays the same connect), sends the body and reads to
//! the end. Targets take turns request by request, so drift hits all of them alike. A target may
//! live in another network namespace (a pod's): its requests are made from a thread that joined
//! that namespace, which is how the sandbox reaches its sidecar.
//!
//! Usage: cynode-bench-http --runs N [--warmup N] [--method GET|POST] [--body FILE]
//!        --target NAME=URL[,auth=HEADER_FILE][,netns=PID] ...
//! Prints one line per target: median and p95 in ms, and the median difference to the first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Target {
    name: String,
    host_port: String,
    path: String,
    auth: Option<String>,
    netns: Option<u32>,
}

fn parse_target(spec: &str) -> Result<Target, String> {
    let (name, rest) = spec.split_once('=').ok_or("target needs NAME=URL")?;
    let mut parts = rest.split(',');
    let url = parts.next().ok_or("target needs a URL")?;
    let without_scheme = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host_port, path) = match without_scheme.find('/') {
        Some(i) => (&without_scheme[..i], &without_scheme[i..]),
        None => (without_scheme, "/"),
    };
    let mut target = Target {
        name: name.to_owned(),
        host_port: host_port.to_owned(),
        path: path.to_owned(),
        auth: None,
        netns: None,
    };
    for option in parts {
        match option.split_once('=') {
            Some(("auth", file)) => {
                let header = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
                target.auth = Some(header.trim().to_owned());
            }
            Some(("netns", pid)) => target.netns = Some(pid.parse().map_err(|_| "netns=PID")?),
            _ => return Err(format!("unknown target option {option}")),
        }
    }
    Ok(target)
}

/// One request on a fresh connection; the time to the last byte of the answer.
fn request(target: &Target, method: &str, body: &[u8]) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&target.host_port).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        target.path, target.host_port
    );
    if let Some(auth) = &target.auth {
        head.push_str(auth);
        head.push_str("\r\n");
    }
    if method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    stream.write_all(body).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let status_line = answer.split(|b| *b == b'\r').next().unwrap_or_default();
    if !status_line.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "{}: {}",
            target.name,
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        ));
    }
    Ok(elapsed)
}

/// A thread per target, so that a target in another network namespace is served by a thread
/// that joined it; the main thread hands out one request at a time.
fn spawn_worker(
    target: Target,
    method: String,
    body: Vec<u8>,
) -> (mpsc::Sender<()>, mpsc::Receiver<Result<Duration, String>>) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(pid) = target.netns {
            let joined = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| e.to_string())
                .and_then(|ns| {
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = joined {
                let _ = done_tx.send(Err(format!(
                    "cannot join the network namespace of {pid}: {e}"
                )));
                return;
            }
        }
        while go_rx.recv().is_ok() {
            if done_tx.send(request(&target, &method, &body)).is_err() {
                break;
            }
        }
    });
    (go_tx, done_rx)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> Result<(), String> {
    let mut runs = 50usize;
    let mut warmup = 3usize;
    let mut method = "POST".to_owned();
    let mut body = Vec::new();
    let mut targets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => runs = value.parse().map_err(|_| "--runs N")?,
            "--warmup" => warmup = value.parse().map_err(|_| "--warmup N")?,
            "--method" => method = value,
            "--body" => body = std::fs::read(&value).map_err(|e| format!("{value}: {e}"))?,
            "--target" => targets.push(parse_target(&value)?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if targets.is_empty() || runs == 0 {
        return Err("give --runs N and at least one --target".into());
    }
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let workers: Vec<_> = targets
        .into_iter()
        .map(|t| spawn_worker(t, method.clone(), body.clone()))
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); workers.len()];
    for round in 0..warmup + runs {
        for (i, (go, done)) in workers.iter().enumerate() {
            go.send(())
                .map_err(|_| format!("{}: worker gone", names[i]))?;
            let elapsed = done
                .recv()
                .map_err(|_| format!("{}: worker gone", names[i]))??;
            if round >= warmup {
                times[i].push(elapsed.as_secs_f64() * 1000.0);
            }
        }
    }
    let mut first_median = None;
    println!(
        "{:<10} {:>10} {:>10} {:>14}",
        "target", "median ms", "p95 ms", "median added"
    );
    for (name, mut t) in names.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        let (median, p95) = (percentile(&t, 0.5), percentile(&t, 0.95));
        let added = first_median.map_or(String::from("baseline"), |base: f64| {
            format!("{:+.3} ms", median - base)
        });
        first_median.get_or_insert(median);
        println!("{name:<10} {median:>10.3} {p95:>10.3} {added:>14}");
    }
    Ok(())
}
