//! Request body limits whose refusals reach the client.
//!
//! A server that answers `413` (or `401`, or any early error) while the client is still sending
//! the body, and then closes the connection, makes the kernel reset it: the client, still
//! writing, sees a broken pipe or a reset instead of the answer, and a dispatcher that retries
//! transport errors would retry a job that can never fit. So every request body is read before
//! the handler runs:
//!
//! - up to the limit, it is buffered and handed to the handler as usual;
//! - past the limit (declared by `Content-Length` or crossed while streaming), the rest is read
//!   and discarded, bounded by [`BodyLimit::drain_cap`] bytes and [`BodyLimit::drain_time`], and
//!   then the client gets `413` problem+json and the connection closes. A client that sends more
//!   than that, or too slowly, only gets the `413` if it reads before it finishes writing.
//!
//! Handlers keep axum's `DefaultBodyLimit` at the same limit, so extractors agree with it.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use cynode_contracts::problem::Problem;
use http_body_util::BodyExt;

use crate::http::{ApiError, payload_too_large};

/// How much a server accepts, and how much of an oversized body it reads to answer it cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    /// The largest body handlers get (bytes).
    pub limit: usize,
    /// The most bytes of an oversized body read before answering `413` anyway.
    pub drain_cap: u64,
    /// The longest an oversized body is read before answering `413` anyway.
    pub drain_time: Duration,
}

/// Default [`BodyLimit::drain_cap`]: 64 MiB.
pub const DEFAULT_DRAIN_CAP: u64 = 64 * 1024 * 1024;
/// Default [`BodyLimit::drain_time`].
pub const DEFAULT_DRAIN_TIME: Duration = Duration::from_secs(30);

impl BodyLimit {
    /// `limit` bytes, with the default drain bounds.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            drain_cap: DEFAULT_DRAIN_CAP,
            drain_time: DEFAULT_DRAIN_TIME,
        }
    }

    /// Wraps every route of `router` (and its fallback): the middleware and the matching
    /// `DefaultBodyLimit`. Call it after the routes are added.
    pub fn apply_to<S>(self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router
            .layer(DefaultBodyLimit::max(self.limit))
            .layer(middleware::from_fn_with_state(self, read_whole_body))
    }
}

async fn read_whole_body(State(limit): State<BodyLimit>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let max = u64::try_from(limit.limit).unwrap_or(u64::MAX);
    let (parts, body) = req.into_parts();
    if let Some(declared) = declared.filter(|n| *n > max) {
        if declared <= limit.drain_cap {
            drain(body, 0, limit).await;
        }
        return refuse();
    }
    let mut body = body;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "the request body could not be read");
                return ApiError::from(Problem::validation("the request body could not be read"))
                    .into_response();
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                if buffer.len() + data.len() > limit.limit {
                    let seen = (buffer.len() + data.len()) as u64;
                    drop(buffer);
                    drain(body, seen, limit).await;
                    return refuse();
                }
                buffer.extend_from_slice(&data);
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(buffer))))
        .await
}

/// Reads and discards the rest of `body` within the drain bounds; whether it reached the end.
async fn drain(mut body: Body, mut seen: u64, limit: BodyLimit) -> bool {
    let read_all = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > limit.drain_cap {
                    return false;
                }
            }
        }
        true
    };
    let finished = tokio::time::timeout(limit.drain_time, read_all)
        .await
        .unwrap_or(false);
    if !finished {
        tracing::debug!(
            seen,
            "oversized request body not read to its end; the client may miss the 413"
        );
    }
    finished
}

fn refuse() -> Response {
    let mut response = ApiError::from(payload_too_large()).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use axum::routing::post;

    use super::*;
    use crate::http::ApiJson;

    const LIMIT: usize = 1024 * 1024;

    /// A real server on loopback: the behaviour under test is the TCP connection's.
    async fn server(limit: BodyLimit) -> std::net::SocketAddr {
        let app = limit.apply_to(Router::new().route(
            "/",
            post(|ApiJson(v): ApiJson<serde_json::Value>| async move {
                format!("{}", v.as_str().map_or(0, str::len))
            }),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// Sends the whole request as a blocking client that writes everything before reading,
    /// the way a client that ignores early answers does; returns the answer.
    fn exchange(addr: std::net::SocketAddr, head: String, body: Vec<u8>, chunked: bool) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        if chunked {
            for chunk in body.chunks(64 * 1024) {
                write!(stream, "{:x}\r\n", chunk.len()).unwrap();
                stream.write_all(chunk).unwrap();
                stream.write_all(b"\r\n").unwrap();
            }
            stream.write_all(b"0\r\n\r\n").unwrap();
        } else {
            stream
                .write_all(&body)
                .expect("the server reads the whole body: no broken pipe");
        }
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    fn json_string(len: usize) -> Vec<u8> {
        format!("\"{}\"", "x".repeat(len)).into_bytes()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_oversized_body_gets_its_413_every_time() {
        let addr = server(BodyLimit::new(LIMIT)).await;
        let answers = tokio::task::spawn_blocking(move || {
            (0..10)
                .map(|i| {
                    let body = json_string(20 * LIMIT);
                    let head = if i % 2 == 0 {
                        format!(
                            "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        )
                    } else {
                        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                    };
                    exchange(addr, head, body, i % 2 == 1)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for answer in answers {
            assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
            assert!(answer.contains("application/problem+json"), "{answer}");
            assert!(answer.contains("size limit"), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{answer}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bodies_within_the_limit_reach_the_handler() {
        let addr = server(BodyLimit::new(LIMIT)).await;
        let answers = tokio::task::spawn_blocking(move || {
            [false, true].map(|chunked| {
                let body = json_string(LIMIT - 2);
                let head = if chunked {
                    "POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!(
                        "POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                };
                exchange(addr, head, body, chunked)
            })
        })
        .await
        .unwrap();
        for answer in answers {
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with(&(LIMIT - 2).to_string()), "{answer}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn draining_is_bounded_in_bytes_and_time() {
        let limit = BodyLimit {
            drain_cap: 2 * LIMIT as u64,
            drain_time: Duration::from_millis(300),
            ..BodyLimit::new(LIMIT)
        };
        let addr = server(limit).await;
        let answer = tokio::task::spawn_blocking(move || {
            // A declared length past the cap is answered without reading anything.
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(
                stream,
                "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                100 * LIMIT
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

        // A client that stops sending mid-body is answered once the drain time is over.
        let started = std::time::Instant::now();
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(
                stream,
                "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                LIMIT + 10
            )
            .unwrap();
            stream.write_all(&vec![b'x'; 1000]).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
