//! Container creation: the one Podman call not made through `podman-api`.
//!
//! podman-api 0.10 sends the no-new-privileges flag under the misspelt key
//! `no_new_privilages`, which Podman ignores: a container created that way shows `NoNewPrivs: 0`.
//! So the spec is built with the crate's builder as usual, the key is corrected, and the body is
//! posted to the same libpod endpoint over the same socket.

use std::path::Path;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use podman_api::opts::ContainerCreateOpts;
use serde::Deserialize;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot reach the Podman socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("Podman create request failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the create request: {0}")]
    Request(String),
    /// Podman answered with an error status.
    #[error("Podman refused to create the container ({status}): {message}")]
    Refused { status: u16, message: String },
}

#[derive(Debug, Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct PodmanError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    cause: String,
}

/// The JSON body for `POST /libpod/containers/create`, with no-new-privileges really set.
pub fn create_body(opts: &ContainerCreateOpts) -> Result<Vec<u8>, CreateError> {
    create_body_with(opts, serde_json::Map::new())
}

/// [`create_body`] plus spec fields the crate's builder cannot express for libpod (its
/// `LogConfig`, for one, is Docker's), given as raw JSON: they replace the builder's.
pub fn create_body_with(
    opts: &ContainerCreateOpts,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, CreateError> {
    let raw = opts
        .serialize_vec()
        .map_err(|e| CreateError::Request(e.to_string()))?;
    let mut spec: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).map_err(|e| CreateError::Request(e.to_string()))?;
    spec.remove("no_new_privilages");
    spec.insert("no_new_privileges".into(), serde_json::Value::Bool(true));
    spec.extend(extra);
    serde_json::to_vec(&spec).map_err(|e| CreateError::Request(e.to_string()))
}

/// Creates the container and returns its id.
pub async fn create_container(socket: &Path, body: Vec<u8>) -> Result<String, CreateError> {
    post_create(socket, "containers", body).await
}

/// Creates a pod from a raw libpod pod spec and returns its id. podman-api 0.10's pod options
/// cannot express the user namespace (`idmappings`), so the body is built by the caller.
pub async fn create_pod(socket: &Path, body: Vec<u8>) -> Result<String, CreateError> {
    post_create(socket, "pods", body).await
}

async fn post_create(socket: &Path, kind: &str, body: Vec<u8>) -> Result<String, CreateError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| CreateError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::post(format!(
        "/v{}/libpod/{kind}/create",
        podman_api::LATEST_API_VERSION
    ))
    .header(hyper::header::HOST, "d")
    .header(hyper::header::CONTENT_TYPE, "application/json")
    .body(Full::new(Bytes::from(body)))
    .map_err(|e| CreateError::Request(e.to_string()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    driver.abort();
    if status.is_success() {
        let created: Created =
            serde_json::from_slice(&bytes).map_err(|e| CreateError::Refused {
                status: status.as_u16(),
                message: format!("unreadable answer: {e}"),
            })?;
        return Ok(created.id);
    }
    let error: PodmanError = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = match (error.message.is_empty(), error.cause.is_empty()) {
        (false, _) => error.message,
        (true, false) => error.cause,
        (true, true) => String::from_utf8_lossy(&bytes).into_owned(),
    };
    Err(CreateError::Refused {
        status: status.as_u16(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_misspelt_key_is_replaced() {
        let opts = ContainerCreateOpts::builder()
            .image("x")
            .no_new_privilages(true)
            .build();
        let body: serde_json::Value = serde_json::from_slice(&create_body(&opts).unwrap()).unwrap();
        assert_eq!(body["no_new_privileges"], true);
        assert!(body.get("no_new_privilages").is_none());
        assert_eq!(body["image"], "x");
    }
}
