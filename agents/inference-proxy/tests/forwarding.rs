//! The sidecar between a real TCP client and a Unix-socket upstream. The upstream here is a few
//! lines of test code that records what arrives; the end-to-end tests run the real worker API
//! behind it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cynode_inference_proxy::SidecarArgs;
use cynode_inference_proxy::args::Forward;

struct Upstream {
    /// Each request's raw head and body as the upstream saw it.
    received: mpsc::Receiver<(String, Vec<u8>)>,
}

/// Serves `answer(connection)` for every connection on a fresh socket.
fn upstream(
    dir: &tempfile::TempDir,
    answer: impl Fn(&mut std::os::unix::net::UnixStream) + Send + 'static,
) -> (PathBuf, Upstream) {
    upstream_named(dir, "inference.sock", answer)
}

fn upstream_named(
    dir: &tempfile::TempDir,
    name: &str,
    answer: impl Fn(&mut std::os::unix::net::UnixStream) + Send + 'static,
) -> (PathBuf, Upstream) {
    let path = dir.path().join(name);
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            tx.send((head, body)).unwrap();
            answer(&mut stream);
        }
    });
    (path, Upstream { received })
}

fn start_proxy(upstream_socket: PathBuf, timeout: Duration) -> String {
    start_proxy_for(vec![upstream_socket], timeout).remove(0)
}

/// One listener per socket, in one sidecar; their addresses in the same order.
fn start_proxy_for(upstream_sockets: Vec<PathBuf>, timeout: Duration) -> Vec<String> {
    let forwards: Vec<Forward> = upstream_sockets
        .into_iter()
        .map(|upstream_socket| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            Forward {
                listen: format!("127.0.0.1:{port}").parse().unwrap(),
                upstream_socket,
            }
        })
        .collect();
    let addrs: Vec<String> = forwards.iter().map(|f| f.listen.to_string()).collect();
    let args = SidecarArgs {
        forwards,
        ready_file: None,
        max_body_bytes: 10 * 1024 * 1024,
        timeout,
        max_connections: 4,
    };
    std::thread::spawn(move || cynode_inference_proxy::serve(&args).unwrap());
    let until = Instant::now() + Duration::from_secs(5);
    for addr in &addrs {
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < until, "proxy did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    addrs
}

/// Sends raw bytes and reads until the proxy closes.
fn exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

const OK_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

#[test]
fn healthz_is_answered_by_the_sidecar_itself() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_proxy(dir.path().join("absent.sock"), Duration::from_secs(5));
    let answer = exchange(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
}

#[test]
fn a_request_reaches_the_socket_with_its_body_and_without_hop_by_hop_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, upstream) = upstream(&dir, |s| s.write_all(OK_ANSWER).unwrap());
    let addr = start_proxy(socket, Duration::from_secs(5));
    let body = br#"{"model":"m","messages":[]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:11434\r\nConnection: keep-alive\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = exchange(&addr, &[request.as_bytes(), body].concat());
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("{}"), "{answer}");
    let (head, got) = upstream
        .received
        .recv_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(
        head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
    assert_eq!(got, body);
}

#[test]
fn each_listener_forwards_to_its_own_socket_with_the_client_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (inference, to_inference) =
        upstream_named(&dir, "inference.sock", |s| s.write_all(OK_ANSWER).unwrap());
    let (mcp, to_mcp) = upstream_named(&dir, "mcp.sock", |s| s.write_all(OK_ANSWER).unwrap());
    let addrs = start_proxy_for(vec![inference, mcp], Duration::from_secs(5));
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:12083\r\nAccept: application/json, text/event-stream\r\n\
         Mcp-Session-Id: s-1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = exchange(&addrs[1], &[request.as_bytes(), body].concat());
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let (head, got) = to_mcp
        .received
        .recv_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(head.starts_with("POST /mcp HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Mcp-Session-Id: s-1\r\n"), "{head}");
    assert!(
        head.contains("Accept: application/json, text/event-stream\r\n"),
        "{head}"
    );
    assert_eq!(got, body);
    assert!(
        to_inference.received.try_recv().is_err(),
        "the other socket got nothing"
    );
    let answer = exchange(&addrs[0], b"GET /v1/models HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let (head, _) = to_inference
        .received
        .recv_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(head.starts_with("GET /v1/models HTTP/1.1\r\n"), "{head}");
    assert!(to_mcp.received.try_recv().is_err());
}

#[test]
fn a_chunked_body_is_decoded_and_sent_with_a_length() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, upstream) = upstream(&dir, |s| s.write_all(OK_ANSWER).unwrap());
    let addr = start_proxy(socket, Duration::from_secs(5));
    let answer = exchange(
        &addr,
        b"POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let (head, got) = upstream
        .received
        .recv_timeout(Duration::from_secs(5))
        .unwrap();
    assert!(head.contains("Content-Length: 11\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(got, b"hello world");
}

#[test]
fn the_answer_streams_through_before_the_upstream_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let (socket, _upstream) = upstream(&dir, move |s| {
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: one\n\n")
            .unwrap();
        // The second event only after the client has seen the first.
        release_rx.lock().unwrap().recv().unwrap();
        s.write_all(b"data: two\n\n").unwrap();
    });
    let addr = start_proxy(socket, Duration::from_secs(5));
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    while !seen.contains("data: one") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "closed early: {seen}"
        );
        seen.push_str(&line);
    }
    release_tx.send(()).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("data: two"), "{rest}");
}

#[test]
fn an_11_mib_body_gets_413_and_never_reaches_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, upstream) = upstream(&dir, |s| s.write_all(OK_ANSWER).unwrap());
    let addr = start_proxy(socket, Duration::from_secs(30));
    let body = vec![b'x'; 11 * 1024 * 1024];
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for _ in 0..5 {
        let answer = exchange(&addr, &[head.as_bytes(), &body].concat());
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.contains("\"code\":\"request_too_large\""),
            "{answer}"
        );
    }
    // A chunked body over the limit too.
    let chunk = vec![b'y'; 1024 * 1024];
    let mut chunked = b"POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..11 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(&addr, &chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        upstream.received.try_recv().is_err(),
        "nothing may reach the node"
    );
}

#[test]
fn a_missing_socket_is_502_and_a_silent_upstream_is_504() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_proxy(dir.path().join("absent.sock"), Duration::from_secs(5));
    let answer = exchange(&addr, b"GET /v1/models HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");

    let dir = tempfile::tempdir().unwrap();
    let (socket, _upstream) = upstream(&dir, |_| std::thread::sleep(Duration::from_secs(3)));
    let addr = start_proxy(socket, Duration::from_secs(1));
    // The upstream closes after 3 s without a word (502); the 1 s deadline answers first.
    let answer = exchange(&addr, b"GET /v1/models HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("\"type\":\"server_error\""), "{answer}");
}

#[test]
fn malformed_requests_get_400() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_proxy(dir.path().join("absent.sock"), Duration::from_secs(5));
    let answer = exchange(&addr, b"NONSENSE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = exchange(&addr, b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}
