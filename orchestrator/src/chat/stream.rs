//! Server-sent events of `stream: true`: a node's events passed through as they arrive, or the
//! Project Manager's answer written as OpenAI `chat.completion.chunk` events.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Call, ChatError, Outcome, text_of, usage_of};

const DONE: &[u8] = b"data: [DONE]\n\n";

fn body_of(rx: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }))
}

/// What the relay does with one event of the node's stream.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// Pass the bytes on.
    Forward(Bytes),
    /// The usage-only chunk the client did not ask for: drop it.
    Drop,
    /// `data: [DONE]`: held back until the answer is stored.
    Done,
}

/// Reads one complete event (`data: ...` lines): notes its text and usage in `seen`, decides
/// what the client gets.
pub fn inspect(
    event: &[u8],
    include_usage: bool,
    content: &mut String,
    usage: &mut Option<(u64, u64)>,
) -> Event {
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    if data.trim() == "[DONE]" {
        return Event::Done;
    }
    let Ok(mut chunk) = serde_json::from_str::<Value>(&data) else {
        return Event::Forward(Bytes::copy_from_slice(event));
    };
    if let Some(choices) = chunk["choices"].as_array() {
        for choice in choices {
            content.push_str(&text_of(&choice["delta"]["content"]));
        }
    }
    let Some(counts) = usage_of(&chunk["usage"]) else {
        return Event::Forward(Bytes::copy_from_slice(event));
    };
    *usage = Some(counts);
    if include_usage {
        return Event::Forward(Bytes::copy_from_slice(event));
    }
    if chunk["choices"].as_array().is_none_or(Vec::is_empty) {
        return Event::Drop;
    }
    if let Some(object) = chunk.as_object_mut() {
        object.remove("usage");
    }
    Event::Forward(Bytes::from(format!("data: {chunk}\n\n")))
}

/// The end of the first complete event in `buf` (after its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Passes the node's events on as they arrive. When the node's stream ends, the answer is
/// stored and usage recorded before the final `data: [DONE]`, so that a client that reads the
/// thread after `[DONE]` finds the answer in it.
pub fn relay(call: Call, mut answer: reqwest::Response, include_usage: bool) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        let mut content = String::new();
        let mut usage = None;
        let mut outcome: (&str, u16, Option<&str>) = ("success", 200, None);
        'read: loop {
            match answer.chunk().await {
                Ok(Some(bytes)) => {
                    buf.extend_from_slice(&bytes);
                    while let Some(end) = event_end(&buf) {
                        let event: Vec<u8> = buf.drain(..end).collect();
                        match inspect(&event, include_usage, &mut content, &mut usage) {
                            Event::Forward(out) => {
                                if tx.send(out).await.is_err() {
                                    outcome = ("canceled", 499, Some("client_closed"));
                                    break 'read;
                                }
                            }
                            Event::Drop | Event::Done => {}
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "chat stream from the node broke off");
                    outcome = if e.is_timeout() {
                        ("timeout", 504, Some("cynodeai_completion_timeout"))
                    } else {
                        ("error", 502, Some("orchestrator_inference_failed"))
                    };
                    break;
                }
            }
        }
        let model = call.model.clone();
        let how = Outcome {
            outcome: outcome.0,
            status: outcome.1,
            error_code: outcome.2,
            usage,
        };
        call.close(Some((&content, &model)), usage, how).await;
        if outcome.0 == "success" {
            let _ = tx.send(Bytes::from_static(DONE)).await;
        } else if outcome.0 != "canceled" {
            let error = json!({"error": {"message": "the model's answer broke off",
                "type": "cynodeai_error", "param": null, "code": outcome.2}});
            let _ = tx.send(Bytes::from(format!("data: {error}\n\n"))).await;
        }
    });
    sse_response(body_of(rx))
}

/// A whole answer as OpenAI chunk events: the role, the content, the finish reason, the usage
/// chunk when asked for, `[DONE]`.
pub fn synthesized(
    id: &str,
    created: i64,
    model: &str,
    content: &str,
    usage: Option<(u64, u64)>,
) -> Response {
    let chunk = |choices: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": choices})
    };
    let mut events = vec![
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ),
        chunk(json!([{"index": 0, "delta": {"content": content}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
    ];
    if let Some((p, c)) = usage {
        let mut last = chunk(json!([]));
        last["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
        events.push(last);
    }
    let mut text = String::new();
    for event in events {
        text.push_str(&format!("data: {event}\n\n"));
    }
    text.push_str("data: [DONE]\n\n");
    sse_response(Body::from(text))
}

/// Body of an SSE response.
pub fn sse_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|e| ChatError::internal(e).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines() {
        assert_eq!(event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: a\n"), None);
    }

    #[test]
    fn text_and_usage_are_noted_and_usage_dropped_unless_asked() {
        let (mut content, mut usage) = (String::new(), None);
        let delta = br#"data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}

"#;
        assert_eq!(
            inspect(delta, false, &mut content, &mut usage),
            Event::Forward(Bytes::copy_from_slice(delta))
        );
        let only_usage = br#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}

"#;
        assert_eq!(
            inspect(only_usage, false, &mut content, &mut usage),
            Event::Drop
        );
        assert_eq!(usage, Some((3, 2)));
        assert!(matches!(
            inspect(only_usage, true, &mut content, &mut usage),
            Event::Forward(_)
        ));
        let with_usage = br#"data: {"choices":[{"index":0,"delta":{"content":"!"}}],"usage":{"prompt_tokens":4,"completion_tokens":5}}

"#;
        let Event::Forward(out) = inspect(with_usage, false, &mut content, &mut usage) else {
            panic!("forwarded");
        };
        assert!(!String::from_utf8_lossy(&out).contains("usage"));
        assert_eq!(usage, Some((4, 5)));
        assert_eq!(content, "Hi!");
        assert_eq!(
            inspect(b"data: [DONE]\n\n", false, &mut content, &mut usage),
            Event::Done
        );
    }
}
