//! The role × action matrix (issue 19, "Teams"), end to end against a real orchestrator on a
//! real PostgreSQL: every user-gateway route, asked by subjects holding each role (at system
//! scope, in a project P, through a group, none at all, disabled, and each through an API key
//! too), and every MCP tool of a user's agent, acting for task owners holding each role in P,
//! decide exactly as `orchestrator/src/authz/policy.toml` says.
//!
//! Every expectation is derived from the table the orchestrator itself reads
//! ([`authz::policy`]), never from a copy: a denial must be a 403 (a 404 when the subject may
//! not even `project.read` the project) with exactly one new `access_control_audit_log` deny
//! row for the subject; an allowed request must succeed with none. Each run collects every
//! discrepancy and prints them as one table before failing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cynode_contracts::user::Role;
use cynode_orchestrator::authz::{self, PolicyScope};
use cynode_orchestrator::mcp::{Agent, AgentType, tools};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Node, Orchestrator};

/// Users (or task owners) asked side by side, each one request at a time: at most this many
/// requests in flight, no more than the orchestrator's pool has connections (8, shared with
/// this test's own queries), so the test holds few of the PostgreSQL connections every other
/// test shares.
const PARALLEL: usize = 8;
/// A model no node serves: a chat request that passes the access checks then ends in a 404
/// `model_not_found` without calling any model.
const NO_SUCH_MODEL: &str = "matrix-no-such-model";
/// A preference of project P, for the preference tools.
const PREF_KEY: &str = "matrix.key";
/// The artifact every MCP owner's task holds from the setup.
const SETUP_ARTIFACT: &str = "in/setup.txt";
/// Routes that end the caller's sessions: sent last, once everything else has been asked.
const FINAL: [&str; 2] = ["POST /v1/users/me/password", "POST /v1/auth/logout"];
/// Routes a login session may use and an API key may not, whatever the roles: a leaked key must
/// not mint keys that outlive its revocation (`apikeys::create`). The credential decides, not the
/// table: a 403 with no access audit row. Not a role decision, so not in `policy.toml`.
const SESSION_ONLY: [&str; 1] = ["POST /v1/users/me/api-keys"];

type Bindings = Vec<(Role, Option<Uuid>)>;

/// The roles `bindings` give in `scope` (`None`: system), as `policy.toml` defines them: at
/// system scope the system bindings; in a project its own bindings and what each system binding
/// counts as there (`[system_in_projects]`).
fn roles_in(bindings: &[(Role, Option<Uuid>)], scope: Option<Uuid>) -> BTreeSet<Role> {
    let policy = authz::policy();
    bindings
        .iter()
        .filter_map(|&(role, at)| match (scope, at) {
            (None, None) => Some(role),
            (Some(_), None) => policy.system_in_projects.get(&role).copied(),
            (Some(p), Some(q)) if p == q => Some(role),
            _ => None,
        })
        .collect()
}

/// Whether the table lets `bindings` do `action` on a resource in `scope` (`None`: system),
/// `own` when the resource is theirs. A system-scope action counts system bindings only.
fn table_allows(
    bindings: &[(Role, Option<Uuid>)],
    action: &str,
    scope: Option<Uuid>,
    own: bool,
) -> bool {
    let entry = authz::policy()
        .actions
        .get(action)
        .unwrap_or_else(|| panic!("policy.toml names action {action} but does not define it"));
    let scope = match entry.scope {
        PolicyScope::System => None,
        PolicyScope::Project => scope,
    };
    roles_in(bindings, scope)
        .iter()
        .any(|r| entry.any.contains(r) || (own && entry.own.contains(r)))
}

/// How a denial in `scope` is told: 404 when the subject may not even read the project, else 403.
fn denial_status(bindings: &[(Role, Option<Uuid>)], scope: Option<Uuid>) -> u16 {
    match scope {
        Some(_) if !table_allows(bindings, "project.read", scope, false) => 404,
        _ => 403,
    }
}

/// What one request must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Allowed: one of these statuses (when empty: anything but 401 and 403), no denial audited.
    Allow(&'static [u16]),
    /// Denied by the decision: this status and exactly one new deny row.
    Deny(u16),
    /// Refused before any decision (a disabled user's 401, a session-only route asked with an
    /// API key): this status and no deny row.
    Refused(u16),
}

impl Expect {
    fn holds(self, status: u16, rows: i64) -> bool {
        match self {
            Self::Allow(ok) => {
                rows == 0
                    && status != 401
                    && status != 403
                    && (ok.is_empty() || ok.contains(&status))
            }
            Self::Deny(s) => status == s && rows == 1,
            Self::Refused(s) => status == s && rows == 0,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Allow([]) => "allow (not 401/403), no deny row".into(),
            Self::Allow(ok) => format!(
                "allow ({}), no deny row",
                ok.iter().map(u16::to_string).collect::<Vec<_>>().join("|")
            ),
            Self::Deny(s) => format!("deny {s} + 1 deny row"),
            Self::Refused(s) => format!("{s}, no deny row"),
        }
    }
}

/// What a user holds, as the setup grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holds {
    System(Role),
    Project(Role),
    /// A role in P through a group binding.
    Group(Role),
    /// Nothing beyond their personal project.
    Nothing,
    /// Disabled once the setup is done.
    Disabled,
}

#[derive(Debug)]
struct User {
    name: String,
    id: Uuid,
    holds: Holds,
    /// Their effective bindings, personal project aside: what the table is asked about.
    bindings: Bindings,
    /// How their roles in P were granted (role, subject type, subject), to grant the same in a
    /// fresh project.
    in_p: Vec<(Role, &'static str, String)>,
    /// An access token of a login.
    token: String,
    /// A personal API key, if the gateway made one (a failure is reported, and the key's
    /// subject is not asked).
    key: Option<String>,
    /// One of their chat threads.
    thread: Uuid,
    /// A task in P they created and its (queued) job, for their agents.
    task: Option<(Uuid, Uuid)>,
}

impl User {
    fn enabled(&self) -> bool {
        self.holds != Holds::Disabled
    }

    /// Their password: `n` = 0 from creation, 1 and 2 after the final phase's changes.
    fn password(&self, n: u32) -> String {
        password(n)
    }
}

/// Every user's password (the same for all: it must not contain the handle).
fn password(n: u32) -> String {
    format!("correct-horse-battery-{n}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    Login,
    Key,
}

/// A user asking with one of their credentials.
#[derive(Debug, Clone, Copy)]
struct Subject<'a> {
    user: &'a User,
    cred: Cred,
}

impl Subject<'_> {
    fn bearer(&self) -> &str {
        match self.cred {
            Cred::Login => &self.user.token,
            Cred::Key => self.user.key.as_deref().expect("asked only with a key"),
        }
    }

    fn label(&self) -> String {
        match self.cred {
            Cred::Login => self.user.name.clone(),
            Cred::Key => format!("{} (API key)", self.user.name),
        }
    }
}

#[derive(Debug, Clone)]
enum Body {
    Empty,
    Json(Value),
    Bytes(&'static [u8]),
}

/// One well-formed request of a route.
#[derive(Debug, Clone)]
struct Probe {
    /// Which form of the route, when it has more than one.
    variant: &'static str,
    /// The scope the request names: P (`Some`), or the system.
    scope: Option<Uuid>,
    method: &'static str,
    /// Path and query.
    path: String,
    body: Body,
    headers: Vec<(&'static str, String)>,
    /// What it answers when allowed.
    ok: &'static [u16],
}

fn probe(method: &'static str, path: impl Into<String>, ok: &'static [u16]) -> Probe {
    Probe {
        variant: "",
        scope: None,
        method,
        path: path.into(),
        body: Body::Empty,
        headers: Vec::new(),
        ok,
    }
}

impl Probe {
    fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    fn bytes(mut self, body: &'static [u8]) -> Self {
        self.body = Body::Bytes(body);
        self
    }

    fn in_scope(mut self, project: Uuid) -> Self {
        self.scope = Some(project);
        self
    }

    fn variant(mut self, variant: &'static str) -> Self {
        self.variant = variant;
        self
    }

    fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

fn id(v: &Value) -> Uuid {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a UUID: {v}"))
}

/// The orchestrator, the bootstrap admin and what the setup made.
struct World {
    o: Orchestrator,
    /// The bootstrap admin's access token: every setup request.
    admin: String,
    /// The project every project-scope request is about.
    p: Uuid,
    /// The third user: a member of P who created [`World::task`].
    author: User,
    /// A task in P of the author.
    task: Uuid,
    /// An artifact of [`World::task`].
    artifact: Uuid,
    /// The group through which `g-member` holds its role in P.
    group: String,
    /// A registered node.
    node: String,
    /// An access audit event.
    audit_event: Uuid,
    /// The only user the access rules the matrix creates name: they change nothing else.
    rule_target: String,
    users: Vec<User>,
    next: AtomicU64,
    /// What the setup could not do, as rows of the report.
    setup_problems: Vec<String>,
}

impl World {
    /// A name nobody has used yet.
    fn fresh(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    async fn send(&self, bearer: Option<&str>, p: &Probe) -> (u16, String) {
        let method = reqwest::Method::from_bytes(p.method.as_bytes()).expect("an HTTP method");
        let mut req = self
            .o
            .http
            .request(method, format!("{}{}", self.o.gw, p.path));
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        for (name, value) in &p.headers {
            req = req.header(*name, value);
        }
        req = match &p.body {
            Body::Empty => req,
            Body::Json(v) => req.json(v),
            Body::Bytes(b) => req
                .header("content-type", "application/octet-stream")
                .body(b.to_vec()),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", p.method, p.path));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// A setup request of `bearer` that must succeed; its JSON answer.
    async fn must_as(&self, bearer: &str, p: Probe) -> Value {
        let (status, text) = self.send(Some(bearer), &p).await;
        assert!(
            (200..300).contains(&status),
            "setup {} {}: {status} {text}",
            p.method,
            p.path
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A setup request of the bootstrap admin that must succeed.
    async fn must(
        &self,
        method: &'static str,
        path: impl Into<String>,
        body: Option<Value>,
    ) -> Value {
        let mut p = probe(method, path, &[]);
        if let Some(body) = body {
            p = p.json(body);
        }
        self.must_as(&self.admin, p).await
    }

    /// Deny rows of the access audit with `user` as the subject.
    async fn denials(&self, user: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM access_control_audit_log WHERE subject_id = $1 AND decision = 'deny'",
        )
        .bind(user)
        .fetch_one(&self.o.db)
        .await
        .unwrap()
    }

    /// Deny rows of the access audit with `user` as the subject, filed under `task`.
    async fn task_denials(&self, user: Uuid, task: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM access_control_audit_log
             WHERE subject_id = $1 AND task_id = $2 AND decision = 'deny'",
        )
        .bind(user)
        .bind(task)
        .fetch_one(&self.o.db)
        .await
        .unwrap()
    }

    /// Grants `role` to a user or group at P (`Some`) or system scope; the binding's id.
    async fn grant(
        &self,
        role: Role,
        subject_type: &str,
        subject: &str,
        scope: Option<Uuid>,
    ) -> Uuid {
        let mut body = json!({"role": role, "subject_type": subject_type, "subject": subject,
                              "scope_type": if scope.is_some() { "project" } else { "system" }});
        if let Some(p) = scope {
            body["scope_id"] = json!(p);
        }
        id(&self.must("POST", "/v1/role-bindings", Some(body)).await["id"])
    }

    /// A new user without a password: (handle, set-password token).
    async fn fresh_user(&self) -> (String, String) {
        let handle = self.fresh("target");
        let created = self
            .must("POST", "/v1/users", Some(json!({"handle": handle})))
            .await;
        let token = created["set_password"]["token"]
            .as_str()
            .expect("a set-password token")
            .to_owned();
        (handle, token)
    }

    /// A new group, with the author as its member if `with_author`.
    async fn fresh_group(&self, with_author: bool) -> String {
        let slug = self.fresh("group");
        self.must("POST", "/v1/groups", Some(json!({"slug": slug})))
            .await;
        if with_author {
            self.must(
                "POST",
                format!("/v1/groups/{slug}/members"),
                Some(json!({"user": self.author.name})),
            )
            .await;
        }
        slug
    }

    /// A new project in which `user` holds what they hold in P.
    async fn fresh_project_like(&self, user: &User) -> Uuid {
        let slug = self.fresh("project");
        let project = id(&self
            .must(
                "POST",
                "/v1/projects",
                Some(json!({"slug": slug, "display_name": slug})),
            )
            .await["id"]);
        for (role, subject_type, subject) in &user.in_p {
            self.grant(*role, subject_type, subject, Some(project))
                .await;
        }
        project
    }

    /// A binding of the weakest role to a new user, at P (`Some`) or system scope.
    async fn fresh_binding(&self, scope: Option<Uuid>) -> Uuid {
        let (handle, _) = self.fresh_user().await;
        self.grant(Role::ALL[0], "user", &handle, scope).await
    }

    /// An access rule that matches nothing any request of the test asks.
    fn inert_rule(&self) -> Value {
        json!({"subject_type": "user", "subject": self.rule_target, "action": "node.read",
               "resource_type": "node", "resource_pattern": "matrix-no-such-node", "effect": "allow"})
    }

    /// A newly registered node, drained if `drained`.
    async fn fresh_node(&self, drained: bool) -> String {
        let slug = self.fresh("node");
        Node::register(&self.o, &slug, "http://127.0.0.1:9").await;
        if drained {
            self.must("POST", format!("/v1/nodes/{slug}/drain"), None)
                .await;
        }
        slug
    }

    /// A new script task of the author in P.
    async fn fresh_task(&self) -> Uuid {
        self.task_of(&self.author.token).await.0
    }

    /// A new script task in P created with `bearer`, and its job.
    async fn task_of(&self, bearer: &str) -> (Uuid, Uuid) {
        let task = id(&self
            .must_as(
                bearer,
                probe("POST", "/v1/tasks", &[]).json(
                    json!({"prompt": "echo matrix", "input_mode": "script", "project_id": self.p}),
                ),
            )
            .await["id"]);
        let job: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1")
            .bind(task)
            .fetch_one(&self.o.db)
            .await
            .unwrap();
        (task, job)
    }

    /// A console login of `who`: the `Cookie` header a browser would send back, and the
    /// session's CSRF token.
    async fn console_session(&self, who: &User) -> (String, String) {
        let resp = self
            .o
            .post_json(
                "/v1/auth/session",
                json!({"handle": who.name, "password": who.password(0)}),
            )
            .await;
        assert_eq!(resp.status(), 200, "console login of {}", who.name);
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("; ");
        let body: Value = resp.json().await.unwrap();
        (cookie, body["csrf_token"].as_str().unwrap().to_owned())
    }

    /// The handle and password a public route's request logs in with: the subject's own, or for
    /// a disabled subject (who cannot log in) the author's, so that the route is asked with a
    /// body that works.
    fn identity<'a>(&'a self, user: &'a User) -> &'a User {
        if user.enabled() { user } else { &self.author }
    }

    /// Well-formed requests of `route` for `s` (its fresh targets made here), or `None` for a
    /// route this test does not know how to ask.
    async fn probes(&self, route: &str, s: Subject<'_>) -> Option<Vec<Probe>> {
        let p = self.p;
        let user = s.user;
        let task = self.task;
        let one = |probe: Probe| Some(vec![probe]);
        match route {
            "POST /v1/auth/login" => {
                let who = self.identity(user);
                one(probe("POST", "/v1/auth/login", &[200])
                    .json(json!({"handle": who.name, "password": who.password(0)})))
            }
            "POST /v1/auth/refresh" => {
                let who = self.identity(user);
                let (_, refresh) = self.o.login(&who.name, &who.password(0)).await;
                one(probe("POST", "/v1/auth/refresh", &[200]).json(json!({"refresh_token": refresh})))
            }
            "POST /v1/auth/session" => {
                let who = self.identity(user);
                one(probe("POST", "/v1/auth/session", &[200])
                    .json(json!({"handle": who.name, "password": who.password(0)})))
            }
            // The session is the caller's, so an API key has none (a 400 says so).
            "GET /v1/auth/session" => one(probe(
                "GET",
                "/v1/auth/session",
                match s.cred {
                    Cred::Login => &[200],
                    Cred::Key => &[400],
                },
            )),
            "POST /v1/auth/session/refresh" | "DELETE /v1/auth/session" => {
                let (cookie, csrf) = self.console_session(self.identity(user)).await;
                let (method, path, ok): (_, _, &'static [u16]) = match route {
                    "DELETE /v1/auth/session" => ("DELETE", "/v1/auth/session", &[204]),
                    _ => ("POST", "/v1/auth/session/refresh", &[200]),
                };
                one(probe(method, path, ok)
                    .header("cookie", cookie)
                    .header("x-csrf-token", csrf))
            }
            "POST /v1/auth/set_password" => {
                let (_, token) = self.fresh_user().await;
                one(probe("POST", "/v1/auth/set_password", &[204])
                    .json(json!({"token": token, "password": "matrix-set-password-1"})))
            }
            "POST /v1/auth/logout" => one(probe(
                "POST",
                "/v1/auth/logout",
                match s.cred {
                    Cred::Login => &[204],
                    // Logout ends a session; a key is revoked instead (a 400 says so).
                    Cred::Key => &[400],
                },
            )),
            "POST /v1/users/me/password" => {
                // The final phase asks with the login first, then with the key.
                let (current, new) = match s.cred {
                    Cred::Login => (user.password(0), user.password(1)),
                    Cred::Key => (user.password(1), user.password(2)),
                };
                one(probe("POST", "/v1/users/me/password", &[204])
                    .json(json!({"current_password": current, "new_password": new})))
            }
            "GET /v1/users/me" => one(probe("GET", "/v1/users/me", &[200])),
            "POST /v1/users/me/api-keys" => one(
                probe("POST", "/v1/users/me/api-keys", &[201])
                    .json(json!({"name": self.fresh("key")})),
            ),
            "GET /v1/users/me/api-keys" => one(probe("GET", "/v1/users/me/api-keys", &[200])),
            "DELETE /v1/users/me/api-keys/{id}" => {
                // A key of theirs, made with their login; when the gateway cannot make one (the
                // create route's own case reports why), or for a disabled user, a key that does
                // not exist.
                let mut key = Uuid::new_v4();
                let mut variant = "";
                if user.enabled() {
                    let create = probe("POST", "/v1/users/me/api-keys", &[])
                        .json(json!({"name": self.fresh("key")}));
                    let (status, text) = self.send(Some(&user.token), &create).await;
                    if status == 201 {
                        key = id(&serde_json::from_str::<Value>(&text).unwrap()["id"]);
                    } else {
                        variant = "no key could be made: the id names none";
                    }
                }
                one(probe("DELETE", format!("/v1/users/me/api-keys/{key}"), &[204]).variant(variant))
            }
            "GET /v1/users/me/usage" => one(probe("GET", "/v1/users/me/usage", &[200])),
            "GET /v1/users" => one(probe("GET", "/v1/users", &[200])),
            "POST /v1/users" => one(
                probe("POST", "/v1/users", &[201]).json(json!({"handle": self.fresh("new")})),
            ),
            "GET /v1/users/{id}" => one(probe(
                "GET",
                format!("/v1/users/{}", self.author.id),
                &[200],
            )),
            "POST /v1/users/{id}/disable" => {
                let (target, _) = self.fresh_user().await;
                one(probe("POST", format!("/v1/users/{target}/disable"), &[200]))
            }
            "POST /v1/users/{id}/enable" => {
                let (target, _) = self.fresh_user().await;
                self.must("POST", format!("/v1/users/{target}/disable"), None)
                    .await;
                one(probe("POST", format!("/v1/users/{target}/enable"), &[200]))
            }
            "POST /v1/users/{id}/reset_password" => {
                let (target, _) = self.fresh_user().await;
                one(probe("POST", format!("/v1/users/{target}/reset_password"), &[200]).json(json!({})))
            }
            "POST /v1/users/{id}/revoke_sessions" => {
                let (target, _) = self.fresh_user().await;
                one(probe("POST", format!("/v1/users/{target}/revoke_sessions"), &[204]))
            }
            "GET /v1/groups" => one(probe("GET", "/v1/groups", &[200])),
            "POST /v1/groups" => one(
                probe("POST", "/v1/groups", &[201]).json(json!({"slug": self.fresh("group")})),
            ),
            "GET /v1/groups/{id}" => one(probe("GET", format!("/v1/groups/{}", self.group), &[200])),
            "PATCH /v1/groups/{id}" => {
                let group = self.fresh_group(false).await;
                one(probe("PATCH", format!("/v1/groups/{group}"), &[200])
                    .json(json!({"display_name": "renamed"})))
            }
            "GET /v1/groups/{id}/members" => one(probe(
                "GET",
                format!("/v1/groups/{}/members", self.group),
                &[200],
            )),
            "POST /v1/groups/{id}/members" => {
                let group = self.fresh_group(false).await;
                one(probe("POST", format!("/v1/groups/{group}/members"), &[204])
                    .json(json!({"user": self.author.name})))
            }
            "DELETE /v1/groups/{id}/members/{user}" => {
                let group = self.fresh_group(true).await;
                one(probe(
                    "DELETE",
                    format!("/v1/groups/{group}/members/{}", self.author.name),
                    &[204],
                ))
            }
            "GET /v1/projects" => one(probe("GET", "/v1/projects", &[200])),
            "POST /v1/projects" => {
                let slug = self.fresh("own");
                one(probe("POST", "/v1/projects", &[201])
                    .json(json!({"slug": slug, "display_name": slug})))
            }
            "GET /v1/projects/{id}" => one(probe("GET", format!("/v1/projects/{p}"), &[200]).in_scope(p)),
            "PATCH /v1/projects/{id}" => one(
                probe("PATCH", format!("/v1/projects/{p}"), &[200])
                    .json(json!({"description": "asked by the matrix"}))
                    .in_scope(p),
            ),
            "DELETE /v1/projects/{id}" => {
                // A fresh project where the subject holds what they hold in P: the table's
                // answer in P is the answer there.
                let q = self.fresh_project_like(user).await;
                one(probe("DELETE", format!("/v1/projects/{q}"), &[204]).in_scope(p))
            }
            "GET /v1/roles" => one(probe("GET", "/v1/roles", &[200])),
            "GET /v1/role-bindings" => Some(vec![
                probe(
                    "GET",
                    format!("/v1/role-bindings?scope_type=project&scope_id={p}"),
                    &[200],
                )
                .in_scope(p)
                .variant("project P"),
                probe("GET", "/v1/role-bindings", &[200]).variant("system scope"),
            ]),
            "POST /v1/role-bindings" => {
                let (in_p, _) = self.fresh_user().await;
                let (at_system, _) = self.fresh_user().await;
                let weakest = Role::ALL[0];
                Some(vec![
                    probe("POST", "/v1/role-bindings", &[201])
                        .json(json!({"role": weakest, "subject_type": "user", "subject": in_p,
                                     "scope_type": "project", "scope_id": p}))
                        .in_scope(p)
                        .variant("project P"),
                    probe("POST", "/v1/role-bindings", &[201])
                        .json(json!({"role": weakest, "subject_type": "user", "subject": at_system,
                                     "scope_type": "system"}))
                        .variant("system scope"),
                ])
            }
            "DELETE /v1/role-bindings/{id}" => {
                let in_p = self.fresh_binding(Some(p)).await;
                let at_system = self.fresh_binding(None).await;
                Some(vec![
                    probe("DELETE", format!("/v1/role-bindings/{in_p}"), &[204])
                        .in_scope(p)
                        .variant("project P"),
                    probe("DELETE", format!("/v1/role-bindings/{at_system}"), &[204])
                        .variant("system scope"),
                ])
            }
            "GET /v1/access-rules" => one(probe("GET", "/v1/access-rules", &[200])),
            "POST /v1/access-rules" => {
                one(probe("POST", "/v1/access-rules", &[201]).json(self.inert_rule()))
            }
            "DELETE /v1/access-rules/{id}" => {
                let rule = id(&self
                    .must("POST", "/v1/access-rules", Some(self.inert_rule()))
                    .await["id"]);
                one(probe("DELETE", format!("/v1/access-rules/{rule}"), &[204]))
            }
            "GET /v1/audit" => one(probe("GET", "/v1/audit", &[200])),
            "GET /v1/audit/{id}" => one(probe(
                "GET",
                format!("/v1/audit/{}", self.audit_event),
                &[200],
            )),
            "GET /v1/audit/mcp" => one(probe("GET", "/v1/audit/mcp", &[200])),
            "GET /v1/nodes" => one(probe("GET", "/v1/nodes", &[200])),
            "GET /v1/nodes/{slug}" => one(probe("GET", format!("/v1/nodes/{}", self.node), &[200])),
            "DELETE /v1/nodes/{slug}" => {
                let node = self.fresh_node(false).await;
                one(probe("DELETE", format!("/v1/nodes/{node}"), &[204]))
            }
            "POST /v1/nodes/{slug}/drain" => {
                let node = self.fresh_node(false).await;
                one(probe("POST", format!("/v1/nodes/{node}/drain"), &[200]))
            }
            "POST /v1/nodes/{slug}/undrain" => {
                let node = self.fresh_node(true).await;
                one(probe("POST", format!("/v1/nodes/{node}/undrain"), &[200]))
            }
            "POST /v1/tasks" => one(
                probe("POST", "/v1/tasks", &[201])
                    .json(json!({"prompt": "echo asked", "input_mode": "script", "project_id": p}))
                    .in_scope(p),
            ),
            "GET /v1/tasks" => one(probe("GET", "/v1/tasks", &[200])),
            "GET /v1/tasks/{id}" => one(probe("GET", format!("/v1/tasks/{task}"), &[200]).in_scope(p)),
            "GET /v1/tasks/{id}/result" => {
                one(probe("GET", format!("/v1/tasks/{task}/result"), &[200]).in_scope(p))
            }
            "GET /v1/tasks/{id}/steps" => {
                one(probe("GET", format!("/v1/tasks/{task}/steps"), &[200]).in_scope(p))
            }
            "GET /v1/tasks/{id}/logs" => {
                one(probe("GET", format!("/v1/tasks/{task}/logs"), &[200]).in_scope(p))
            }
            "POST /v1/tasks/{id}/cancel" => {
                let fresh = self.fresh_task().await;
                one(probe("POST", format!("/v1/tasks/{fresh}/cancel"), &[200]).in_scope(p))
            }
            "GET /v1/tasks/{id}/artifacts" => {
                one(probe("GET", format!("/v1/tasks/{task}/artifacts"), &[200]).in_scope(p))
            }
            "PUT /v1/tasks/{id}/artifacts" => one(
                probe(
                    "PUT",
                    format!("/v1/tasks/{task}/artifacts?path=matrix/{}.txt", self.fresh("put")),
                    &[201],
                )
                .bytes(b"written by the matrix")
                .in_scope(p),
            ),
            "GET /v1/tasks/{id}/artifacts/{artifact_id}" => one(
                probe(
                    "GET",
                    format!("/v1/tasks/{task}/artifacts/{}", self.artifact),
                    &[200],
                )
                .in_scope(p),
            ),
            "GET /v1/prefs" => one(probe("GET", "/v1/prefs?scope_type=user", &[200])),
            "GET /v1/prefs/effective" => one(probe("GET", "/v1/prefs/effective", &[200])),
            "GET /v1/prefs/{scope_type}/{key}" => {
                let key = self.user_pref(user).await;
                one(probe("GET", format!("/v1/prefs/user/{key}"), &[200]))
            }
            "PUT /v1/prefs/{scope_type}/{key}" => one(
                probe("PUT", format!("/v1/prefs/user/{}", self.fresh("pref")), &[201])
                    .json(json!({"value": "set by the matrix"})),
            ),
            "DELETE /v1/prefs/{scope_type}/{key}" => {
                let key = self.user_pref(user).await;
                one(probe("DELETE", format!("/v1/prefs/user/{key}"), &[204]))
            }
            "GET /v1/models" => one(
                probe("GET", "/v1/models", &[200])
                    .header("OpenAI-Project", p)
                    .in_scope(p),
            ),
            "POST /v1/chat/completions" => one(
                // Allowed: the thread is stored, then no node serves the model (404).
                probe("POST", "/v1/chat/completions", &[404])
                    .json(json!({"model": NO_SUCH_MODEL, "messages": [{"role": "user", "content": "hi"}]}))
                    .header("OpenAI-Project", p)
                    .in_scope(p),
            ),
            "GET /v1/chat/threads" => one(probe("GET", "/v1/chat/threads", &[200])),
            "POST /v1/chat/threads" => one(probe("POST", "/v1/chat/threads", &[201])
                .json(json!({"project_id": p}))
                .in_scope(p)),
            "GET /v1/chat/threads/{id}/messages" => one(probe(
                "GET",
                format!("/v1/chat/threads/{}/messages", user.thread),
                &[200],
            )),
            "GET /healthz" => one(probe("GET", "/healthz", &[200])),
            // Ready or not (no node is ready here): either way it answers without a login.
            "GET /readyz" => one(probe("GET", "/readyz", &[200, 503])),
            "GET /openapi.json" => one(probe("GET", "/openapi.json", &[200])),
            _ => None,
        }
    }

    /// A new user-scope preference of `user`, written by the admin; its key.
    async fn user_pref(&self, user: &User) -> String {
        let key = self.fresh("pref");
        self.must(
            "PUT",
            format!("/v1/prefs/user/{key}?scope_id={}", user.id),
            Some(json!({"value": "set for them"})),
        )
        .await;
        key
    }

    /// Sends `probe` as `s` and compares the answer and the subject's new deny rows with
    /// `expected`; a mismatch becomes a row of the report.
    async fn case(
        &self,
        s: Subject<'_>,
        case: &str,
        probe: &Probe,
        expected: Expect,
    ) -> Option<String> {
        let before = self.denials(s.user.id).await;
        let (status, body) = self.send(Some(s.bearer()), probe).await;
        let rows = self.denials(s.user.id).await - before;
        (!expected.holds(status, rows)).then(|| {
            let body: String = body.chars().take(160).collect();
            format!(
                "| {} | {case} | {} | {status} + {rows} deny row(s): {body} |",
                s.label(),
                expected.describe()
            )
        })
    }

    /// Asks every route of `routes` as each of `user`'s credentials, one request at a time (the
    /// deny rows are counted per user). Returns (cases, mismatches, routes without a builder).
    async fn ask_routes(
        &self,
        user: &User,
        routes: &[(&str, &str)],
    ) -> (usize, Vec<String>, BTreeSet<String>) {
        let mut cases = 0;
        let mut mismatches = Vec::new();
        let mut unknown = BTreeSet::new();
        let creds = [Cred::Login, Cred::Key];
        for cred in creds
            .into_iter()
            .filter(|c| *c == Cred::Login || user.key.is_some())
        {
            let s = Subject { user, cred };
            for &(route, need) in routes {
                let Some(probes) = self.probes(route, s).await else {
                    unknown.insert(route.to_owned());
                    continue;
                };
                for probe in probes {
                    let expected = expect(route, need, &probe, s);
                    let case = if probe.variant.is_empty() {
                        route.to_owned()
                    } else {
                        format!("{route} [{}]", probe.variant)
                    };
                    cases += 1;
                    mismatches.extend(self.case(s, &case, &probe, expected).await);
                }
            }
        }
        (cases, mismatches, unknown)
    }

    /// The `own` column: a subject whose role in P allows cancelling (and adding artifacts to)
    /// only their own tasks does so on their own task, and is refused on the author's.
    async fn own_column(&self) -> (usize, Vec<String>) {
        let p = Some(self.p);
        let mut cases = 0;
        let mut mismatches = Vec::new();
        for user in self.users.iter().filter(|u| u.enabled()) {
            let s = Subject {
                user,
                cred: Cred::Login,
            };
            let only_own = |action: &str| {
                table_allows(&user.bindings, action, p, true)
                    && !table_allows(&user.bindings, action, p, false)
            };
            if only_own("task.cancel") {
                let (own, _) = self.task_of(&user.token).await;
                let theirs = self.fresh_task().await;
                for (case, task, expected) in [
                    ("own task", own, Expect::Allow(&[200])),
                    (
                        "the author's task",
                        theirs,
                        Expect::Deny(denial_status(&user.bindings, p)),
                    ),
                ] {
                    let probe = probe("POST", format!("/v1/tasks/{task}/cancel"), &[200]);
                    cases += 1;
                    mismatches.extend(
                        self.case(
                            s,
                            &format!("POST /v1/tasks/{{id}}/cancel [{case}]"),
                            &probe,
                            expected,
                        )
                        .await,
                    );
                }
            }
            if only_own("artifact.write") {
                let (own, _) = self.task_of(&user.token).await;
                let probe = probe(
                    "PUT",
                    format!("/v1/tasks/{own}/artifacts?path=own.txt"),
                    &[201],
                )
                .bytes(b"mine");
                cases += 1;
                mismatches.extend(
                    self.case(
                        s,
                        "PUT /v1/tasks/{id}/artifacts [own task]",
                        &probe,
                        Expect::Allow(&[201]),
                    )
                    .await,
                );
            }
        }
        (cases, mismatches)
    }

    /// Every tool of `[tools]`, called by the agents of each owner's task in P (as a sandbox
    /// agent and as the task's analyst, where the catalog lets that agent type call it).
    async fn ask_tools(&self, owner: &User) -> (usize, Vec<String>) {
        let (task, job) = owner.task.expect("an owner has a task");
        let mcp = self.o.mcp();
        let mut cases = 0;
        let mut mismatches = Vec::new();
        for (tool, action) in &authz::policy().tools {
            let Some(def) = tools::find(tool) else {
                mismatches.push(format!(
                    "| {} | tool {tool} | in the catalog | not a tool of the MCP gateway |",
                    owner.name
                ));
                continue;
            };
            let allowed = table_allows(&owner.bindings, action, Some(self.p), true);
            for agent_type in [AgentType::Sandbox, AgentType::Pa] {
                if !def.roles.contains(&agent_type) {
                    continue;
                }
                let agent = match agent_type {
                    AgentType::Sandbox => Agent::sandbox(owner.id, task, job, Some(self.p)),
                    _ => Agent::analyst(owner.id, task),
                };
                let token = self.o.agent_token(&agent);
                let Some(args) = tool_args(tool, task, job, self.p, &self.fresh("n")) else {
                    mismatches.push(format!(
                        "| {} | tool {tool} | arguments | authz_matrix.rs does not know this tool's arguments |",
                        owner.name
                    ));
                    continue;
                };
                cases += 1;
                let before = self.task_denials(owner.id, task).await;
                let answer = mcp.call(Some(&token), tool, args).await;
                let rows = self.task_denials(owner.id, task).await - before;
                let holds = if allowed {
                    answer["status"] == "success" && rows == 0
                } else {
                    answer["error"]["type"] == "access_denied" && rows == 1
                };
                if !holds {
                    mismatches.push(format!(
                        "| {} ({} agent) | tool {tool} ({action}) | {} | {} {} + {rows} deny row(s): {} |",
                        owner.name,
                        agent_type.as_str(),
                        if allowed { "success, no deny row" } else { "access_denied + 1 deny row" },
                        answer["status"],
                        answer["error"]["type"],
                        answer["error"]["message"]
                    ));
                }
            }
        }
        (cases, mismatches)
    }

    /// A disabled owner's agents are refused as unauthenticated.
    async fn disabled_owner(&self) -> Vec<String> {
        let owner = self
            .users
            .iter()
            .find(|u| !u.enabled())
            .expect("a disabled user");
        let (task, job) = owner.task.expect("the disabled user created a task");
        let mcp = self.o.mcp();
        let mut mismatches = Vec::new();
        for agent in [
            Agent::sandbox(owner.id, task, job, Some(self.p)),
            Agent::analyst(owner.id, task),
        ] {
            let answer = mcp
                .call(
                    Some(&self.o.agent_token(&agent)),
                    "help.get",
                    json!({"task_id": task}),
                )
                .await;
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            if answer["error"]["type"] != "unauthenticated" || !message.contains("disabled") {
                mismatches.push(format!(
                    "| {} ({} agent, owner disabled) | tool help.get | unauthenticated (disabled) | {answer} |",
                    owner.name,
                    agent.agent_type.as_str()
                ));
            }
        }
        mismatches
    }

    /// An access rule denying `mcp.tool.invoke` of `artifact.put` to a group holds for its
    /// members' agents (audited, naming the rule), and for nothing else.
    async fn group_rule(&self) -> Vec<String> {
        let tool = "artifact.put";
        let action = &authz::policy().tools[tool];
        let allowed: Vec<&User> = self
            .users
            .iter()
            .filter(|u| u.task.is_some() && u.enabled())
            .filter(|u| table_allows(&u.bindings, action, Some(self.p), true))
            .collect();
        assert!(
            allowed.len() >= 2,
            "two owners whose roles allow {tool}, one inside the group and one outside"
        );
        let (inside, outside) = (allowed[0], allowed[1]);
        let group = self.fresh_group(false).await;
        self.must(
            "POST",
            format!("/v1/groups/{group}/members"),
            Some(json!({"user": inside.name})),
        )
        .await;
        let rule = id(&self
            .must(
                "POST",
                "/v1/access-rules",
                Some(json!({"subject_type": "group", "subject": group, "action": "mcp.tool.invoke",
                            "resource_type": "mcp.tool", "resource_pattern": tool, "effect": "deny"})),
            )
            .await["id"]);
        let mcp = self.o.mcp();
        let mut mismatches = Vec::new();
        for (owner, called, denied) in [
            (inside, tool, true),
            (inside, "artifact.list", false),
            (outside, tool, false),
        ] {
            let (task, job) = owner.task.unwrap();
            let token = self
                .o
                .agent_token(&Agent::sandbox(owner.id, task, job, Some(self.p)));
            let args = tool_args(called, task, job, self.p, &self.fresh("ruled")).unwrap();
            let before = self.task_denials(owner.id, task).await;
            let answer = mcp.call(Some(&token), called, args).await;
            let rows = self.task_denials(owner.id, task).await - before;
            let (holds, expected) = if denied {
                let (audited_action, resource_type, resource, reason): (
                    String,
                    String,
                    String,
                    String,
                ) = sqlx::query_as(
                    "SELECT action, resource_type, resource, coalesce(reason, '')
                         FROM access_control_audit_log
                         WHERE subject_id = $1 AND task_id = $2 AND decision = 'deny'
                         ORDER BY created_at DESC LIMIT 1",
                )
                .bind(owner.id)
                .bind(task)
                .fetch_optional(&self.o.db)
                .await
                .unwrap()
                .unwrap_or_default();
                (
                    answer["error"]["type"] == "access_denied"
                        && rows == 1
                        && audited_action == "mcp.tool.invoke"
                        && resource_type == "mcp.tool"
                        && resource == tool
                        && reason.contains(&rule.to_string()),
                    "access_denied + 1 deny row naming the rule",
                )
            } else {
                (
                    answer["status"] == "success" && rows == 0,
                    "success, no deny row",
                )
            };
            if !holds {
                mismatches.push(format!(
                    "| {} ({}in group {group}) | tool {called} under a group deny rule | {expected} | {answer} + {rows} deny row(s) |",
                    owner.name,
                    if owner.id == inside.id { "" } else { "not " }
                ));
            }
        }
        mismatches
    }
}

/// What the table says `s` gets for `probe` of `route`, which needs `need`.
fn expect(route: &str, need: &str, probe: &Probe, s: Subject<'_>) -> Expect {
    let bindings = &s.user.bindings;
    match need {
        "public" => Expect::Allow(probe.ok),
        _ if !s.user.enabled() => Expect::Refused(401),
        "self" if s.cred == Cred::Key && SESSION_ONLY.contains(&route) => Expect::Refused(403),
        "self" => Expect::Allow(probe.ok),
        action if table_allows(bindings, action, probe.scope, false) => Expect::Allow(probe.ok),
        _ => Expect::Deny(denial_status(bindings, probe.scope)),
    }
}

/// Well-formed arguments of `tool` for the agents of `task` (job `job`) in project `p`; `n`
/// keeps writes apart.
fn tool_args(tool: &str, task: Uuid, job: Uuid, p: Uuid, n: &str) -> Option<Value> {
    Some(match tool {
        "help.get" | "db.task.get" | "artifact.list" | "db.preference.effective" => {
            json!({"task_id": task})
        }
        "db.job.get" => json!({"job_id": job}),
        "db.preference.get" => json!({"scope_type": "project", "scope_id": p, "key": PREF_KEY}),
        "db.preference.list" => json!({"scope_type": "project", "scope_id": p}),
        "artifact.get" => json!({"task_id": task, "path": SETUP_ARTIFACT}),
        "artifact.put" => {
            json!({"task_id": task, "path": format!("out/{n}.txt"), "content_bytes_base64": "aGk="})
        }
        "memory.add" => json!({"task_id": task, "job_id": job, "key": n, "content": "c"}),
        "memory.list" => json!({"task_id": task, "job_id": job}),
        "memory.retrieve" => json!({"task_id": task, "job_id": job, "key": "keep"}),
        "memory.delete" => json!({"task_id": task, "job_id": job, "key": "drop"}),
        _ => return None,
    })
}

impl World {
    /// The orchestrator, the users (each created once: Argon2 is slow), their roles, P and what
    /// the requests need, all through the API as the bootstrap admin.
    async fn setup() -> Self {
        let policy = authz::policy();
        // Every subject logs in, some several times: far above the login limit otherwise.
        let o = Orchestrator::start(&[("RATE_LIMIT_PER_MINUTE", "100000")]).await;
        let admin = o.admin_token().await;
        let placeholder = || User {
            name: String::new(),
            id: Uuid::nil(),
            holds: Holds::Nothing,
            bindings: Vec::new(),
            in_p: Vec::new(),
            token: String::new(),
            key: None,
            thread: Uuid::nil(),
            task: None,
        };
        let mut w = World {
            o,
            admin,
            p: Uuid::nil(),
            author: placeholder(),
            task: Uuid::nil(),
            artifact: Uuid::nil(),
            group: "matrix-members".into(),
            node: "matrix-node".into(),
            audit_event: Uuid::nil(),
            rule_target: String::new(),
            users: Vec::new(),
            next: AtomicU64::new(0),
            setup_problems: Vec::new(),
        };
        w.p = id(&w
            .must(
                "POST",
                "/v1/projects",
                Some(json!({"slug": "matrix-p", "display_name": "P"})),
            )
            .await["id"]);
        let p = w.p;

        // Who asks: each role at system scope (the roles `[system_in_projects]` maps), each role
        // in P, a role through a group, no role, a disabled user; and the author.
        let member = Role::Member;
        let mut specs: Vec<(String, Holds)> = Role::ALL
            .into_iter()
            .filter(|r| policy.system_in_projects.contains_key(r))
            .map(|r| (format!("sys-{r}"), Holds::System(r)))
            .chain(
                Role::ALL
                    .into_iter()
                    .map(|r| (format!("p-{r}"), Holds::Project(r))),
            )
            .collect();
        specs.push(("g-member".into(), Holds::Group(member)));
        specs.push(("norole".into(), Holds::Nothing));
        specs.push(("disabled".into(), Holds::Disabled));
        specs.push(("author".into(), Holds::Project(member)));
        let created: Vec<(User, Option<String>)> = futures::stream::iter(specs)
            .map(|(name, holds)| {
                let w = &w;
                async move {
                    let body = json!({"handle": name, "password": password(0)});
                    let user_id = id(&w.must("POST", "/v1/users", Some(body)).await["user"]["id"]);
                    let (token, _) = w.o.login(&name, &password(0)).await;
                    let create = probe("POST", "/v1/users/me/api-keys", &[])
                        .json(json!({"name": "matrix"}));
                    let (status, text) = w.send(Some(&token), &create).await;
                    let (key, problem) = if status == 201 {
                        let created: Value = serde_json::from_str(&text).unwrap();
                        (created["key"].as_str().map(str::to_owned), None)
                    } else {
                        let text: String = text.chars().take(160).collect();
                        let problem = format!(
                            "| {name} (API key) | POST /v1/users/me/api-keys (setup) | 201 | {status}: {text} (this API-key subject is not asked) |"
                        );
                        (None, Some(problem))
                    };
                    let user = User {
                        name,
                        id: user_id,
                        holds,
                        token,
                        key,
                        ..placeholder()
                    };
                    (user, problem)
                }
            })
            .buffered(PARALLEL)
            .collect()
            .await;

        // Roles. A task in P needs `task.create` there: who must own one without holding such a
        // role (a viewer, the user with no role) holds the weakest role that allows it while
        // they create it, and loses it once the setup is done.
        let creator = Role::ALL
            .into_iter()
            .find(|r| table_allows(&[(*r, Some(p))], "task.create", Some(p), false))
            .expect("a role that creates tasks");
        w.must("POST", "/v1/groups", Some(json!({"slug": w.group})))
            .await;
        let mut temporary = Vec::new();
        let mut users = Vec::new();
        for (mut user, problem) in created {
            if user.name != "author" {
                // The author is no subject: their key is never asked.
                w.setup_problems.extend(problem);
            }
            match user.holds {
                Holds::System(role) => {
                    w.grant(role, "user", &user.name, None).await;
                    user.bindings = vec![(role, None)];
                }
                Holds::Project(role) => {
                    w.grant(role, "user", &user.name, Some(p)).await;
                    user.bindings = vec![(role, Some(p))];
                    user.in_p = vec![(role, "user", user.name.clone())];
                    if !table_allows(&user.bindings, "task.create", Some(p), false) {
                        temporary.push(w.grant(creator, "user", &user.name, Some(p)).await);
                    }
                }
                Holds::Group(role) => {
                    w.must(
                        "POST",
                        format!("/v1/groups/{}/members", w.group),
                        Some(json!({"user": user.name})),
                    )
                    .await;
                    w.grant(role, "group", &w.group, Some(p)).await;
                    user.bindings = vec![(role, Some(p))];
                    user.in_p = vec![(role, "group", w.group.clone())];
                }
                Holds::Nothing => {
                    temporary.push(w.grant(creator, "user", &user.name, Some(p)).await);
                }
                Holds::Disabled => {
                    // Keeps the role: their agent must be refused for being disabled.
                    w.grant(creator, "user", &user.name, Some(p)).await;
                    user.bindings = vec![(creator, Some(p))];
                }
            }
            if user.name == "author" {
                w.author = user;
            } else {
                users.push(user);
            }
        }

        // The author's task in P and an artifact of it.
        let (task, _) = w.task_of(&w.author.token).await;
        w.task = task;
        let artifact = w
            .must_as(
                &w.author.token,
                probe(
                    "PUT",
                    format!("/v1/tasks/{task}/artifacts?path=setup/a.txt"),
                    &[],
                )
                .bytes(b"the author's file"),
            )
            .await;
        w.artifact = id(&artifact["artifact_id"]);
        Node::register(&w.o, &w.node, "http://127.0.0.1:9").await;
        w.must(
            "PUT",
            format!("/v1/prefs/project/{PREF_KEY}?scope_id={p}"),
            Some(json!({"value": "project value"})),
        )
        .await;
        w.rule_target = w.fresh_user().await.0;

        // Each user's chat thread (stored before the unknown model is refused), and for the
        // owners of the MCP matrix a task in P with its artifact and notes.
        let mcp = w.o.mcp();
        for user in &mut users {
            let (status, text) = w
                .send(
                    Some(&user.token),
                    &probe("POST", "/v1/chat/completions", &[]).json(
                        json!({"model": NO_SUCH_MODEL, "messages": [{"role": "user", "content": "hello"}]}),
                    ),
                )
                .await;
            assert_eq!(
                status, 404,
                "the setup's chat message of {}: {text}",
                user.name
            );
            user.thread = sqlx::query_scalar("SELECT id FROM chat_threads WHERE user_id = $1")
                .bind(user.id)
                .fetch_one(&w.o.db)
                .await
                .unwrap();
            if matches!(
                user.holds,
                Holds::Project(_) | Holds::Nothing | Holds::Disabled
            ) {
                let (task, job) = w.task_of(&user.token).await;
                w.must_as(
                    &w.admin,
                    probe(
                        "PUT",
                        format!("/v1/tasks/{task}/artifacts?path={SETUP_ARTIFACT}"),
                        &[],
                    )
                    .bytes(b"setup"),
                )
                .await;
                let sandbox =
                    w.o.agent_token(&Agent::sandbox(user.id, task, job, Some(p)));
                for key in ["keep", "drop"] {
                    let added = mcp
                        .call(
                            Some(&sandbox),
                            "memory.add",
                            json!({"task_id": task, "job_id": job, "key": key, "content": "note"}),
                        )
                        .await;
                    assert_eq!(added["status"], "success", "{added}");
                }
                user.task = Some((task, job));
            }
        }

        // Roles as the matrix asks them: temporary ones end, the disabled user is disabled.
        for binding in temporary {
            w.must("DELETE", format!("/v1/role-bindings/{binding}"), None)
                .await;
        }
        let disabled = users.iter().find(|u| !u.enabled()).unwrap().name.clone();
        w.must("POST", format!("/v1/users/{disabled}/disable"), None)
            .await;
        w.audit_event = sqlx::query_scalar(
            "SELECT id FROM access_control_audit_log ORDER BY created_at, id LIMIT 1",
        )
        .fetch_one(&w.o.db)
        .await
        .unwrap();
        w.users = users;
        w
    }
}

/// Every route `/openapi.json` documents is in `policy.toml` `[routes]`, and every entry there is
/// documented or at least served; every tool a user's agent may call is in `[tools]` and the
/// other way round.
#[tokio::test]
async fn the_table_lists_every_route_and_tool_and_nothing_else() {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let o = Orchestrator::start(&[]).await;
    let policy = authz::policy();
    let doc = o.openapi(&o.gw).await;
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths in /openapi.json")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter(|m| METHODS.contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let listed: BTreeSet<String> = policy.routes.keys().cloned().collect();
    let mut problems = Vec::new();
    for route in documented.difference(&listed) {
        problems.push(format!(
            "{route}: documented in /openapi.json, missing from policy.toml [routes]"
        ));
    }
    for route in listed.difference(&documented) {
        // Not documented (the document does not describe itself): the gateway must still serve
        // it, or the entry is stale. The router answers an unknown path 404, a known path with
        // another method 405; any route answers an anonymous request otherwise.
        let (method, path) = route.split_once(' ').expect("METHOD /path");
        let resp = o
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", o.gw),
            )
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if status == 404 || status == 405 {
            problems.push(format!(
                "{route}: in policy.toml [routes] but neither documented nor served ({status})"
            ));
        } else {
            eprintln!("note: {route} is served ({status}) but not in /openapi.json");
        }
    }
    for route in &listed {
        let (method, path) = route.split_once(' ').unwrap();
        if policy.route(method, path).is_none() {
            problems.push(format!(
                "{route}: its need {} is no action",
                policy.routes[route]
            ));
        }
    }
    let user_agents = [AgentType::Sandbox, AgentType::Pa];
    for (tool, action) in &policy.tools {
        match tools::find(tool) {
            None => problems.push(format!("[tools] {tool}: no such tool in the MCP catalog")),
            Some(def) if !def.roles.iter().any(|r| user_agents.contains(r)) => problems.push(
                format!("[tools] {tool}: only the Project Manager may call it"),
            ),
            Some(_) if policy.tool(tool).is_none() => {
                problems.push(format!("[tools] {tool}: {action} is no action"))
            }
            Some(_) => {}
        }
    }
    for def in tools::all() {
        if def.roles.iter().any(|r| user_agents.contains(r)) && !policy.tools.contains_key(def.name)
        {
            problems.push(format!(
                "tool {}: a user's agent may call it, but [tools] does not list it (every call would be denied)",
                def.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every route asked by every subject, the `own` column, every tool for owners of each role,
/// a disabled owner and a group's access rule: all as `policy.toml` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_tool_decides_as_the_table_says() {
    let started = Instant::now();
    let w = World::setup().await;
    let policy = authz::policy();
    eprintln!("setup: {:.1?}", started.elapsed());
    let mut mismatches = w.setup_problems.clone();
    let mut cases = 0;

    // The routes, all subjects of one user one request at a time (their deny rows are counted),
    // users side by side.
    let routes: Vec<(&str, &str)> = policy
        .routes
        .iter()
        .filter(|(r, _)| !FINAL.contains(&r.as_str()))
        .map(|(r, n)| (r.as_str(), n.as_str()))
        .collect();
    let asked: Vec<_> = futures::stream::iter(&w.users)
        .map(|u| w.ask_routes(u, &routes))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut unknown = BTreeSet::new();
    for (n, m, u) in asked {
        cases += n;
        mismatches.extend(m);
        unknown.extend(u);
    }
    for route in unknown {
        mismatches.push(format!(
            "| every subject | {route} | a request | authz_matrix.rs cannot build one: add it |"
        ));
    }
    eprintln!("routes: {cases} cases, {:.1?}", started.elapsed());

    let (n, m) = w.own_column().await;
    eprintln!("own column: {n} cases");
    cases += n;
    mismatches.extend(m);

    // The tools, each owner's calls one at a time, owners side by side.
    let owners: Vec<&User> = w
        .users
        .iter()
        .filter(|u| u.task.is_some() && u.enabled())
        .collect();
    let called: Vec<_> = futures::stream::iter(owners)
        .map(|u| w.ask_tools(u))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut tool_cases = 0;
    for (n, m) in called {
        tool_cases += n;
        mismatches.extend(m);
    }
    mismatches.extend(w.disabled_owner().await);
    mismatches.extend(w.group_rule().await);
    tool_cases += 5;
    cases += tool_cases;
    eprintln!("tools: {tool_cases} cases, {:.1?}", started.elapsed());

    // Last, what ends sessions: each user's login changes the password and logs out, then
    // their key does the same.
    let last: Vec<(&str, &str)> = FINAL
        .iter()
        .filter_map(|r| policy.routes.get_key_value(*r))
        .map(|(r, n)| (r.as_str(), n.as_str()))
        .collect();
    let finals: Vec<_> = futures::stream::iter(&w.users)
        .map(|u| w.ask_routes(u, &last))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for (n, m, _) in finals {
        cases += n;
        mismatches.extend(m);
    }
    eprintln!("{cases} cases in {:.1?}", started.elapsed());

    // Setup failures first, then the cases in a stable order.
    mismatches[w.setup_problems.len()..].sort();
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases differ from policy.toml:\n| subject | case | expected | got |\n|---|---|---|---|\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
