//! Reading a forwarded request's body whole, with the node's 10 MiB cap: what the inference
//! routes and the job sockets (inference, MCP) send on is never bigger.

use axum::body::{Body, Bytes};
use futures::StreamExt;

/// Largest body forwarded anywhere (the same 10 MiB as everywhere on the node).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// A refused body is still read up to this much, so that the client gets the 413 instead of a
/// connection reset while it is still writing.
const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body could not be read")]
    Unreadable,
    #[error("the request body exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// The whole body, at most [`MAX_BODY_BYTES`]. A bigger one is read to its end (bounded) and
/// refused, so the client sees the refusal rather than a reset connection.
pub async fn read_capped(body: Body) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        seen = seen.saturating_add(chunk.len());
        if seen > MAX_DRAIN_BYTES {
            break;
        }
        if seen <= MAX_BODY_BYTES {
            collected.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(collected))
}
