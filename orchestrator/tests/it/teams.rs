//! Teams against the real `cynode-orchestrator` binary on real PostgreSQL: the upgrade path from
//! the schema before the teams migration (a database as the previous release left it), and the
//! bad input the team routes must refuse without writing anything.

use crate::common;

use std::path::Path;
use std::process::Stdio;

use common::{ADMIN_PASSWORD, JWT_SECRET, LIMIT, Orchestrator, PSK};
use cynode_e2e::process::{ChildGuard, binary};
use cynode_e2e::{DevEnv, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolOptions;
use tokio::process::Command;
use uuid::Uuid;

/// The migration that brought teams; the upgrade tests start from the schema before it.
const TEAMS_MIGRATION: i64 = 20261207000001;
/// A password long enough for the policy that contains none of the tests' handles.
const PASSWORD: &str = "correct-horse-battery-staple";

/// `cynode-orchestrator all` on `database_url`, killed when dropped, with its HTTP handle.
struct Binary {
    _child: ChildGuard,
    dir: tempfile::TempDir,
    o: Orchestrator,
}

impl Binary {
    /// Starts the binary (which migrates the database) and waits until its gateway answers;
    /// fails with the process's log if it exits first.
    async fn start(database_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let password_file = dir.path().join("admin-password");
        std::fs::write(&password_file, ADMIN_PASSWORD).unwrap();
        let (cp_port, gw_port) = (free_port(), free_port());
        let mut cmd = Command::new(binary("cynode-orchestrator"));
        cmd.arg("all")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("PM_REQUIRED", "false")
            .env("DATABASE_URL", database_url)
            // The binary, this test's pool and the other tests share one PostgreSQL.
            .env("DATABASE_POOL_SIZE", "4")
            .env("JWT_SECRET", JWT_SECRET)
            .env("NODE_REGISTRATION_PSK", PSK)
            .env("BOOTSTRAP_ADMIN_PASSWORD_FILE", &password_file)
            .env("CONTROL_PLANE_LISTEN_ADDR", format!("127.0.0.1:{cp_port}"))
            .env("USER_GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gw_port}"))
            .env("MCP_LISTEN_ADDR", "127.0.0.1:0")
            .env(
                "ORCHESTRATOR_PUBLIC_URL",
                format!("http://127.0.0.1:{cp_port}"),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        let mut child = ChildGuard::spawn(&mut cmd);
        let gw = format!("http://127.0.0.1:{gw_port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
                panic!("the orchestrator exited ({status}) before it served:\n{log}");
            }
            if let Ok(resp) = http.get(format!("{gw}/healthz")).send().await
                && resp.status() == 200
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the orchestrator did not serve within {LIMIT:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let o = Orchestrator {
            running: None,
            gw,
            cp: format!("http://127.0.0.1:{cp_port}"),
            db: PgPoolOptions::new()
                .max_connections(2)
                .connect(database_url)
                .await
                .unwrap(),
            database_url: database_url.to_owned(),
            http,
        };
        Self {
            _child: child,
            dir,
            o,
        }
    }

    /// The process's log so far, for a failure message.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

/// `(status, JSON body or Null)` of a gateway request with `token`.
async fn send(
    o: &Orchestrator,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = o
        .http
        .request(method, format!("{}{path}", o.gw))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Asserts a problem+json answer of `status` whose detail names `needle`.
fn refused(answer: &(u16, Value), status: u16, needle: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "detail {detail:?} should name {needle:?}"
    );
}

/// Whether `detail` names `field` as a word of its own.
fn names_field(detail: &str, field: &str) -> bool {
    detail
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word == field)
}

/// Every table the team routes write, as text: equal before and after means nothing was
/// written. (Sessions and the auth audit are left out: logging in writes them.) The access
/// audit counts only its `allow` rows, since a refusal may well add a `deny`.
async fn written(o: &Orchestrator) -> Vec<(String, String)> {
    let mut state = Vec::new();
    for table in [
        "users",
        "password_credentials",
        "password_set_tokens",
        "projects",
        "groups",
        "group_memberships",
        "role_bindings",
        "access_control_rules",
        "api_keys",
        "tasks",
    ] {
        let digest: String = sqlx::query_scalar(&format!(
            "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))
             FROM {table} t"
        ))
        .fetch_one(&o.db)
        .await
        .unwrap();
        state.push((table.to_owned(), digest));
    }
    let allowed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_control_audit_log WHERE decision = 'allow'",
    )
    .fetch_one(&o.db)
    .await
    .unwrap();
    state.push(("allowed audit rows".into(), allowed.to_string()));
    state
}

/// Denial rows of the access audit: (actor handle, action, resource, reason).
async fn denials(o: &Orchestrator) -> Vec<(Option<String>, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT subject_handle, action, resource, reason FROM access_control_audit_log
         WHERE decision = 'deny' ORDER BY created_at, id",
    )
    .fetch_all(&o.db)
    .await
    .unwrap()
}

/// A running orchestrator on a fresh database, with the bootstrap admin logged in.
struct Team {
    _binary: Binary,
    o: Orchestrator,
    admin: String,
}

impl Team {
    async fn start() -> Self {
        let binary = Binary::start(&DevEnv::load().migrated_database().await).await;
        let o = Orchestrator {
            running: None,
            gw: binary.o.gw.clone(),
            cp: binary.o.cp.clone(),
            db: binary.o.db.clone(),
            database_url: binary.o.database_url.clone(),
            http: binary.o.http.clone(),
        };
        let admin = o.admin_token().await;
        Self {
            _binary: binary,
            o,
            admin,
        }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        send(&self.o, &self.admin, method, path, body).await
    }

    /// Creates `handle` (with [`PASSWORD`]) and returns their access token.
    async fn user(&self, handle: &str) -> String {
        let answer = self
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"handle": handle, "password": PASSWORD})),
            )
            .await;
        assert_eq!(answer.0, 201, "{}", answer.1);
        self.o.login(handle, PASSWORD).await.0
    }

    async fn group(&self, slug: &str, members: &[&str]) {
        let answer = self
            .admin(Method::POST, "/v1/groups", Some(json!({"slug": slug})))
            .await;
        assert_eq!(answer.0, 201, "{}", answer.1);
        for member in members {
            let path = format!("/v1/groups/{slug}/members");
            let answer = self
                .admin(Method::POST, &path, Some(json!({"user": member})))
                .await;
            assert_eq!(answer.0, 204, "{}", answer.1);
        }
    }

    /// A project the admin creates (and owns); its id.
    async fn project(&self, slug: &str) -> String {
        let body = json!({"slug": slug, "display_name": slug});
        let answer = self.admin(Method::POST, "/v1/projects", Some(body)).await;
        assert_eq!(answer.0, 201, "{}", answer.1);
        answer.1["id"].as_str().unwrap().to_owned()
    }
}

/// A grant request body; `project` absent for system scope.
fn grant(role: &str, kind: &str, subject: &str, project: Option<&str>) -> Value {
    let mut body = json!({"role": role, "subject_type": kind, "subject": subject});
    match project {
        Some(p) => {
            body["scope_type"] = json!("project");
            body["scope_id"] = json!(p);
        }
        None => body["scope_type"] = json!("system"),
    }
    body
}

/// A request of a bad-input table: method, path and JSON body.
type Request = (Method, String, Option<Value>);

fn post(path: &str, body: Value) -> Request {
    (Method::POST, path.to_owned(), Some(body))
}

fn bare(method: Method, path: impl Into<String>) -> Request {
    (method, path.into(), None)
}

/// Sends a table's request with `token`.
async fn ask(o: &Orchestrator, token: &str, (method, path, body): &Request) -> (u16, Value) {
    send(o, token, method.clone(), path, body.clone()).await
}

// ---- the upgrade path ----

/// A database at the schema before [`TEAMS_MIGRATION`], holding what the previous release
/// made: the `system` and `admin` users with their default projects, tasks, an artifact and
/// chat threads.
struct OldSystem {
    url: String,
    admin: Uuid,
    admin_project: Uuid,
    system_project: Uuid,
    /// The admin's task that had no project.
    projectless: Uuid,
    /// The admin's tasks in their default project.
    in_default: Vec<Uuid>,
    /// The `system` user's task.
    system_task: Uuid,
    /// (thread, messages): one in the admin's default project, one without a project.
    threads: Vec<(Uuid, i64)>,
    /// The previous release's admin password (not the bootstrap secret the binary is given).
    password: &'static str,
}

impl OldSystem {
    async fn make() -> Self {
        let url = DevEnv::load().fresh_database().await;
        let db = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"));
        let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
        assert!(
            migrator.iter().any(|m| m.version == TEAMS_MIGRATION),
            "the teams migration is in migrations/"
        );
        migrator
            .migrations
            .to_mut()
            .retain(|m| m.version < TEAMS_MIGRATION);
        migrator.run(&db).await.unwrap();
        let teams_tables: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('role_bindings')::text")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(teams_tables, None, "the old schema has no role bindings");

        let password = "old-release-admin-password";
        let hash = cynode_orchestrator::auth::hash_password(password).unwrap();
        let (system, admin) = (Uuid::new_v4(), Uuid::new_v4());
        let (system_project, admin_project) = (Uuid::new_v4(), Uuid::new_v4());
        for (user, handle, project) in [
            (system, "system", system_project),
            (admin, "admin", admin_project),
        ] {
            sqlx::query("INSERT INTO users (id, handle) VALUES ($1, $2)")
                .bind(user)
                .bind(handle)
                .execute(&db)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO projects (id, slug, display_name, updated_by) VALUES ($1, $2, $3, $4)",
            )
            .bind(project)
            .bind(format!("default-{user}"))
            .bind(format!("Default project of {handle}"))
            .bind(user)
            .execute(&db)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO password_credentials (id, user_id, password_hash, hash_alg)
             VALUES ($1, $2, $3, 'argon2id')",
        )
        .bind(Uuid::new_v4())
        .bind(admin)
        .bind(hash.into_bytes())
        .execute(&db)
        .await
        .unwrap();

        let task =
            |owner: Uuid, project: Option<Uuid>, name: &'static str, status: &'static str| {
                let db = db.clone();
                async move {
                    let id = Uuid::new_v4();
                    sqlx::query(
                    "INSERT INTO tasks (id, created_by, project_id, task_name, prompt, input_mode,
                         status, closed, summary, created_at)
                     VALUES ($1, $2, $3, $4, $5, 'script', $6, true, $7,
                             now() - interval '1 day')",
                )
                .bind(id)
                .bind(owner)
                .bind(project)
                .bind(name)
                .bind(format!("echo {name}"))
                .bind(status)
                .bind(format!("{name} {status}"))
                .execute(&db)
                .await
                .unwrap();
                    id
                }
            };
        let projectless = task(admin, None, "legacy", "completed").await;
        let report = task(admin, Some(admin_project), "report", "completed").await;
        let broken = task(admin, Some(admin_project), "broken", "failed").await;
        let system_task = task(system, Some(system_project), "housekeeping", "completed").await;

        // An artifact with content, as the previous release stored one.
        let artifact = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO task_artifacts (id, task_id, path, size_bytes, content_type,
                 checksum_sha256, created_by)
             VALUES ($1, $2, 'out/report.txt', 5, 'text/plain', $3, $4)",
        )
        .bind(artifact)
        .bind(report)
        .bind(hex::encode(Sha256::digest(b"hello")))
        .bind(admin)
        .execute(&db)
        .await
        .unwrap();
        sqlx::query("INSERT INTO task_artifact_contents (artifact_id, content) VALUES ($1, $2)")
            .bind(artifact)
            .bind(b"hello".to_vec())
            .execute(&db)
            .await
            .unwrap();

        let mut threads = Vec::new();
        for (project, messages) in [(Some(admin_project), 2_i64), (None, 1)] {
            let thread = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO chat_threads (id, user_id, project_id, title) VALUES ($1, $2, $3, 'hi')",
            )
            .bind(thread)
            .bind(admin)
            .bind(project)
            .execute(&db)
            .await
            .unwrap();
            for (i, role) in ["user", "assistant"]
                .iter()
                .take(messages as usize)
                .enumerate()
            {
                sqlx::query(
                    "INSERT INTO chat_messages (id, thread_id, role, content, model)
                     VALUES ($1, $2, $3, $4, 'cynodeai.pm')",
                )
                .bind(Uuid::new_v4())
                .bind(thread)
                .bind(role)
                .bind(format!("message {i}"))
                .execute(&db)
                .await
                .unwrap();
            }
            threads.push((thread, messages));
        }
        db.close().await;
        Self {
            url,
            admin,
            admin_project,
            system_project,
            projectless,
            in_default: vec![report, broken],
            system_task,
            threads,
            password,
        }
    }
}

#[tokio::test]
async fn an_old_database_migrates_and_its_admin_keeps_every_task_thread_and_artifact() {
    let old = OldSystem::make().await;
    let binary = Binary::start(&old.url).await;
    let o = &binary.o;
    // The admin keeps the previous release's password (the bootstrap secret is not applied).
    let (admin, _) = o.login("admin", old.password).await;

    // The admin is bound to the system admin role, and is the only system-scope binding.
    let (status, bindings) = send(o, &admin, Method::GET, "/v1/role-bindings", None).await;
    assert_eq!(status, 200, "{bindings}");
    let system: Vec<(&str, &str, &str, &str)> = bindings["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["role"].as_str().unwrap(),
                b["subject_type"].as_str().unwrap(),
                b["subject_name"].as_str().unwrap(),
                b["scope_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(system, [("admin", "user", "admin", "system")], "{bindings}");
    assert_eq!(bindings["bindings"][0]["subject_id"], old.admin.to_string());
    // And owns their default project.
    let path = format!(
        "/v1/role-bindings?scope_type=project&scope_id={}",
        old.admin_project
    );
    let (status, owners) = send(o, &admin, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{owners}");
    assert!(
        owners["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["role"] == "owner" && b["subject_name"] == "admin"),
        "{owners}"
    );

    // Every old task is listed, and each reads, in its project; the one without a project now
    // sits in its creator's default project.
    let (status, list) = send(o, &admin, Method::GET, "/v1/tasks", None).await;
    assert_eq!(status, 200, "{list}");
    let mut listed: Vec<String> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = [old.projectless, old.system_task]
        .iter()
        .chain(&old.in_default)
        .map(Uuid::to_string)
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "{list}");
    let mut homes: Vec<(Uuid, Uuid, &str)> = old
        .in_default
        .iter()
        .map(|t| (*t, old.admin_project, "admin"))
        .collect();
    homes.push((old.projectless, old.admin_project, "admin"));
    homes.push((old.system_task, old.system_project, "system"));
    for (id, project, creator) in homes {
        let (status, task) = send(o, &admin, Method::GET, &format!("/v1/tasks/{id}"), None).await;
        assert_eq!(status, 200, "{task}");
        assert_eq!(task["project_id"], project.to_string(), "{task}");
        assert_eq!(task["creator"], creator, "{task}");
        let path = format!("/v1/tasks/{id}/result");
        let (status, result) = send(o, &admin, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{result}");
    }
    let in_db: Option<Uuid> = sqlx::query_scalar("SELECT project_id FROM tasks WHERE id = $1")
        .bind(old.projectless)
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(in_db, Some(old.admin_project));

    // The artifact is still the task's, bytes and all.
    let report = old.in_default[0];
    let path = format!("/v1/tasks/{report}/artifacts");
    let (status, artifacts) = send(o, &admin, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{artifacts}");
    assert_eq!(
        artifacts["artifacts"][0]["path"], "out/report.txt",
        "{artifacts}"
    );
    let artifact = artifacts["artifacts"][0]["artifact_id"].as_str().unwrap();
    let download = o
        .get_url(&format!("{}{path}/{artifact}", o.gw), &admin)
        .await;
    assert_eq!(download.status(), 200);
    assert_eq!(&download.bytes().await.unwrap()[..], b"hello");

    // Both chat threads are the admin's still, with their messages.
    let (status, threads) = send(o, &admin, Method::GET, "/v1/chat/threads", None).await;
    assert_eq!(status, 200, "{threads}");
    for (thread, messages) in &old.threads {
        let found = threads["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == thread.to_string())
            .unwrap_or_else(|| panic!("thread {thread} is not listed: {threads}"));
        assert_eq!(found["message_count"], *messages, "{found}");
        let path = format!("/v1/chat/threads/{thread}/messages");
        let (status, body) = send(o, &admin, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
    }

    // The admin's default project is theirs, personal, and listed.
    let (status, projects) = send(o, &admin, Method::GET, "/v1/projects", None).await;
    assert_eq!(status, 200, "{projects}");
    let mine = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == old.admin_project.to_string())
        .unwrap_or_else(|| panic!("{projects}"));
    assert_eq!(mine["is_personal"], true, "{mine}");
    assert!(
        mine["my_roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "owner"),
        "{mine}"
    );

    // A second user can be created, logs in, and sees none of the admin's work.
    let (status, created) = send(
        o,
        &admin,
        Method::POST,
        "/v1/users",
        Some(json!({"handle": "newcomer", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (newcomer, _) = o.login("newcomer", PASSWORD).await;
    let (status, theirs) = send(o, &newcomer, Method::GET, "/v1/tasks", None).await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["tasks"], json!([]), "{theirs}");
    let path = format!("/v1/tasks/{report}");
    let (status, _) = send(o, &newcomer, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let task = o
        .create_task(
            &newcomer,
            json!({"prompt": "echo new", "input_mode": "script"}),
        )
        .await;
    assert_ne!(task["project_id"], old.admin_project.to_string(), "{task}");
    // The admin's new work goes to the same default project as the old.
    let task = o
        .create_task(
            &admin,
            json!({"prompt": "echo again", "input_mode": "script"}),
        )
        .await;
    assert_eq!(task["project_id"], old.admin_project.to_string(), "{task}");
}

#[tokio::test]
async fn an_old_database_whose_admin_made_an_api_key_migrates_and_the_key_keeps_working() {
    let old = OldSystem::make().await;
    // A key the previous release issued and audited (creation and first use), as it did.
    let key = format!("cyn_{}", "5a".repeat(32));
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect(&old.url)
        .await
        .unwrap();
    let key_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, key_hash, prefix, last_four, last_used_at)
         VALUES ($1, $2, 'scripts', $3, $4, $5, now())",
    )
    .bind(key_id)
    .bind(old.admin)
    .bind(Sha256::digest(key.as_bytes()).to_vec())
    .bind(&key[..10])
    .bind(&key[key.len() - 4..])
    .execute(&db)
    .await
    .unwrap();
    for event in ["api_key_created", "api_key_first_use"] {
        sqlx::query(
            "INSERT INTO auth_audit_log (id, event_type, user_id, subject_handle, api_key_id, success)
             VALUES ($1, $2, $3, 'admin', $4, true)",
        )
        .bind(Uuid::new_v4())
        .bind(event)
        .bind(old.admin)
        .bind(key_id)
        .execute(&db)
        .await
        .unwrap();
    }
    db.close().await;

    let binary = Binary::start(&old.url).await;
    let o = &binary.o;
    let (status, me) = send(o, &key, Method::GET, "/v1/users/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["handle"], "admin", "{me}");
    let (status, list) = send(o, &key, Method::GET, "/v1/tasks", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tasks"].as_array().unwrap().len(), 4, "{list}");
    // And the upgraded system still issues keys.
    let (admin, _) = o.login("admin", old.password).await;
    let created = o
        .create_key(&admin, json!({"name": "after the upgrade"}))
        .await;
    assert_eq!(created.status(), 201, "{}", binary.log());
}

// ---- bad input ----

#[tokio::test]
async fn a_duplicate_handle_is_409_a_short_password_400_and_neither_writes_anything() {
    let t = Team::start().await;
    let alice = t.user("alice").await;
    let before = written(&t.o).await;

    for handle in ["alice", "admin"] {
        let answer = t
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"handle": handle, "password": "another-long-password"})),
            )
            .await;
        refused(&answer, 409, handle);
    }
    // The reserved `system` account is not a handle anyone may take either.
    let answer = t
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"handle": "system", "password": PASSWORD})),
        )
        .await;
    assert!(matches!(answer.0, 400 | 409), "{}", answer.1);

    // 11 characters: one short of the policy.
    for password in ["short", "abcdefghijk"] {
        let answer = t
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"handle": "shorty", "password": password})),
            )
            .await;
        refused(&answer, 400, "12");
        assert!(
            names_field(answer.1["detail"].as_str().unwrap(), "password"),
            "{}",
            answer.1
        );
    }
    let answer = t
        .admin(
            Method::POST,
            "/v1/users/alice/reset_password",
            Some(json!({"password": "tiny"})),
        )
        .await;
    refused(&answer, 400, "password");
    let answer = send(
        &t.o,
        &alice,
        Method::POST,
        "/v1/users/me/password",
        Some(json!({"current_password": PASSWORD, "new_password": "tiny"})),
    )
    .await;
    refused(&answer, 400, "new_password");
    assert_eq!(written(&t.o).await, before, "a refused change wrote");
    // Alice's password is the one she had.
    t.o.login("alice", PASSWORD).await;

    // Exactly 12 characters is enough.
    let answer = t
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"handle": "twelve", "password": "abcdefghijkl"})),
        )
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
}

#[tokio::test]
async fn unknown_users_groups_projects_and_roles_are_404_and_write_nothing() {
    let t = Team::start().await;
    t.user("alice").await;
    t.group("ml", &["alice"]).await;
    t.project("vision").await;
    let before = written(&t.o).await;

    let cases: Vec<(Request, &str)> = vec![
        (
            post(
                "/v1/role-bindings",
                grant("root", "user", "alice", Some("vision")),
            ),
            "root",
        ),
        (
            post(
                "/v1/role-bindings",
                grant("member", "user", "nobody", Some("vision")),
            ),
            "nobody",
        ),
        (
            post(
                "/v1/role-bindings",
                grant("member", "group", "nogroup", Some("vision")),
            ),
            "nogroup",
        ),
        (
            post(
                "/v1/role-bindings",
                grant("member", "user", "alice", Some("noproject")),
            ),
            "noproject",
        ),
        (
            post("/v1/role-bindings", grant("viewer", "user", "nobody", None)),
            "nobody",
        ),
        (
            post("/v1/groups/ml/members", json!({"user": "nobody"})),
            "nobody",
        ),
        (
            post("/v1/groups/nogroup/members", json!({"user": "alice"})),
            "nogroup",
        ),
        (
            bare(Method::DELETE, "/v1/groups/ml/members/nobody"),
            "nobody",
        ),
        (bare(Method::POST, "/v1/users/nobody/disable"), "nobody"),
        (
            post(
                "/v1/users/nobody/reset_password",
                json!({"password": PASSWORD}),
            ),
            "nobody",
        ),
        (bare(Method::GET, "/v1/users/nobody"), "nobody"),
        (bare(Method::GET, "/v1/groups/nogroup"), "nogroup"),
        (bare(Method::GET, "/v1/projects/noproject"), "noproject"),
        (
            (
                Method::PATCH,
                "/v1/projects/noproject".into(),
                Some(json!({"display_name": "x"})),
            ),
            "noproject",
        ),
        (
            post(
                "/v1/access-rules",
                json!({"subject_type": "group", "subject": "nogroup", "action": "model.use",
                       "resource_type": "model", "resource_pattern": "*", "effect": "deny"}),
            ),
            "nogroup",
        ),
        (
            bare(
                Method::DELETE,
                format!("/v1/role-bindings/{}", Uuid::new_v4()),
            ),
            "does not exist",
        ),
    ];
    for (request, name) in &cases {
        let answer = ask(&t.o, &t.admin, request).await;
        assert_eq!(answer.0, 404, "{request:?}: {}", answer.1);
        refused(&answer, 404, name);
    }
    assert_eq!(written(&t.o).await, before, "a refused change wrote");
}

#[tokio::test]
async fn granting_a_role_the_granter_does_not_hold_is_403_audited_and_writes_nothing() {
    let t = Team::start().await;
    let pat = t.user("pat").await;
    t.user("sam").await;
    t.project("lab").await;
    // Pat administers the project, short of owning it.
    let answer = t
        .admin(
            Method::POST,
            "/v1/role-bindings",
            Some(grant("admin", "user", "pat", Some("lab"))),
        )
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    let before = written(&t.o).await;
    let denied_before = denials(&t.o).await.len();

    let answer = send(
        &t.o,
        &pat,
        Method::POST,
        "/v1/role-bindings",
        Some(grant("owner", "user", "sam", Some("lab"))),
    )
    .await;
    refused(&answer, 403, "owner");
    // Nor may pat take away what pat does not hold: the admin's ownership of the project.
    let (status, bindings) = send(
        &t.o,
        &pat,
        Method::GET,
        "/v1/role-bindings?scope_type=project&scope_id=lab",
        None,
    )
    .await;
    assert_eq!(status, 200, "{bindings}");
    let owner = bindings["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["role"] == "owner")
        .unwrap_or_else(|| panic!("{bindings}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/role-bindings/{owner}");
    let answer = send(&t.o, &pat, Method::DELETE, &path, None).await;
    refused(&answer, 403, "owner");
    // A project role reaches no system scope.
    let answer = send(
        &t.o,
        &pat,
        Method::POST,
        "/v1/role-bindings",
        Some(grant("viewer", "user", "sam", None)),
    )
    .await;
    assert_eq!(answer.0, 403, "{}", answer.1);
    assert_eq!(written(&t.o).await, before, "a refused change wrote");

    let denied: Vec<_> = denials(&t.o)
        .await
        .into_iter()
        .skip(denied_before)
        .collect();
    let actions: Vec<(&str, &str)> = denied
        .iter()
        .map(|(who, action, _, _)| (who.as_deref().unwrap_or_default(), action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("pat", "rbac.grant"),
            ("pat", "rbac.revoke"),
            ("pat", "rbac.manage")
        ],
        "{denied:#?}"
    );
    let (_, _, resource, reason) = &denied[0];
    assert!(
        resource.contains("owner") && resource.contains("sam"),
        "{resource}"
    );
    assert!(
        reason.as_deref().unwrap_or_default().contains("owner"),
        "{reason:?}"
    );
    // The same denials through the audit route.
    let (status, page) = t
        .admin(
            Method::GET,
            "/v1/audit?decision=deny&action=rbac.grant",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"][0]["actor_handle"], "pat", "{page}");

    // What pat holds, pat may grant.
    let answer = send(
        &t.o,
        &pat,
        Method::POST,
        "/v1/role-bindings",
        Some(grant("admin", "user", "sam", Some("lab"))),
    )
    .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
}

#[tokio::test]
async fn the_last_system_admin_can_be_neither_revoked_nor_disabled() {
    let t = Team::start().await;
    let (status, bindings) = t.admin(Method::GET, "/v1/role-bindings", None).await;
    assert_eq!(status, 200, "{bindings}");
    let direct = bindings["bindings"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        bindings["bindings"][0]["subject_name"], "admin",
        "{bindings}"
    );
    let before = written(&t.o).await;
    let reason = "no enabled system admin";

    let answer = t
        .admin(Method::DELETE, &format!("/v1/role-bindings/{direct}"), None)
        .await;
    refused(&answer, 409, reason);
    let answer = t.admin(Method::POST, "/v1/users/admin/disable", None).await;
    refused(&answer, 409, reason);
    assert_eq!(written(&t.o).await, before, "a refused change wrote");
    // The admin still works, with the same token.
    let (status, me) = t.admin(Method::GET, "/v1/users/admin", None).await;
    assert_eq!((status, &me["is_active"]), (200, &json!(true)), "{me}");
    t.user("helper").await;

    // Admin through a group only: the group's membership, the group and its binding are then
    // the last admin's, and stay.
    t.group("ops", &["admin"]).await;
    let answer = t
        .admin(
            Method::POST,
            "/v1/role-bindings",
            Some(grant("admin", "group", "ops", None)),
        )
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    let through_group = answer.1["id"].as_str().unwrap().to_owned();
    let answer = t
        .admin(Method::DELETE, &format!("/v1/role-bindings/{direct}"), None)
        .await;
    assert_eq!(answer.0, 204, "another admin binding remains: {}", answer.1);
    let before = written(&t.o).await;
    let answer = t
        .admin(Method::DELETE, "/v1/groups/ops/members/admin", None)
        .await;
    refused(&answer, 409, reason);
    let answer = t
        .admin(
            Method::PATCH,
            "/v1/groups/ops",
            Some(json!({"is_active": false})),
        )
        .await;
    refused(&answer, 409, reason);
    let answer = t
        .admin(
            Method::DELETE,
            &format!("/v1/role-bindings/{through_group}"),
            None,
        )
        .await;
    refused(&answer, 409, reason);
    let answer = t.admin(Method::POST, "/v1/users/admin/disable", None).await;
    refused(&answer, 409, reason);
    assert_eq!(written(&t.o).await, before, "a refused change wrote");
    let (status, _) = t.admin(Method::GET, "/v1/users", None).await;
    assert_eq!(status, 200);

    // Each refusal is an audited denial with its reason.
    let denied: Vec<(String, String)> = denials(&t.o)
        .await
        .into_iter()
        .filter(|(_, _, _, why)| why.as_deref().unwrap_or_default().contains(reason))
        .map(|(_, action, resource, _)| (action, resource))
        .collect();
    let actions: Vec<&str> = denied.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "rbac.revoke",
            "user.disable",
            "group.member.remove",
            "group.disable",
            "rbac.revoke",
            "user.disable"
        ],
        "{denied:#?}"
    );
}

#[tokio::test]
async fn malformed_ids_are_400_naming_the_field_and_write_nothing() {
    let t = Team::start().await;
    t.user("alice").await;
    t.group("ml", &["alice"]).await;
    t.project("vision").await;
    let before = written(&t.o).await;

    let rule = |subject: &str| {
        json!({"subject_type": "user", "subject": subject, "action": "model.use",
               "resource_type": "model", "resource_pattern": "*", "effect": "deny"})
    };
    let cases: Vec<(Request, &str)> = vec![
        (bare(Method::GET, "/v1/users/NOT%20VALID"), "id"),
        (bare(Method::POST, "/v1/users/NOT%20VALID/disable"), "id"),
        (bare(Method::POST, "/v1/users/NOT%20VALID/enable"), "id"),
        (
            post(
                "/v1/role-bindings",
                grant("member", "user", "Bad Name!", Some("vision")),
            ),
            "subject",
        ),
        (
            post(
                "/v1/role-bindings",
                grant("member", "user", "alice", Some("Bad Project!")),
            ),
            "scope_id",
        ),
        (
            post("/v1/groups/ml/members", json!({"user": "Bad Name!"})),
            "user",
        ),
        (
            bare(Method::DELETE, "/v1/groups/Bad%20Group/members/alice"),
            "id",
        ),
        (
            post(
                "/v1/users",
                json!({"handle": "Bad Name!", "password": PASSWORD}),
            ),
            "handle",
        ),
        (post("/v1/groups", json!({"slug": "Bad Group"})), "slug"),
        (
            post(
                "/v1/projects",
                json!({"slug": "Bad Project", "display_name": "x"}),
            ),
            "slug",
        ),
        (post("/v1/access-rules", rule("Bad Name!")), "subject"),
        (
            bare(Method::GET, "/v1/tasks?project=Bad%20Project"),
            "project",
        ),
        (bare(Method::DELETE, "/v1/role-bindings/not-a-uuid"), "id"),
    ];
    for (request, field) in &cases {
        let (status, problem) = ask(&t.o, &t.admin, request).await;
        assert_eq!(status, 400, "{request:?}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            names_field(detail, field),
            "{request:?}: the detail {detail:?} does not name {field:?}"
        );
    }
    assert_eq!(written(&t.o).await, before, "a refused change wrote");
}

#[tokio::test]
async fn every_refused_change_is_audited_as_a_denial() {
    let t = Team::start().await;
    let pat = t.user("pat").await;
    t.user("sam").await;
    t.group("ml", &["sam"]).await;
    t.project("lab").await;
    let answer = t
        .admin(
            Method::POST,
            "/v1/role-bindings",
            Some(grant("admin", "user", "pat", Some("lab"))),
        )
        .await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    let (_, bindings) = t.admin(Method::GET, "/v1/role-bindings", None).await;
    let admin_binding = bindings["bindings"][0]["id"].as_str().unwrap().to_owned();

    // (what, whether pat asks (else the admin), request, the status it is refused with)
    let cases: Vec<(&str, bool, Request, u16)> = vec![
        (
            "a duplicate handle",
            false,
            post("/v1/users", json!({"handle": "sam", "password": PASSWORD})),
            409,
        ),
        (
            "a short password",
            false,
            post(
                "/v1/users",
                json!({"handle": "shorty", "password": "short"}),
            ),
            400,
        ),
        (
            "a malformed handle",
            false,
            post(
                "/v1/users",
                json!({"handle": "Bad Name!", "password": PASSWORD}),
            ),
            400,
        ),
        (
            "a duplicate group",
            false,
            post("/v1/groups", json!({"slug": "ml"})),
            409,
        ),
        (
            "adding an unknown user to a group",
            false,
            post("/v1/groups/ml/members", json!({"user": "nobody"})),
            404,
        ),
        (
            "adding a member twice",
            false,
            post("/v1/groups/ml/members", json!({"user": "sam"})),
            409,
        ),
        (
            "granting an unknown role",
            false,
            post(
                "/v1/role-bindings",
                grant("root", "user", "sam", Some("lab")),
            ),
            404,
        ),
        (
            "granting to an unknown user",
            false,
            post(
                "/v1/role-bindings",
                grant("member", "user", "nobody", Some("lab")),
            ),
            404,
        ),
        (
            "granting to an unknown group",
            false,
            post(
                "/v1/role-bindings",
                grant("member", "group", "nogroup", Some("lab")),
            ),
            404,
        ),
        (
            "granting in an unknown project",
            false,
            post(
                "/v1/role-bindings",
                grant("member", "user", "sam", Some("noproject")),
            ),
            404,
        ),
        (
            "granting to a malformed subject",
            false,
            post(
                "/v1/role-bindings",
                grant("member", "user", "Bad Name!", Some("lab")),
            ),
            400,
        ),
        (
            "granting a binding twice",
            false,
            post(
                "/v1/role-bindings",
                grant("admin", "user", "pat", Some("lab")),
            ),
            409,
        ),
        (
            "disabling a malformed id",
            false,
            bare(Method::POST, "/v1/users/NOT%20VALID/disable"),
            400,
        ),
        (
            "granting a role the granter does not hold",
            true,
            post(
                "/v1/role-bindings",
                grant("owner", "user", "sam", Some("lab")),
            ),
            403,
        ),
        (
            "revoking the last system admin",
            false,
            bare(Method::DELETE, format!("/v1/role-bindings/{admin_binding}")),
            409,
        ),
        (
            "disabling the last system admin",
            false,
            bare(Method::POST, "/v1/users/admin/disable"),
            409,
        ),
    ];
    let mut unaudited = Vec::new();
    for (what, as_pat, request, status) in &cases {
        let token = if *as_pat { &pat } else { &t.admin };
        let before = denials(&t.o).await.len();
        let answer = ask(&t.o, token, request).await;
        assert_eq!(answer.0, *status, "{what}: {}", answer.1);
        if denials(&t.o).await.len() == before {
            unaudited.push(format!("{what} ({status})"));
        }
    }
    assert!(
        unaudited.is_empty(),
        "these refused changes left no denial in the access audit: {unaudited:#?}"
    );
}
