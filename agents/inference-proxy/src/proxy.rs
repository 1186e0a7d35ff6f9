//! One HTTP/1.1 request per connection, forwarded from the pod's loopback to the job's Unix
//! socket with `Connection: close`, the answer streamed back as it arrives (server-sent events
//! pass through unbuffered).
//!
//! What the sidecar enforces itself, before anything reaches the node: the body limit (413, also
//! for chunked bodies, which are decoded and sent on with a `Content-Length`), a deadline per
//! request (504 if the answer has not started by then; the connection is cut if it has), a bound
//! on concurrent connections, and a request head of at most 64 KiB.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::args::SidecarArgs;

const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A body over the limit is still read (and thrown away) up to this much, so that the client
/// finishes writing and then reads our 413 instead of a connection reset.
const MAX_DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const COPY_BUFFER: usize = 16 * 1024;

/// Headers that describe one hop, not the request; the sidecar sets its own framing.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

/// Binds every listener, announces readiness, and serves until the process is killed: one
/// accepting thread per listener, one thread per connection, at most `max_connections` of
/// them over all listeners.
pub fn serve(args: &SidecarArgs) -> io::Result<()> {
    let listeners = args
        .forwards
        .iter()
        .map(|forward| TcpListener::bind(forward.listen))
        .collect::<io::Result<Vec<_>>>()?;
    if let Some(ready) = &args.ready_file {
        std::fs::write(ready, b"ready\n")?;
    }
    let args = Arc::new(args.clone());
    let active = Arc::new(AtomicUsize::new(0));
    let accepting: Vec<_> = listeners
        .into_iter()
        .zip(
            args.forwards
                .iter()
                .map(|f| Arc::new(f.upstream_socket.clone())),
        )
        .map(|(listener, upstream)| {
            eprintln!(
                "cynode-inference-proxy: listening on {} for {}",
                listener
                    .local_addr()
                    .map_or_else(|e| e.to_string(), |a| a.to_string()),
                upstream.display()
            );
            let (args, active) = (Arc::clone(&args), Arc::clone(&active));
            std::thread::spawn(move || accept(&listener, &upstream, &args, &active))
        })
        .collect();
    for thread in accepting {
        let _ = thread.join();
    }
    Ok(())
}

fn accept(
    listener: &TcpListener,
    upstream: &Arc<PathBuf>,
    args: &Arc<SidecarArgs>,
    active: &Arc<AtomicUsize>,
) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= args.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = reply_error(
                &mut stream,
                503,
                "too many concurrent requests to the sidecar",
            );
            continue;
        }
        let (upstream, args, active) = (Arc::clone(upstream), Arc::clone(args), Arc::clone(active));
        std::thread::spawn(move || {
            if let Err(e) = handle(stream, &upstream, &args) {
                eprintln!("cynode-inference-proxy: request ended early: {e}");
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// A request head, split into what the sidecar needs.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the request body is framed.
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Deadline-aware reads and writes: every socket operation gets the time that is left.
struct Deadline(Instant);

impl Deadline {
    fn left(&self) -> io::Result<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        Ok(left)
    }
}

fn handle(client: TcpStream, upstream_socket: &Path, args: &SidecarArgs) -> io::Result<()> {
    let deadline = Deadline(Instant::now() + args.timeout);
    client.set_read_timeout(Some(deadline.left()?))?;
    client.set_write_timeout(Some(deadline.left()?))?;
    let mut writer = client.try_clone()?;
    let mut reader = BufReader::with_capacity(COPY_BUFFER, client);

    let head = match read_head(&mut reader) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(()),
        Err(HeadError::TooLarge) => {
            return reply_error(&mut writer, 431, "request head over 64 KiB");
        }
        Err(HeadError::Malformed(why)) => return reply_error(&mut writer, 400, &why),
        Err(HeadError::Io(e)) => return Err(e),
    };
    if head.target == "/healthz" && (head.method == "GET" || head.method == "HEAD") {
        return reply(&mut writer, 200, "text/plain; charset=utf-8", b"ok\n");
    }
    let body = match framing(&head) {
        Ok(body) => body,
        Err(why) => return reply_error(&mut writer, 400, &why),
    };
    let expects_continue = head
        .header("expect")
        .any(|v| v.eq_ignore_ascii_case("100-continue"));
    let too_large = format!(
        "request body exceeds the sidecar's limit of {} bytes",
        args.max_body_bytes
    );
    // A declared body over the limit is refused before it is read: a client waiting for
    // `100 Continue` never sends it; any other is drained so that it reads the 413.
    if let Body::Length(n) = body
        && n > args.max_body_bytes
    {
        if !expects_continue {
            drain(&mut reader, n, &deadline)?;
        }
        return reply_error(&mut writer, 413, &too_large);
    }
    if expects_continue {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked_body = match body {
        Body::Chunked => match read_chunked(&mut reader, args.max_body_bytes, &deadline)? {
            Some(bytes) => Some(bytes),
            None => return reply_error(&mut writer, 413, &too_large),
        },
        _ => None,
    };
    let length = match (&body, &chunked_body) {
        (_, Some(bytes)) => bytes.len() as u64,
        (Body::Length(n), None) => *n,
        _ => 0,
    };

    let mut upstream = match UnixStream::connect(upstream_socket) {
        Ok(stream) => stream,
        Err(_) => {
            return reply_error(&mut writer, 502, "the node's endpoint is not reachable");
        }
    };
    upstream.set_read_timeout(Some(deadline.left()?))?;
    upstream.set_write_timeout(Some(deadline.left()?))?;
    upstream.write_all(&forwarded_head(&head, length))?;
    match (&body, chunked_body) {
        (_, Some(bytes)) => upstream.write_all(&bytes)?,
        (Body::Length(n), None) => copy_exact(&mut reader, &mut upstream, *n, &deadline)?,
        _ => {}
    }

    // Stream the answer back as it comes; a deadline before its first byte is a 504.
    let mut sent_any = false;
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        upstream.set_read_timeout(Some(match deadline.left() {
            Ok(left) => left,
            Err(e) if sent_any => return Err(e),
            Err(_) => return reply_error(&mut writer, 504, "no answer in time"),
        }))?;
        let n = match upstream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if is_timeout(&e) && !sent_any => {
                return reply_error(&mut writer, 504, "no answer in time");
            }
            Err(e) => return Err(e),
        };
        writer.set_write_timeout(Some(deadline.left()?))?;
        writer.write_all(&buffer[..n])?;
        sent_any = true;
    }
    if !sent_any {
        return reply_error(
            &mut writer,
            502,
            "the node's endpoint closed without answering",
        );
    }
    let _ = writer.shutdown(Shutdown::Write);
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

enum HeadError {
    TooLarge,
    Malformed(String),
    Io(io::Error),
}

/// Reads up to the blank line. `None`: the client closed before sending anything.
fn read_head(reader: &mut impl BufRead) -> Result<Option<Head>, HeadError> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD_BYTES - total + 1) as u64)
            .read_until(b'\n', &mut line)
            .map_err(HeadError::Io)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(HeadError::Malformed(
                "connection closed inside the request head".into(),
            ));
        }
        total += n;
        if total > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        if line == b"\r\n" || line == b"\n" {
            if lines.is_empty() {
                continue; // tolerated: stray CRLF before a request line
            }
            break;
        }
        let text = String::from_utf8(line)
            .map_err(|_| HeadError::Malformed("request head is not valid UTF-8".into()))?;
        lines.push(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    let mut request_line = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err(HeadError::Malformed(format!(
            "bad request line {:?}",
            lines[0]
        )));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') || method.is_empty() {
        return Err(HeadError::Malformed(format!(
            "bad request line {:?}",
            lines[0]
        )));
    }
    let mut headers = Vec::new();
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Malformed(format!("bad header line {line:?}")));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(HeadError::Malformed(format!("bad header name {name:?}")));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Some(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    }))
}

fn framing(head: &Head) -> Result<Body, String> {
    let encodings: Vec<&str> = head.header("transfer-encoding").collect();
    let lengths: Vec<&str> = head.header("content-length").collect();
    if !encodings.is_empty() {
        if !lengths.is_empty() {
            return Err("both Transfer-Encoding and Content-Length are set".into());
        }
        let last = encodings
            .last()
            .and_then(|v| v.rsplit(',').next())
            .map_or("", str::trim);
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Body::Chunked)
        } else {
            Err(format!("unsupported Transfer-Encoding {last:?}"))
        };
    }
    match lengths.as_slice() {
        [] => Ok(Body::None),
        [one] => one
            .parse::<u64>()
            .map(Body::Length)
            .map_err(|_| format!("bad Content-Length {one:?}")),
        [first, rest @ ..] if rest.iter().all(|v| v == first) => first
            .parse::<u64>()
            .map(Body::Length)
            .map_err(|_| format!("bad Content-Length {first:?}")),
        _ => Err("conflicting Content-Length headers".into()),
    }
}

/// The head sent to the job's socket: the client's request line and end-to-end headers, our
/// own framing, one request per connection.
fn forwarded_head(head: &Head, length: u64) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.target);
    for (name, value) in &head.headers {
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
            || name.eq_ignore_ascii_case("host")
        {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Host: localhost\r\n");
    if length > 0 || !matches!(head.method.as_str(), "GET" | "HEAD") {
        out.push_str(&format!("Content-Length: {length}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn copy_exact(
    reader: &mut BufReader<TcpStream>,
    to: &mut UnixStream,
    mut remaining: u64,
    deadline: &Deadline,
) -> io::Result<()> {
    let mut buffer = vec![0u8; COPY_BUFFER];
    while remaining > 0 {
        reader.get_ref().set_read_timeout(Some(deadline.left()?))?;
        let want = usize::try_from(remaining.min(COPY_BUFFER as u64)).unwrap_or(COPY_BUFFER);
        let n = reader.read(&mut buffer[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed mid-body",
            ));
        }
        to.write_all(&buffer[..n])?;
        remaining -= n as u64;
    }
    Ok(())
}

/// Reads and discards a refused body (bounded), so the client is not reset mid-write.
fn drain(reader: &mut BufReader<TcpStream>, length: u64, deadline: &Deadline) -> io::Result<()> {
    let mut left = length.min(MAX_DRAIN_BYTES);
    let mut buffer = vec![0u8; COPY_BUFFER];
    while left > 0 {
        reader.get_ref().set_read_timeout(Some(deadline.left()?))?;
        let want = usize::try_from(left.min(COPY_BUFFER as u64)).unwrap_or(COPY_BUFFER);
        match reader.read(&mut buffer[..want]) {
            Ok(0) => break,
            Ok(n) => left -= n as u64,
            Err(e) if is_timeout(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Decodes a chunked body. `None` when it grows past `limit` (the rest is drained, bounded).
fn read_chunked(
    reader: &mut BufReader<TcpStream>,
    limit: u64,
    deadline: &Deadline,
) -> io::Result<Option<Vec<u8>>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut body = Vec::new();
    let mut over = false;
    let mut seen = 0u64;
    loop {
        reader.get_ref().set_read_timeout(Some(deadline.left()?))?;
        let mut line = String::new();
        reader.by_ref().take(1024).read_line(&mut line)?;
        let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut trailer = String::new();
                let n = reader.by_ref().take(8 * 1024).read_line(&mut trailer)?;
                if n == 0 || trailer.trim_end().is_empty() {
                    break;
                }
            }
            return Ok(if over { None } else { Some(body) });
        }
        seen = seen.saturating_add(size);
        if seen > MAX_DRAIN_BYTES {
            return Ok(None);
        }
        over |= seen > limit;
        let mut chunk = reader.by_ref().take(size);
        if over {
            io::copy(&mut chunk, &mut io::sink())?;
        } else {
            chunk.read_to_end(&mut body)?;
        }
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

fn reply(writer: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()?;
    let _ = writer.shutdown(Shutdown::Write);
    Ok(())
}

/// An error in the OpenAI shape, which inference clients parse (MCP clients go by the status).
fn reply_error(writer: &mut TcpStream, status: u16, message: &str) -> io::Result<()> {
    let (kind, code) = match status {
        400 | 431 => ("invalid_request_error", "bad_request"),
        413 => ("invalid_request_error", "request_too_large"),
        504 => ("server_error", "timeout"),
        _ => ("server_error", "upstream_unavailable"),
    };
    let body = format!(
        "{{\"error\":{{\"message\":{},\"type\":\"{kind}\",\"param\":null,\"code\":\"{code}\"}}}}",
        json_string(message)
    );
    reply(writer, status, "application/json", body.as_bytes())
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match read_head(&mut text.as_bytes()) {
            Ok(Some(head)) => head,
            _ => panic!("head did not parse: {text:?}"),
        }
    }

    #[test]
    fn heads_parse_and_forward_without_hop_by_hop_headers() {
        let h = head(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:11434\r\nContent-Length: 12\r\n\
             Connection: keep-alive\r\nContent-Type: application/json\r\nAuthorization: Bearer x\r\n\r\n",
        );
        assert_eq!(h.method, "POST");
        assert!(matches!(framing(&h), Ok(Body::Length(12))));
        let out = String::from_utf8(forwarded_head(&h, 12)).unwrap();
        assert!(out.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"));
        assert!(out.contains("Content-Type: application/json\r\n"));
        assert!(out.contains("Content-Length: 12\r\nConnection: close\r\n\r\n"));
        assert!(!out.contains("keep-alive"));
        assert!(!out.contains("localhost:11434"));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(framing(&h).is_err());
        let h = head("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(framing(&h).is_err());
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert!(framing(&h).is_err());
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(framing(&h), Ok(Body::Chunked)));
    }

    #[test]
    fn malformed_and_oversized_heads_are_refused() {
        assert!(matches!(
            read_head(&mut "GARBAGE\r\n\r\n".as_bytes()),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            read_head(&mut "GET http://x/ HTTP/1.1\r\n\r\n".as_bytes()),
            Err(HeadError::Malformed(_))
        ));
        let huge = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert!(matches!(
            read_head(&mut huge.as_bytes()),
            Err(HeadError::TooLarge)
        ));
        assert!(matches!(read_head(&mut "".as_bytes()), Ok(None)));
    }

    #[test]
    fn error_messages_are_valid_json_strings() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
