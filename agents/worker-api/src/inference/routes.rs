//! The HTTP side of inference: the worker API's authenticated routes for the orchestrator, and
//! the routes a job's socket serves to its sidecar. Both only forward through [`Backend`].

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cynode_contracts::routes::inference::{ollama, openai};

use super::{Backend, OpenAiError, Usage};
use crate::body::BodyError;

/// What a job may ask of the model server: inference and model listing, OpenAI and Ollama
/// style. Model management (`/api/pull`, `/api/delete`, `/api/create`, `/api/copy`,
/// `/api/push`) is deliberately absent: a job must not change what the node serves.
const JOB_GET: [&str; 3] = [openai::MODELS, ollama::TAGS, ollama::VERSION];
/// (path, whether the body must name a model this node serves)
const JOB_POST: [(&str, bool); 8] = [
    (openai::CHAT_COMPLETIONS, true),
    (openai::COMPLETIONS, true),
    (openai::EMBEDDINGS, true),
    (ollama::CHAT, true),
    (ollama::GENERATE, true),
    (ollama::EMBED, true),
    (ollama::EMBEDDINGS, true),
    (ollama::SHOW, false),
];

/// `GET /v1/worker/inference/v1/models` and `POST …/v1/chat/completions`, mounted by the worker
/// router behind the bearer check. Without a backend they answer 503 saying inference is off.
pub fn worker_router<S: Clone + Send + Sync + 'static>(backend: Option<Backend>) -> Router<S> {
    Router::new()
        .route(
            cynode_contracts::routes::worker::INFERENCE_MODELS,
            get(|State(backend): State<Option<Backend>>| async move {
                match backend {
                    Some(b) => b.forward(Method::GET, openai::MODELS, None, Bytes::new(), false, None).await,
                    None => disabled(),
                }
            }),
        )
        .route(
            cynode_contracts::routes::worker::INFERENCE_CHAT_COMPLETIONS,
            post(|State(backend): State<Option<Backend>>, headers: HeaderMap, body: Body| async move {
                let Some(backend) = backend else { return disabled() };
                match read_body(body).await {
                    Ok(body) => {
                        backend
                            .forward(Method::POST, openai::CHAT_COMPLETIONS, headers.get(header::CONTENT_TYPE), body, true, None)
                            .await
                    }
                    Err(e) => e.into_response(),
                }
            }),
        )
        .with_state(backend)
}

/// What a job's socket serves: the allowlisted paths, each request counted for the job.
pub fn job_router(backend: Backend, usage: Arc<Usage>) -> Router {
    let mut router = Router::new();
    for path in JOB_GET {
        router = router.route(
            path,
            get(
                move |State((backend, usage)): State<(Backend, Arc<Usage>)>| async move {
                    backend
                        .forward(Method::GET, path, None, Bytes::new(), false, Some(usage))
                        .await
                },
            ),
        );
    }
    for (path, needs_model) in JOB_POST {
        router = router.route(
            path,
            post(
                move |State((backend, usage)): State<(Backend, Arc<Usage>)>,
                      headers: HeaderMap,
                      body: Body| async move {
                    match read_body(body).await {
                        Ok(body) => {
                            backend
                                .forward(
                                    Method::POST,
                                    path,
                                    headers.get(header::CONTENT_TYPE),
                                    body,
                                    needs_model,
                                    Some(usage),
                                )
                                .await
                        }
                        Err(e) => e.into_response(),
                    }
                },
            ),
        );
    }
    router
        .fallback(|uri: axum::http::Uri| async move {
            OpenAiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{} is not available to sandbox jobs", uri.path()),
            )
        })
        .with_state((backend, usage))
}

fn disabled() -> Response {
    OpenAiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "inference_disabled",
        "inference is disabled on this node",
    )
    .into_response()
}

/// The whole body (see [`crate::body`]); a refusal in the OpenAI shape.
async fn read_body(body: Body) -> Result<Bytes, OpenAiError> {
    crate::body::read_capped(body).await.map_err(|e| match e {
        BodyError::Unreadable => {
            OpenAiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
        }
        BodyError::TooLarge => OpenAiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            e.to_string(),
        ),
    })
}
