//! Live logs: the server-sent events (`text/event-stream`) of a running job's output.
//!
//! Two streams carry them. The worker API's `GET /v1/worker/jobs/{job_id}/logs` (bearer token)
//! sends a job's output lines from the start of its run as they are produced, then
//! `end` ([`JobLogEnd`]) when the run has ended; the user gateway's
//! `GET /v1/tasks/{id}/logs?follow=true` relays them for every job of a task ([`TaskLogLine`]),
//! and sends `end` ([`TaskLogEnd`]) once the task is terminal. Every event is one `event:` line
//! naming it and one `data:` line of JSON; lines starting with `:` are keep-alive comments.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::user::TaskStatus;
// Which stream a line came from is the run's, with its other output types; the lines here
// carry it, so it is named here too.
pub use crate::worker::OutputStream;
use crate::worker::{RunStatus, Truncated};

/// The `event:` name of an output line.
pub const EVENT_LINE: &str = "line";
/// The `event:` name of the last event of a stream.
pub const EVENT_END: &str = "end";
/// The content type of both streams.
pub const CONTENT_TYPE: &str = "text/event-stream";
/// A keep-alive comment, sent while nothing else is.
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";
/// Both servers send something at least this often (seconds), so that a reader that hears
/// nothing for several times as long may take the peer for gone.
pub const KEEP_ALIVE_SECS: u64 = 10;

/// `line` of the worker API's job log stream: one line of output, without its newline. The
/// last line of a stream that does not end with a newline comes when the run ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobLogLine {
    pub stream: OutputStream,
    pub line: String,
}

/// `end` of the worker API's job log stream: the run has ended. `status` is the stored
/// result's, absent when the run ended without a result (interrupted: it may run again).
/// `truncated`: a stream reached the output cap, and later output was not sent (the stored
/// result is cut at the same cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobLogEnd {
    pub job_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(default)]
    pub truncated: Truncated,
}

/// `line` of `GET /v1/tasks/{id}/logs?follow=true`: a line of one of the task's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskLogLine {
    pub job_id: Uuid,
    pub stream: OutputStream,
    pub line: String,
}

/// `end` of `GET /v1/tasks/{id}/logs?follow=true`: the task is terminal and every line of its
/// jobs has been sent; the stream closes after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskLogEnd {
    pub task_id: Uuid,
    pub status: TaskStatus,
}

/// One event, framed: `event: <name>\ndata: <json>\n\n`. JSON has no raw newline, so one
/// `data:` line always holds it.
pub fn event<T: Serialize>(name: &str, data: &T) -> String {
    let json = serde_json::to_string(data).expect("log events serialise");
    format!("event: {name}\ndata: {json}\n\n")
}

/// One received event: its name (`message` when it has none) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

impl Event {
    /// The data as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

/// Splits a stream of bytes into events, whatever the chunk boundaries; comments are skipped.
/// Holds at most one incomplete event, which is bounded by `max_event_bytes`: a longer one is
/// an error (the peer is not speaking this protocol).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max_event_bytes: usize,
}

/// An event longer than the decoder's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTooLong(pub usize);

impl std::fmt::Display for EventTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an event is longer than {} bytes", self.0)
    }
}

impl std::error::Error for EventTooLong {}

impl Decoder {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_event_bytes,
        }
    }

    /// Adds `chunk` and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, EventTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, next)) = event_end(&self.buf) {
            let raw: Vec<u8> = self.buf.drain(..next).collect();
            if let Some(event) = parse_event(&raw[..end]) {
                events.push(event);
            }
        }
        if self.buf.len() > self.max_event_bytes {
            return Err(EventTooLong(self.max_event_bytes));
        }
        Ok(events)
    }
}

/// Where the first event in `buf` ends (before its blank line) and the next starts.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let (mut name, mut data) = (None, Vec::new());
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if name.is_none() && data.is_empty() {
        return None;
    }
    Some(Event {
        name: name.unwrap_or_else(|| "message".into()),
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking_and_comments_are_skipped() {
        let line = JobLogLine {
            stream: OutputStream::Stderr,
            line: "a \"quoted\"\tline".into(),
        };
        let wire = format!("{KEEP_ALIVE}{}{KEEP_ALIVE}", event(EVENT_LINE, &line));
        for split in 0..wire.len() {
            let mut decoder = Decoder::new(1024);
            let mut events = decoder.push(&wire.as_bytes()[..split]).unwrap();
            events.extend(decoder.push(&wire.as_bytes()[split..]).unwrap());
            assert_eq!(events.len(), 1, "split at {split}");
            assert_eq!(events[0].name, EVENT_LINE);
            assert_eq!(events[0].parse::<JobLogLine>().unwrap(), line);
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut decoder = Decoder::new(8);
        assert_eq!(decoder.push(b"data: 0123456789"), Err(EventTooLong(8)));
    }

    #[test]
    fn crlf_framing_is_understood() {
        let mut decoder = Decoder::new(64);
        let events = decoder.push(b"event: end\r\ndata: {}\r\n\r\n").unwrap();
        assert_eq!(
            events,
            [Event {
                name: "end".into(),
                data: "{}".into()
            }]
        );
    }
}
