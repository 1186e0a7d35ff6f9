//! Acceptance: teams (features/teams). The real `cynode-orchestrator` binary on a fresh real
//! PostgreSQL database; every step is an HTTP request of one of the scenario's users (or of
//! their task's sandbox agent, with a token from `cynode-orchestrator mcp-token`), and every
//! check reads what the gateway answers.

use std::collections::HashMap;

use chrono::Utc;
use cucumber::gherkin::Step;
use cucumber::{World, given, then, when};
use cynode_e2e::process::binary;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::orchestrator_process::{ADMIN_PASSWORD, JWT_SECRET, Orchestrator, PSK};

/// Every scenario user's password: long enough, and none of their handles.
const USER_PASSWORD: &str = "correct-horse-battery-staple";
/// `hello`, base64.
const HELLO_BASE64: &str = "aGVsbG8=";

/// A logged-in user: the tokens of their session, and an API key once they made one.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    access: String,
    refresh: String,
    api_key: Option<String>,
}

#[derive(Debug, Default, World)]
struct TeamsWorld {
    orchestrator: Option<Orchestrator>,
    http: reqwest::Client,
    /// By handle; `admin` from the start.
    users: HashMap<String, Session>,
    /// Project ids by slug.
    projects: HashMap<String, String>,
    /// The task the scenario is about (`{task}` in tables).
    task: Option<String>,
    /// Other tasks, by their creator's handle.
    tasks_of: HashMap<String, String>,
    /// The sandbox agent token of [`Self::task`]'s job.
    sandbox_token: Option<String>,
    /// The envelope of the last MCP tool call.
    tool_answer: Value,
}

impl TeamsWorld {
    fn o(&self) -> &Orchestrator {
        self.orchestrator
            .as_ref()
            .expect("the Background starts the orchestrator")
    }

    fn user(&self, handle: &str) -> &Session {
        self.users
            .get(handle)
            .unwrap_or_else(|| panic!("{handle} is not a user of this scenario"))
    }

    fn project(&self, slug: &str) -> &str {
        self.projects
            .get(slug)
            .unwrap_or_else(|| panic!("{slug} is not a project of this scenario"))
    }

    fn task(&self) -> &str {
        self.task.as_deref().expect("a step made the task")
    }

    /// A gateway request with `handle`'s access token.
    fn request(&self, handle: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.o().gw))
            .bearer_auth(&self.user(handle).access)
    }

    /// `{task}` and `{<project slug>}` replaced by their ids.
    fn expand(&self, text: &str) -> String {
        let mut text = text.to_owned();
        if let Some(task) = &self.task {
            text = text.replace("{task}", task);
        }
        for (slug, id) in &self.projects {
            text = text.replace(&format!("{{{slug}}}"), id);
        }
        text
    }
}

/// `(status, JSON body or Null)`.
async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A problem+json answer of `status`, with a detail.
fn assert_problem(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

async fn login(world: &TeamsWorld, handle: &str, password: &str) -> Session {
    let (status, body) = answer(
        world
            .http
            .post(format!("{}/v1/auth/login", world.o().gw))
            .json(&json!({"handle": handle, "password": password}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "login of {handle}: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let me = world
        .http
        .get(format!("{}/v1/users/me", world.o().gw))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let (status, me) = answer(me).await;
    assert_eq!(status, 200, "{me}");
    Session {
        id: me["id"].as_str().unwrap().to_owned(),
        access,
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        api_key: None,
    }
}

#[given("a running orchestrator on a fresh database")]
async fn start(world: &mut TeamsWorld) {
    world.orchestrator = Some(
        Orchestrator::start(&[
            // Readiness is not what these scenarios are about.
            ("PM_REQUIRED", "false"),
        ])
        .await,
    );
    let admin = login(world, "admin", ADMIN_PASSWORD).await;
    world.users.insert("admin".into(), admin);
}

#[given(expr = "the admin has created the users {string}, {string} and {string}")]
async fn create_users(world: &mut TeamsWorld, a: String, b: String, c: String) {
    for handle in [a, b, c] {
        let resp = world
            .request("admin", Method::POST, "/v1/users")
            .json(&json!({"handle": handle, "password": USER_PASSWORD}))
            .send()
            .await
            .unwrap();
        let (status, body) = answer(resp).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["user"]["handle"], handle.as_str(), "{body}");
        assert_eq!(body["user"]["is_active"], true, "{body}");
        assert!(body.get("set_password").is_none(), "{body}");
        let session = login(world, &handle, USER_PASSWORD).await;
        assert_eq!(body["user"]["id"], session.id.as_str());
        world.users.insert(handle, session);
    }
}

#[given(expr = "the admin has created the group {string} with the member {string}")]
async fn create_group(world: &mut TeamsWorld, slug: String, member: String) {
    let resp = world
        .request("admin", Method::POST, "/v1/groups")
        .json(&json!({"slug": slug}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/v1/groups/{slug}/members");
    let resp = world
        .request("admin", Method::POST, &path)
        .json(&json!({"user": member}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(status, 204, "{body}");
    let (status, members) = answer(
        world
            .request("admin", Method::GET, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(
        members["members"][0]["handle"],
        member.as_str(),
        "{members}"
    );
}

async fn grant(world: &TeamsWorld, role: &str, kind: &str, subject: &str, project: &str) {
    let resp = world
        .request("admin", Method::POST, "/v1/role-bindings")
        .json(
            &json!({"role": role, "subject_type": kind, "subject": subject,
                      "scope_type": "project", "scope_id": project}),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], role, "{body}");
    assert_eq!(body["subject_name"], subject, "{body}");
    assert_eq!(body["scope_id"], world.project(project), "{body}");
}

#[given(
    expr = "the admin has created the project {string} with the group {string} as {string} and the user {string} as {string}"
)]
async fn create_project(
    world: &mut TeamsWorld,
    slug: String,
    group: String,
    group_role: String,
    user: String,
    user_role: String,
) {
    let resp = world
        .request("admin", Method::POST, "/v1/projects")
        .json(&json!({"slug": slug, "display_name": format!("Project {slug}")}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["is_personal"], false, "{body}");
    world
        .projects
        .insert(slug.clone(), body["id"].as_str().unwrap().to_owned());
    grant(world, &group_role, "group", &group, &slug).await;
    grant(world, &user_role, "user", &user, &slug).await;
}

/// Creates a script task as `handle` (in `project`, else their default project) and returns it.
async fn create_task(
    world: &TeamsWorld,
    handle: &str,
    project: Option<&str>,
    waits: bool,
) -> Value {
    let mut body = json!({"prompt": "echo shared work", "input_mode": "script"});
    if let Some(slug) = project {
        body["project_id"] = json!(world.project(slug));
    }
    if waits {
        // No node has this label: the job stays queued, and its sandbox token stays good.
        body["requirements"] = json!({"labels": ["nowhere"]});
    }
    let resp = world
        .request(handle, Method::POST, "/v1/tasks")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, task) = answer(resp).await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["creator"], handle, "{task}");
    task
}

#[when(expr = "{string} creates a task in {string}")]
async fn creates_task(world: &mut TeamsWorld, handle: String, project: String) {
    let task = create_task(world, &handle, Some(&project), false).await;
    assert_eq!(task["project_id"], world.project(&project), "{task}");
    world.task = Some(task["id"].as_str().unwrap().to_owned());
}

#[then(expr = "{string} reads the task, created by {string}")]
async fn reads_task(world: &mut TeamsWorld, reader: String, creator: String) {
    let path = format!("/v1/tasks/{}", world.task());
    let (status, task) = answer(
        world
            .request(&reader, Method::GET, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["id"], world.task(), "{task}");
    assert_eq!(task["creator"], creator.as_str(), "{task}");
    assert_eq!(task["project_id"], world.project("vision"), "{task}");
}

#[then(expr = "{string} finds the task in his task list, created by {string}")]
async fn lists_task(world: &mut TeamsWorld, reader: String, creator: String) {
    let (status, list) = answer(
        world
            .request(&reader, Method::GET, "/v1/tasks")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let tasks = list["tasks"].as_array().unwrap();
    let found = tasks
        .iter()
        .find(|t| t["id"] == world.task())
        .unwrap_or_else(|| panic!("the task is not in the list of {reader}: {list}"));
    assert_eq!(found["creator"], creator.as_str(), "{found}");
}

#[then(expr = "{string} may not cancel the task: {int}")]
async fn may_not_cancel(world: &mut TeamsWorld, handle: String, expected: u16) {
    let path = format!("/v1/tasks/{}/cancel", world.task());
    let (status, body) = answer(
        world
            .request(&handle, Method::POST, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_problem(status, &body, expected);
    // Nothing was canceled.
    let path = format!("/v1/tasks/{}", world.task());
    let (_, task) = answer(
        world
            .request("admin", Method::GET, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(task["status"], "canceled", "{task}");
}

#[then(expr = "the task does not exist for {string}: {int}")]
async fn hidden(world: &mut TeamsWorld, handle: String, expected: u16) {
    for path in [
        format!("/v1/tasks/{}", world.task()),
        format!("/v1/tasks/{}/result", world.task()),
    ] {
        let (status, body) = answer(
            world
                .request(&handle, Method::GET, &path)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_problem(status, &body, expected);
        assert!(
            body["detail"].as_str().unwrap().contains("does not exist"),
            "{body}"
        );
    }
    // Nor is it in their list.
    let (_, list) = answer(
        world
            .request(&handle, Method::GET, "/v1/tasks")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        !list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == world.task()),
        "{list}"
    );
}

#[when(expr = "the admin removes {string} from the group {string}")]
async fn remove_member(world: &mut TeamsWorld, handle: String, group: String) {
    let path = format!("/v1/groups/{group}/members/{handle}");
    let (status, body) = answer(
        world
            .request("admin", Method::DELETE, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204, "{body}");
}

async fn tasks_in(world: &TeamsWorld, handle: &str, project: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE created_by = $1::uuid AND project_id = $2::uuid",
    )
    .bind(&world.user(handle).id)
    .bind(world.project(project))
    .fetch_one(&world.o().db)
    .await
    .unwrap()
}

#[then(expr = "{string} may no longer create a task in {string}: {int}")]
async fn may_not_create(world: &mut TeamsWorld, handle: String, project: String, expected: u16) {
    let before = tasks_in(world, &handle, &project).await;
    let resp = world
        .request(&handle, Method::POST, "/v1/tasks")
        .json(&json!({"prompt": "echo more", "input_mode": "script",
                      "project_id": world.project(&project)}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_problem(status, &body, expected);
    assert_eq!(tasks_in(world, &handle, &project).await, before);
}

#[then(expr = "{string} still creates a task in her personal project with the same access token")]
async fn personal_task(world: &mut TeamsWorld, handle: String) {
    let task = create_task(world, &handle, None, false).await;
    let slug: String = sqlx::query_scalar("SELECT slug FROM projects WHERE id = $1::uuid")
        .bind(task["project_id"].as_str().unwrap())
        .fetch_one(&world.o().db)
        .await
        .unwrap();
    assert_eq!(slug, format!("default-{}", world.user(&handle).id));
}

#[given(expr = "{string} holds a refresh token and an API key")]
async fn holds_key(world: &mut TeamsWorld, handle: String) {
    let resp = world
        .request(&handle, Method::POST, "/v1/users/me/api-keys")
        .json(&json!({"name": format!("{handle}-key")}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    // The key works until the user is disabled.
    let me = world
        .http
        .get(format!("{}/v1/users/me", world.o().gw))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    world.users.get_mut(&handle).unwrap().api_key = Some(key);
}

#[when(expr = "the admin disables {string}")]
async fn disable(world: &mut TeamsWorld, handle: String) {
    let path = format!("/v1/users/{handle}/disable");
    let (status, body) = answer(
        world
            .request("admin", Method::POST, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_active"], false, "{body}");
}

#[then(
    expr = "the access token, the refresh token and the API key of {string} are each refused: {int}"
)]
async fn all_refused(world: &mut TeamsWorld, handle: String, expected: u16) {
    let session = world.user(&handle).clone();
    let key = session.api_key.clone().expect("the user made an API key");
    let gw = world.o().gw.clone();
    for (what, credential) in [("access token", &session.access), ("API key", &key)] {
        for path in ["/v1/users/me", "/v1/tasks"] {
            let resp = world
                .http
                .get(format!("{gw}{path}"))
                .bearer_auth(credential)
                .send()
                .await
                .unwrap();
            let (status, body) = answer(resp).await;
            assert_eq!(status, expected, "{what} on {path}: {body}");
        }
    }
    let resp = world
        .http
        .post(format!("{gw}/v1/auth/refresh"))
        .json(&json!({"refresh_token": session.refresh}))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(status, expected, "refresh token: {body}");
    // Nor may they log in again.
    let resp = world
        .http
        .post(format!("{gw}/v1/auth/login"))
        .json(&json!({"handle": handle, "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), expected, "login");
}

#[then("the access audit holds these rows:")]
async fn audit_rows(world: &mut TeamsWorld, step: &Step) {
    let table = step.table.as_ref().expect("a table of rows");
    let header = &table.rows[0];
    for row in &table.rows[1..] {
        let want: HashMap<&str, String> = header
            .iter()
            .map(String::as_str)
            .zip(row.iter().map(|cell| world.expand(cell)))
            .collect();
        let path = format!("/v1/audit?action={}&limit=200", want["action"]);
        let (status, page) = answer(
            world
                .request("admin", Method::GET, &path)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        let found = events.iter().any(|e| {
            e["actor_handle"] == want["actor"].as_str()
                && e["actor_id"] == world.user(&want["actor"]).id.as_str()
                && e["resource_type"] == want["resource_type"].as_str()
                && e["resource_id"] == want["resource"].as_str()
                && e["decision"] == want["decision"].as_str()
                && want
                    .get("task")
                    .is_none_or(|task| e["task_id"] == task.as_str())
        });
        assert!(
            found,
            "no access audit row {want:?} among the {} rows of that action: {page:#}",
            events.len()
        );
    }
}

// ---- models ----

#[given(expr = "a dispatchable node serving the model {string}")]
async fn model_node(world: &mut TeamsWorld, model: String) {
    let capability = json!({
        "version": 1, "reported_at": Utc::now(),
        "node": {"node_slug": "model-node", "labels": []},
        "platform": {"os": "linux", "arch": "amd64"},
        "compute": {"cpu_cores": 2, "ram_mb": 4096},
        "inference": {"supported": true, "mode": "allow", "running": true,
                      "available_models": [model], "loaded_models": [model]},
        // Nothing listens there: the model list reads only what the node reported.
        "worker_api": {"base_url": "http://127.0.0.1:9"}
    });
    let cp = world.o().cp.clone();
    let (status, bootstrap) = answer(
        world
            .http
            .post(format!("{cp}/v1/nodes/register"))
            .json(&json!({"psk": PSK, "capability": capability}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{bootstrap}");
    let jwt = bootstrap["auth"]["node_jwt"].as_str().unwrap();
    let endpoint = |name: &str| {
        bootstrap["orchestrator"]["endpoints"][name]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (status, config) = answer(
        world
            .http
            .get(endpoint("node_config_url"))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{config}");
    let ack = json!({"version": 1, "node_slug": "model-node",
                     "config_version": config["config_version"], "ack_at": Utc::now(),
                     "status": "applied"});
    for (url, body) in [
        (endpoint("node_config_url"), ack),
        (endpoint("node_report_url"), capability),
    ] {
        let resp = world
            .http
            .post(url)
            .bearer_auth(jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
}

/// The model ids `handle` is offered in `project` (their default project when `None`).
async fn models(world: &TeamsWorld, handle: &str, project: Option<&str>) -> Vec<String> {
    let mut req = world.request(handle, Method::GET, "/v1/models");
    if let Some(slug) = project {
        req = req.header("OpenAI-Project", world.project(slug));
    }
    let (status, list) = answer(req.send().await.unwrap()).await;
    assert_eq!(status, 200, "{list}");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn model_list(text: &str) -> Vec<String> {
    text.split(", ").map(str::to_owned).collect()
}

#[then(expr = "{string} is offered the models {string} in {string}")]
async fn offered(world: &mut TeamsWorld, handle: String, expected: String, project: String) {
    assert_eq!(
        models(world, &handle, Some(&project)).await,
        model_list(&expected),
        "models of {handle} in {project}"
    );
}

#[then(expr = "the admin is still offered the models {string} in {string}")]
async fn admin_offered(world: &mut TeamsWorld, expected: String, project: String) {
    offered(world, "admin".into(), expected, project).await;
}

#[then(expr = "{string} is offered the models {string} in her personal project")]
async fn offered_personal(world: &mut TeamsWorld, handle: String, expected: String) {
    assert_eq!(
        models(world, &handle, None).await,
        model_list(&expected),
        "models of {handle} in their default project"
    );
}

#[then(expr = "{string} may not chat with {string} in {string}: an OpenAI-shaped {int}")]
async fn may_not_chat(
    world: &mut TeamsWorld,
    handle: String,
    model: String,
    project: String,
    expected: u16,
) {
    let resp = world
        .request(&handle, Method::POST, "/v1/chat/completions")
        .header("OpenAI-Project", world.project(&project))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "Say hello."}]}))
        .send()
        .await
        .unwrap();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = answer(resp).await;
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/json", "{body}");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["type"].is_string() && error["code"].is_string(),
        "{body}"
    );
    assert!(error.get("param").is_some(), "{body}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM chat_messages m JOIN chat_threads t ON t.id = m.thread_id
         WHERE t.user_id = $1::uuid",
    )
    .bind(&world.user(&handle).id)
    .fetch_one(&world.o().db)
    .await
    .unwrap();
    assert_eq!(stored, 0, "a refused chat stores no message");
}

#[when(expr = "the admin denies {string} on {string} {string} to the group {string}")]
async fn deny_rule(
    world: &mut TeamsWorld,
    action: String,
    resource_type: String,
    pattern: String,
    group: String,
) {
    let resp = world
        .request("admin", Method::POST, "/v1/access-rules")
        .json(
            &json!({"subject_type": "group", "subject": group, "action": action,
                      "resource_type": resource_type, "resource_pattern": pattern,
                      "effect": "deny", "reason": "feature: not for this group"}),
        )
        .send()
        .await
        .unwrap();
    let (status, rule) = answer(resp).await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["effect"], "deny", "{rule}");
    assert_eq!(rule["resource_pattern"], pattern.as_str(), "{rule}");
}

// ---- MCP ----

#[given(expr = "{string} has a task in {string} that waits for a node")]
async fn waiting_task(world: &mut TeamsWorld, handle: String, project: String) {
    let task = create_task(world, &handle, Some(&project), true).await;
    assert_eq!(task["project_id"], world.project(&project), "{task}");
    world.task = Some(task["id"].as_str().unwrap().to_owned());
}

#[given(expr = "{string} has a task in his personal project that waits for a node")]
async fn own_waiting_task(world: &mut TeamsWorld, handle: String) {
    let task = create_task(world, &handle, None, true).await;
    world
        .tasks_of
        .insert(handle, task["id"].as_str().unwrap().to_owned());
}

/// The sandbox agent token of the task's (first) job, from `cynode-orchestrator mcp-token`.
async fn sandbox_token(world: &mut TeamsWorld) -> String {
    if let Some(token) = &world.sandbox_token {
        return token.clone();
    }
    let task = world.task().to_owned();
    let job: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1::uuid ORDER BY created_at")
            .bind(&task)
            .fetch_one(&world.o().db)
            .await
            .unwrap();
    let output = Command::new(binary("cynode-orchestrator"))
        .args(["mcp-token", "--agent", "sandbox", "--task-id", &task])
        .args(["--job-id", &job.to_string()])
        .env("DATABASE_URL", &world.o().database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    world.sandbox_token = Some(token.clone());
    token
}

async fn call_tool(world: &mut TeamsWorld, tool: &str, arguments: Value) {
    let token = sandbox_token(world).await;
    let mcp = cynode_e2e::mcp::McpClient::new(&world.o().mcp);
    world.tool_answer = mcp.call(Some(&token), tool, arguments).await;
}

#[when(expr = "the sandbox agent of the task puts the artifact {string}")]
async fn put_artifact(world: &mut TeamsWorld, path: String) {
    let args = json!({"task_id": world.task(), "path": path,
                      "content_bytes_base64": HELLO_BASE64, "content_type": "text/plain"});
    call_tool(world, "artifact.put", args).await;
}

#[when(expr = "the sandbox agent of the task lists the artifacts of the task of {string}")]
async fn list_foreign(world: &mut TeamsWorld, owner: String) {
    let other = world.tasks_of[&owner].clone();
    call_tool(world, "artifact.list", json!({"task_id": other})).await;
}

#[then("the tool answers with success")]
fn tool_success(world: &mut TeamsWorld) {
    assert_eq!(
        world.tool_answer["status"], "success",
        "{}",
        world.tool_answer
    );
}

#[then(expr = "the tool answers the error {string}")]
fn tool_error(world: &mut TeamsWorld, kind: String) {
    let answer = &world.tool_answer;
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["type"], kind.as_str(), "{answer}");
}

#[then(expr = "the sandbox agent of the task lists exactly the artifacts {string}")]
async fn lists_own(world: &mut TeamsWorld, paths: String) {
    let args = json!({"task_id": world.task()});
    call_tool(world, "artifact.list", args).await;
    let answer = &world.tool_answer;
    assert_eq!(answer["status"], "success", "{answer}");
    let listed: Vec<&str> = answer["result"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = paths.split(", ").collect();
    assert_eq!(listed, expected, "{answer}");
}

#[then(expr = "the MCP audit of the task holds these {string} calls, oldest first:")]
async fn mcp_audit(world: &mut TeamsWorld, tool: String, step: &Step) {
    let path = format!("/v1/audit/mcp?task_id={}&tool_name={tool}", world.task());
    let (status, page) = answer(
        world
            .request("admin", Method::GET, &path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let mut got: Vec<(String, String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["task_id"], world.task(), "{e}");
            assert_eq!(e["subject_type"], "sandbox", "{e}");
            assert_eq!(e["user_id"], world.user("alice").id.as_str(), "{e}");
            (
                e["decision"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
                e["error_type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.reverse();
    let table = step.table.as_ref().expect("a table of calls");
    let expected: Vec<(String, String, String)> = table.rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(got, expected, "{page:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_features() {
    TeamsWorld::cucumber()
        // Each scenario runs an orchestrator (4 connections) and holds 2 of its own: a few at a
        // time, far below PostgreSQL's limit beside the other tests.
        .max_concurrent_scenarios(3)
        .fail_on_skipped()
        // The test harness owns the command line (filters, --nocapture): not cucumber's to parse.
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run_and_exit(concat!(env!("CARGO_MANIFEST_DIR"), "/teams"))
        .await;
}
