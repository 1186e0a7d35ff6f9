//! CyNodeAI's inference sidecar (`node.md` §4 "Inference from the sandbox").
//!
//! A job that may use inference runs in its own Podman pod whose network namespace has nothing
//! but loopback. This proxy runs in a second container of that pod, listens on
//! `127.0.0.1:11434` (where Ollama and OpenAI clients look by default) and forwards each request
//! to a Unix socket that the worker API opened for that one job and mounted into this container
//! only. The worker API's end of the socket knows which job it serves, forwards to the node's
//! model server, and counts requests and tokens for the job's result.
//!
//! A job with MCP gets a second listener (`127.0.0.1:12083`) forwarding to its MCP socket in the
//! same way: one sidecar, one `--forward` per listener and socket ([`args::Forward`]).
//!
//! The sandbox container sees a `localhost` URL and nothing else: no socket, no token, no other
//! address. The proxy holds no credentials; it enforces the body limit (10 MiB, 413), a
//! per-request deadline (120 s) and answers `GET /healthz` itself.
//!
//! std only, on purpose: the binary is linked statically and mounted read-only into a container
//! of any sandbox image, so it needs nothing from the image.

pub mod args;
mod proxy;

pub use args::SidecarArgs;
pub use proxy::serve;
