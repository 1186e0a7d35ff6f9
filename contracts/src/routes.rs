//! Every HTTP path one CyNodeAI process serves and another calls, in one place, so that a server's
//! router and its clients cannot drift apart; and, in [`inference`], the paths of the node's
//! model server (Ollama or llama.cpp), which is not ours but whose paths the node manager calls
//! and the worker API forwards.
//!
//! Paths are written in axum's template syntax: a `{name}` segment is a parameter. Servers pass
//! the constants to `Router::route`; clients append them to a base URL, or split them with
//! [`segments`] when they percent-encode each segment themselves.

/// Liveness: `200 ok` while the process runs (orchestrator services and worker API).
pub const HEALTHZ: &str = "/healthz";
/// Readiness: `200 ready`, or `503` with the reason in plain text.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics in the OpenMetrics text format (orchestrator services and worker API).
pub const METRICS: &str = "/metrics";
/// The OpenAPI document of an orchestrator service.
pub const OPENAPI: &str = "/openapi.json";
/// What every versioned API path starts with (`/v1/...`). The user gateway serves the web
/// console at every other path it does not route; never under this one.
pub const API_PREFIX: &str = "/v1";

/// The worker API on each node (port 12090), called by the orchestrator.
pub mod worker {
    /// `POST`: run one job in a sandbox (`RunJobRequest` → `RunJobResponse`).
    pub const JOBS_RUN: &str = "/v1/worker/jobs:run";
    /// `POST`, no body: stop a job's sandbox because its task was canceled. `200` with the job's
    /// final `RunJobResponse` (`canceled` if it was still running, else its stored result,
    /// unchanged), `404` if the node has no such job. Idempotent. Build it with [`job_stop`].
    pub const JOB_STOP: &str = "/v1/worker/jobs/{job_id}/stop";

    /// `POST`, no body: stop a job's sandbox because the job is to run elsewhere (its node was
    /// drained). The run is interrupted and nothing of it is kept, so a later delivery runs it
    /// afresh. `204` once interrupted, `200` with its `RunJobResponse` if it had already ended,
    /// `404` if the node has no such job. Build it with [`job_requeue`].
    pub const JOB_REQUEUE: &str = "/v1/worker/jobs/{job_id}/requeue";

    /// `GET`: the job's output lines as server-sent events (`crate::logs`), from the start of
    /// its run as they are produced, then `end` once the run has ended; a finished job's stored
    /// output at once. `404` if the node has no such job. Build it with [`job_logs`].
    pub const JOB_LOGS: &str = "/v1/worker/jobs/{job_id}/logs";

    /// [`JOB_LOGS`] for one job.
    pub fn job_logs(job_id: uuid::Uuid) -> String {
        job_path(JOB_LOGS, job_id)
    }

    /// [`JOB_STOP`] for one job (a UUID needs no percent-encoding).
    pub fn job_stop(job_id: uuid::Uuid) -> String {
        job_path(JOB_STOP, job_id)
    }

    /// [`JOB_REQUEUE`] for one job.
    pub fn job_requeue(job_id: uuid::Uuid) -> String {
        job_path(JOB_REQUEUE, job_id)
    }

    fn job_path(template: &str, job_id: uuid::Uuid) -> String {
        format!(
            "/{}",
            super::fill(template, &[&job_id.to_string()]).join("/")
        )
    }
    /// `POST`: create a managed sandbox for the Project Manager (`ManagedSandboxRequest`; `201`
    /// with `ManagedSandbox`, `409` if the id exists, `429` at the node's cap).
    pub const SANDBOXES: &str = "/v1/worker/sandboxes";
    /// `DELETE`: remove a managed sandbox (`204`, also when it is already gone). Build it with
    /// [`sandbox`].
    pub const SANDBOX: &str = "/v1/worker/sandboxes/{sandbox_id}";
    /// `POST`: run a command in a managed sandbox (`SandboxExecRequest` → `SandboxExecResponse`).
    /// Build it with [`sandbox_exec`].
    pub const SANDBOX_EXEC: &str = "/v1/worker/sandboxes/{sandbox_id}/exec";
    /// `PUT` (raw body, `204`) or `GET` (the bytes, `404` if missing) one file of a managed
    /// sandbox's `/workspace`; the query names it (`SandboxFileQuery`). Build it with
    /// [`sandbox_files`].
    pub const SANDBOX_FILES: &str = "/v1/worker/sandboxes/{sandbox_id}/files";

    /// [`SANDBOX`] for one sandbox.
    pub fn sandbox(sandbox_id: uuid::Uuid) -> String {
        job_path(SANDBOX, sandbox_id)
    }

    /// [`SANDBOX_EXEC`] for one sandbox.
    pub fn sandbox_exec(sandbox_id: uuid::Uuid) -> String {
        job_path(SANDBOX_EXEC, sandbox_id)
    }

    /// [`SANDBOX_FILES`] for one sandbox (without the query).
    pub fn sandbox_files(sandbox_id: uuid::Uuid) -> String {
        job_path(SANDBOX_FILES, sandbox_id)
    }

    /// `GET`: the node's inference models, OpenAI-style, proxied to the node's inference server.
    pub const INFERENCE_MODELS: &str = "/v1/worker/inference/v1/models";
    /// `POST`: an OpenAI-style chat completion on the node's inference server.
    pub const INFERENCE_CHAT_COMPLETIONS: &str = "/v1/worker/inference/v1/chat/completions";

    /// `GET`: what the node is (`telemetry::NodeInfo`).
    pub const TELEMETRY_NODE_INFO: &str = "/v1/worker/telemetry/node:info";
    /// `GET`: load, memory, disk and container runtime now (`telemetry::NodeStats`).
    pub const TELEMETRY_NODE_STATS: &str = "/v1/worker/telemetry/node:stats";
    /// `GET`: the container inventory, filtered and paged (`telemetry::ContainersQuery` →
    /// `telemetry::ContainerList`).
    pub const TELEMETRY_CONTAINERS: &str = "/v1/worker/telemetry/containers";
    /// `GET`: one inventory row (`telemetry::ContainerDetail`), `404` if unknown. Build it with
    /// [`telemetry_container`].
    pub const TELEMETRY_CONTAINER: &str = "/v1/worker/telemetry/containers/{container_id}";
    /// `GET`: service and container log events (`telemetry::LogsQuery` → `telemetry::LogPage`).
    pub const TELEMETRY_LOGS: &str = "/v1/worker/telemetry/logs";

    /// [`TELEMETRY_CONTAINER`] for one container id (hex, so it needs no percent-encoding).
    pub fn telemetry_container(container_id: &str) -> String {
        format!(
            "/{}",
            super::fill(TELEMETRY_CONTAINER, &[container_id]).join("/")
        )
    }
}

/// The orchestrator's control plane (port 12082), called by node managers.
pub mod node {
    /// `POST`: register with the PSK, get a node JWT and the bootstrap payload.
    pub const REGISTER: &str = "/v1/nodes/register";
    /// `POST`: the node's capability report.
    pub const CAPABILITY: &str = "/v1/nodes/capability";
    /// `GET`: the node's configuration; `POST`: its acknowledgement.
    pub const CONFIG: &str = "/v1/nodes/config";
}

/// The control plane's workflow API (port 12082), called by a workflow runner with
/// `WORKFLOW_RUNNER_BEARER_TOKEN` (`crate::workflow`).
pub mod workflow {
    /// `POST`: take a task's lease (`StartRequest` → `StartResponse`).
    pub const START: &str = "/v1/workflow/start";
    /// `POST`: the task's checkpoint (`ResumeRequest` → `ResumeResponse`).
    pub const RESUME: &str = "/v1/workflow/resume";
    /// `POST`: save the task's checkpoint (`CheckpointRequest`, `204`).
    pub const CHECKPOINT: &str = "/v1/workflow/checkpoint";
    /// `POST`: end the task's lease (`ReleaseRequest`, `204`, idempotent).
    pub const RELEASE: &str = "/v1/workflow/release";
}

/// The orchestrator's user gateway (port 12080), called by cynork and other clients.
pub mod user {
    /// `POST`: log in with handle and password.
    pub const AUTH_LOGIN: &str = "/v1/auth/login";
    /// `POST`: exchange a refresh token for a new pair.
    pub const AUTH_REFRESH: &str = "/v1/auth/refresh";
    /// `POST`: revoke the session.
    pub const AUTH_LOGOUT: &str = "/v1/auth/logout";
    /// The web console's cookie session: `POST` logs in (`LoginRequest` → `ConsoleSession`, sets
    /// [`SESSION_COOKIE`] and [`REFRESH_COOKIE`]), `GET` tells who the cookie belongs to,
    /// `DELETE` logs out (needs [`CSRF_HEADER`]; the session is revoked and the cookies cleared).
    pub const AUTH_SESSION: &str = "/v1/auth/session";
    /// `POST` (needs [`CSRF_HEADER`]): exchanges the refresh cookie for new cookies and a new
    /// `ConsoleSession`.
    pub const AUTH_SESSION_REFRESH: &str = "/v1/auth/session/refresh";
    /// The cookie holding the console's access JWT (HttpOnly, SameSite=Strict, Path=/).
    pub const SESSION_COOKIE: &str = "cynode_session";
    /// The cookie holding the console's refresh token (HttpOnly, SameSite=Strict, sent only to
    /// [`AUTH_SESSION`] and below).
    pub const REFRESH_COOKIE: &str = "cynode_refresh";
    /// Request header carrying the `csrf_token` of a `ConsoleSession`: required on every
    /// POST, PUT, PATCH and DELETE authenticated by [`SESSION_COOKIE`].
    pub const CSRF_HEADER: &str = "x-csrf-token";
    /// Request and response header: the id of one request, in the gateway's log line of it.
    /// Sent by a client, it is echoed (when at most 128 visible ASCII characters); otherwise the
    /// gateway makes one up.
    pub const REQUEST_ID_HEADER: &str = "x-request-id";
    /// `GET`: the logged-in user.
    pub const USERS_ME: &str = "/v1/users/me";
    /// `POST`: the caller changes their own password (`ChangePasswordRequest`, 204).
    pub const USERS_ME_PASSWORD: &str = "/v1/users/me/password";
    /// `POST`: redeem a one-time set-password token (`SetPasswordRequest`, 204; no login).
    pub const AUTH_SET_PASSWORD: &str = "/v1/auth/set_password";
    /// `POST` creates (admin), `GET` lists (admin) user accounts.
    pub const USERS: &str = "/v1/users";
    /// `GET` (admin): one user, by id or handle.
    pub const USER: &str = "/v1/users/{id}";
    /// `POST` (admin): the user can no longer get in; every session, key and agent token stops.
    pub const USER_DISABLE: &str = "/v1/users/{id}/disable";
    /// `POST` (admin): the user may log in again.
    pub const USER_ENABLE: &str = "/v1/users/{id}/enable";
    /// `POST` (admin): set a new password or issue a set-password token; sessions end.
    pub const USER_RESET_PASSWORD: &str = "/v1/users/{id}/reset_password";
    /// `POST` (admin): end every session of the user (204).
    pub const USER_REVOKE_SESSIONS: &str = "/v1/users/{id}/revoke_sessions";
    /// `POST` creates (admin), `GET` lists groups.
    pub const GROUPS: &str = "/v1/groups";
    /// `GET` one group, `PATCH` (admin) renames or disables it; by id or slug.
    pub const GROUP: &str = "/v1/groups/{id}";
    /// `GET` the members, `POST` (admin) adds one (`AddMemberRequest`).
    pub const GROUP_MEMBERS: &str = "/v1/groups/{id}/members";
    /// `DELETE` (admin): remove the user (id or handle) from the group.
    pub const GROUP_MEMBER: &str = "/v1/groups/{id}/members/{user}";
    /// `POST` creates a project (the caller owns it), `GET` lists the ones the caller may read.
    pub const PROJECTS: &str = "/v1/projects";
    /// `GET`, `PATCH`, `DELETE` (archive) one project, by id or slug.
    pub const PROJECT: &str = "/v1/projects/{id}";
    /// `GET` the roles and what each allows: the policy table.
    pub const ROLES: &str = "/v1/roles";
    /// `POST` grants a role (`GrantRequest`), `GET` lists bindings of a scope.
    pub const ROLE_BINDINGS: &str = "/v1/role-bindings";
    /// `DELETE`: revoke one binding.
    pub const ROLE_BINDING: &str = "/v1/role-bindings/{id}";
    /// `POST` creates (admin), `GET` lists (admin) access rules.
    pub const ACCESS_RULES: &str = "/v1/access-rules";
    /// `DELETE` (admin): remove one access rule.
    pub const ACCESS_RULE: &str = "/v1/access-rules/{id}";
    /// `GET` (admin): the access audit, newest first (`AuditPage`).
    pub const AUDIT: &str = "/v1/audit";
    /// `GET` (admin): one access audit event.
    pub const AUDIT_EVENT: &str = "/v1/audit/{id}";
    /// `POST` creates, `GET` lists the caller's personal API keys.
    pub const API_KEYS: &str = "/v1/users/me/api-keys";
    /// `DELETE` revokes one.
    pub const API_KEY: &str = "/v1/users/me/api-keys/{id}";
    /// Token usage totals of the caller.
    pub const USAGE: &str = "/v1/users/me/usage";
    /// `GET` (admin only): every node, with state, capacity and running jobs.
    pub const NODES: &str = "/v1/nodes";
    /// `GET` (admin only): one node; `DELETE`: revoke it, it can register again only as a new
    /// node.
    pub const NODE: &str = "/v1/nodes/{slug}";
    /// `POST` (admin only): no new jobs for the node; optional deadline for its running ones.
    pub const NODE_DRAIN: &str = "/v1/nodes/{slug}/drain";
    /// `POST` (admin only): the node takes jobs again.
    pub const NODE_UNDRAIN: &str = "/v1/nodes/{slug}/undrain";
    /// `GET` (admin only): the MCP gateway's audit, newest first (`crate::mcp::McpAuditPage`).
    pub const AUDIT_MCP: &str = "/v1/audit/mcp";
    /// `POST`: create a task; `GET`: list tasks.
    pub const TASKS: &str = "/v1/tasks";
    /// `GET`: one task, by id or name.
    pub const TASK: &str = "/v1/tasks/{id}";
    /// `GET`: a task's result.
    pub const TASK_RESULT: &str = "/v1/tasks/{id}/result";
    /// `POST`: cancel a task.
    pub const TASK_CANCEL: &str = "/v1/tasks/{id}/cancel";
    /// `GET`: a task's logs; with `follow=true`, server-sent events until the task ends
    /// (`crate::logs`).
    pub const TASK_LOGS: &str = "/v1/tasks/{id}/logs";
    /// `GET`: a prompt task's Project Manager steps.
    pub const TASK_STEPS: &str = "/v1/tasks/{id}/steps";
    /// `GET`: a task's artifacts (owner or admin); `PUT ?path=`: upload one (owner, raw body).
    pub const TASK_ARTIFACTS: &str = "/v1/tasks/{id}/artifacts";
    /// `GET`: one artifact's bytes with its stored `Content-Type` (owner).
    pub const TASK_ARTIFACT: &str = "/v1/tasks/{id}/artifacts/{artifact_id}";
    /// `GET`: preference entries of one scope, paged by key.
    pub const PREFS: &str = "/v1/prefs";
    /// `GET`: the effective preferences of a task, a project or the caller.
    pub const PREFS_EFFECTIVE: &str = "/v1/prefs/effective";
    /// `GET`, `PUT` (create or update), `DELETE`: one entry; `?scope_id=` names the scope.
    pub const PREF: &str = "/v1/prefs/{scope_type}/{key}";
    /// `GET`: OpenAI-compatible model list (`cynodeai.pm` and every model a node serves).
    pub const MODELS: &str = "/v1/models";
    /// `POST`: OpenAI-compatible chat completion, streaming (SSE) or not.
    pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
    /// `GET`: the caller's chat threads, newest first.
    pub const CHAT_THREADS: &str = "/v1/chat/threads";
    /// `GET`: one thread's messages, oldest first.
    pub const CHAT_THREAD_MESSAGES: &str = "/v1/chat/threads/{id}/messages";
    /// Request and response header naming the chat thread a completion belongs to.
    pub const CHAT_THREAD_HEADER: &str = "x-cynodeai-thread-id";
    /// Request header naming the project a chat belongs to (OpenAI's own header).
    pub const CHAT_PROJECT_HEADER: &str = "openai-project";
}

/// The node's model server (Ollama in production, llama.cpp's `llama-server` in tests; port
/// 11434 on loopback): what the node manager asks it (what it serves, pulling a model) and what
/// the worker API forwards to it, for the orchestrator (`worker::INFERENCE_*`) and for a job's
/// sidecar (an allowlist of these paths). Third-party paths, kept here so that they too are
/// typed once.
pub mod inference {
    /// The OpenAI-compatible API, which Ollama and llama.cpp both serve. (The user gateway
    /// serves the same shape at the same paths: `user::MODELS`, `user::CHAT_COMPLETIONS`.)
    pub mod openai {
        /// `GET`: the models the server serves.
        pub const MODELS: &str = "/v1/models";
        /// `POST`: a chat completion.
        pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
        /// `POST`: a text completion.
        pub const COMPLETIONS: &str = "/v1/completions";
        /// `POST`: embeddings.
        pub const EMBEDDINGS: &str = "/v1/embeddings";
    }

    /// Ollama's own API; a server that does not answer `VERSION` is not Ollama.
    pub mod ollama {
        /// `GET`: the server's version.
        pub const VERSION: &str = "/api/version";
        /// `GET`: the local models.
        pub const TAGS: &str = "/api/tags";
        /// `GET`: the models loaded in memory now.
        pub const PS: &str = "/api/ps";
        /// `POST`: pull a model, with streamed progress. Model management: never forwarded for
        /// a job.
        pub const PULL: &str = "/api/pull";
        /// `POST`: a chat.
        pub const CHAT: &str = "/api/chat";
        /// `POST`: a completion.
        pub const GENERATE: &str = "/api/generate";
        /// `POST`: embeddings.
        pub const EMBED: &str = "/api/embed";
        /// `POST`: embeddings, the older endpoint.
        pub const EMBEDDINGS: &str = "/api/embeddings";
        /// `POST`: one model's details.
        pub const SHOW: &str = "/api/show";
    }
}

/// The segments of `path` (`"/v1/tasks/{id}"` → `["v1", "tasks", "{id}"]`).
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.trim_start_matches('/').split('/')
}

/// `template`'s segments with each `{param}` replaced, in order, by the next of `params`.
/// Panics if the counts differ: that is a programming error at the call site.
pub fn fill<'a>(template: &'a str, params: &[&'a str]) -> Vec<&'a str> {
    let mut params = params.iter();
    let filled: Vec<&str> = segments(template)
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                params
                    .next()
                    .unwrap_or_else(|| panic!("{template}: too few parameters"))
            } else {
                segment
            }
        })
        .collect();
    assert!(params.next().is_none(), "{template}: too many parameters");
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_order() {
        assert_eq!(
            fill(user::TASK_RESULT, &["a/b"]),
            ["v1", "tasks", "a/b", "result"]
        );
        assert_eq!(fill(node::CONFIG, &[]), ["v1", "nodes", "config"]);
        assert_eq!(
            segments(worker::JOBS_RUN).collect::<Vec<_>>(),
            ["v1", "worker", "jobs:run"]
        );
    }

    #[test]
    #[should_panic(expected = "too few")]
    fn missing_parameters_are_a_bug() {
        fill(user::TASK, &[]);
    }

    #[test]
    fn the_stop_path_names_the_job() {
        let job = uuid::Uuid::nil();
        assert_eq!(
            worker::job_stop(job),
            "/v1/worker/jobs/00000000-0000-0000-0000-000000000000/stop"
        );
    }

    #[test]
    fn the_telemetry_paths_live_under_their_prefix() {
        for path in [
            worker::TELEMETRY_NODE_INFO,
            worker::TELEMETRY_NODE_STATS,
            worker::TELEMETRY_CONTAINERS,
            worker::TELEMETRY_CONTAINER,
            worker::TELEMETRY_LOGS,
        ] {
            assert!(path.starts_with("/v1/worker/telemetry/"), "{path}");
        }
        assert_eq!(
            worker::telemetry_container("abc123"),
            "/v1/worker/telemetry/containers/abc123"
        );
    }

    #[test]
    fn the_sandbox_paths_name_the_sandbox() {
        let id = uuid::Uuid::nil();
        assert_eq!(
            worker::sandbox_exec(id),
            "/v1/worker/sandboxes/00000000-0000-0000-0000-000000000000/exec"
        );
        assert_eq!(
            worker::sandbox_files(id),
            "/v1/worker/sandboxes/00000000-0000-0000-0000-000000000000/files"
        );
        assert_eq!(
            worker::sandbox(id),
            "/v1/worker/sandboxes/00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn the_inference_paths_live_under_the_worker_prefix() {
        for (path, forwarded) in [
            (worker::INFERENCE_MODELS, inference::openai::MODELS),
            (
                worker::INFERENCE_CHAT_COMPLETIONS,
                inference::openai::CHAT_COMPLETIONS,
            ),
        ] {
            assert!(path.starts_with("/v1/worker/inference/v1/"), "{path}");
            assert_eq!(path.strip_prefix("/v1/worker/inference"), Some(forwarded));
        }
    }
}
