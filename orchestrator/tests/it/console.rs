//! The web console's server side against a real PostgreSQL: the cookie session (flags, CSRF,
//! refresh, logout), the console's files served at `/` with their headers, the request id, and
//! what `/openapi.json` publishes for the console's upload check.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A browser's view of the session: the cookies it holds, sent back as a browser would, and
/// the CSRF token the console keeps in memory.
struct Browser {
    cookies: BTreeMap<String, String>,
    /// The `Set-Cookie` lines of the last response, for asserting their attributes.
    last_set_cookie: Vec<String>,
    csrf: String,
}

impl Browser {
    fn new() -> Self {
        Self::holding(BTreeMap::new(), String::new())
    }

    /// A browser that already holds these cookies (a copy kept elsewhere, a reloaded page) and
    /// knows this CSRF token.
    fn holding(cookies: BTreeMap<String, String>, csrf: String) -> Self {
        Self {
            cookies,
            last_set_cookie: Vec::new(),
            csrf,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends a request with the cookies (and, when `csrf`, the CSRF header); keeps the cookies
    /// the answer sets (an empty value with `Max-Age=0` deletes one).
    async fn send(
        &mut self,
        o: &Orchestrator,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = o
            .http
            .request(method, format!("{}{path}", o.gw))
            .header("cookie", self.cookie_header());
        if csrf {
            req = req.header("x-csrf-token", &self.csrf);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        self.last_set_cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for line in &self.last_set_cookie {
            let (pair, _) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(token) = body["csrf_token"].as_str() {
            self.csrf = token.to_owned();
        }
        (status, body)
    }

    async fn get(&mut self, o: &Orchestrator, path: &str) -> (u16, Value) {
        self.send(o, Method::GET, path, None, false, &[]).await
    }

    /// A request without a body or extra headers, with the CSRF header when `csrf`.
    async fn bare(
        &mut self,
        o: &Orchestrator,
        method: Method,
        path: &str,
        csrf: bool,
    ) -> (u16, Value) {
        self.send(o, method, path, None, csrf, &[]).await
    }

    async fn login(&mut self, o: &Orchestrator, handle: &str, password: &str) -> Value {
        let (status, body) = self
            .send(
                o,
                Method::POST,
                "/v1/auth/session",
                Some(json!({"handle": handle, "password": password})),
                false,
                &[],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn set_cookie(&self, name: &str) -> &str {
        self.last_set_cookie
            .iter()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {:?}", self.last_set_cookie))
    }
}

async fn task_count(o: &Orchestrator) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&o.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_console_session_lives_in_http_only_strict_cookies_and_changes_need_its_csrf_token() {
    let o = Orchestrator::start(&[]).await;
    let mut browser = Browser::new();
    let session = browser.login(&o, "admin", ADMIN_PASSWORD).await;
    assert_eq!(session["user"]["handle"], "admin");
    assert_eq!(session["expires_in"], 900);
    let actions: Vec<&str> = session["system_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"node.manage") && actions.contains(&"user.manage"),
        "{actions:?}"
    );
    assert!(
        !actions.contains(&"task.create"),
        "project actions are not system actions"
    );
    // No token in the body: scripts never hold one.
    assert!(session.get("access_token").is_none() && session.get("refresh_token").is_none());
    let access = browser.set_cookie("cynode_session");
    assert!(access.contains("; Path=/;"), "{access}");
    assert!(
        access.contains("; HttpOnly") && access.contains("; SameSite=Strict"),
        "{access}"
    );
    assert!(access.contains("; Max-Age=900"), "{access}");
    assert!(
        !access.contains("Secure"),
        "plain http without a trusted proxy: {access}"
    );
    let refresh = browser.set_cookie("cynode_refresh");
    assert!(refresh.contains("; Path=/v1/auth/session;"), "{refresh}");
    assert!(
        refresh.contains("; Max-Age=43200"),
        "12 h by default: {refresh}"
    );

    // The cookie is a credential everywhere a bearer token is.
    let (status, me) = browser.get(&o, "/v1/users/me").await;
    assert_eq!((status, me["handle"].as_str()), (200, Some("admin")));
    let (status, again) = browser.get(&o, "/v1/auth/session").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["csrf_token"], session["csrf_token"]);

    // A cross-site form POST carries the cookie but cannot know the token: refused, nothing made.
    let before = task_count(&o).await;
    let task = json!({"prompt": "echo hi", "input_mode": "script"});
    let (status, problem) = browser
        .send(
            &o,
            Method::POST,
            "/v1/tasks",
            Some(task.clone()),
            false,
            &[],
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "https://cynode.ai/problems/csrf");
    browser.csrf = "00".repeat(32);
    let (status, _) = browser
        .send(&o, Method::POST, "/v1/tasks", Some(task.clone()), true, &[])
        .await;
    assert_eq!(status, 403, "another session's (or a made-up) token");
    assert_eq!(task_count(&o).await, before);
    browser.csrf = session["csrf_token"].as_str().unwrap().to_owned();
    let (status, created) = browser
        .send(&o, Method::POST, "/v1/tasks", Some(task.clone()), true, &[])
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(task_count(&o).await, before + 1);

    // Programs are unaffected: a bearer token needs no CSRF token, and a request with an
    // Authorization header is judged by it alone, whatever cookie comes along.
    let admin = o.admin_token().await;
    let resp = o
        .http
        .post(format!("{}/v1/tasks", o.gw))
        .bearer_auth(&admin)
        .header("cookie", browser.cookie_header())
        .json(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = o
        .http
        .get(format!("{}/v1/users/me", o.gw))
        .bearer_auth("not-a-token")
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A plain member holds no system action.
    o.create_user("maria", "correct-horse-b-0").await;
    let member = Browser::new().login(&o, "maria", "correct-horse-b-0").await;
    assert_eq!(member["system_actions"], json!([]));

    // Bad logins are the API login's refusals, and set no cookie.
    let mut stranger = Browser::new();
    for (body, want) in [
        (json!({"handle": "admin", "password": "wrong"}), 401),
        (json!({"handle": "", "password": "x"}), 400),
        (json!({"handle": "admin"}), 400),
    ] {
        let (status, problem) = stranger
            .send(&o, Method::POST, "/v1/auth/session", Some(body), false, &[])
            .await;
        assert_eq!(status, want, "{problem}");
        assert!(stranger.last_set_cookie.is_empty());
    }
    let (status, _) = stranger.get(&o, "/v1/auth/session").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn refresh_rotates_the_session_and_logout_revokes_it_server_side() {
    let o = Orchestrator::start(&[("JWT_ACCESS_DURATION", "60s")]).await;
    let mut browser = Browser::new();
    let first = browser.login(&o, "admin", ADMIN_PASSWORD).await;
    let old_cookies = browser.cookies.clone();
    let old_expiry: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM refresh_sessions WHERE is_active")
            .fetch_one(&o.db)
            .await
            .unwrap();

    // Without the CSRF token a refresh is refused and the session stays as it was.
    let (status, _) = browser
        .bare(&o, Method::POST, "/v1/auth/session/refresh", false)
        .await;
    assert_eq!(status, 403);
    assert!(browser.last_set_cookie.is_empty());
    let (status, _) = browser.get(&o, "/v1/users/me").await;
    assert_eq!(status, 200);

    let (status, second) = browser
        .bare(&o, Method::POST, "/v1/auth/session/refresh", true)
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["expires_in"], 60);
    assert_ne!(
        second["csrf_token"], first["csrf_token"],
        "a new session, a new token"
    );
    assert!(browser.set_cookie("cynode_session").contains("Max-Age=60"));
    // A console login lasts from the password, not from the last refresh.
    let new_expiry: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM refresh_sessions WHERE is_active")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(new_expiry.timestamp_micros(), old_expiry.timestamp_micros());

    // A console reloaded after its access cookie expired (the browser dropped it) learns its
    // session, and that it must refresh now, from the refresh cookie alone.
    let mut reloaded = Browser::holding(browser.cookies.clone(), String::new());
    reloaded.cookies.remove("cynode_session");
    let (status, _) = reloaded.get(&o, "/v1/users/me").await;
    assert_eq!(status, 401, "the refresh cookie is no credential elsewhere");
    let (status, known) = reloaded.get(&o, "/v1/auth/session").await;
    assert_eq!(status, 200, "{known}");
    assert_eq!(
        (known["expires_in"].as_u64(), &known["csrf_token"]),
        (Some(0), &second["csrf_token"])
    );

    // The old cookies are dead: access and refresh alike.
    let mut stale = Browser::holding(
        old_cookies,
        first["csrf_token"].as_str().unwrap().to_owned(),
    );
    let (status, _) = stale.get(&o, "/v1/users/me").await;
    assert_eq!(status, 401);
    let (status, _) = stale
        .bare(&o, Method::POST, "/v1/auth/session/refresh", true)
        .await;
    assert_eq!(status, 401);

    // Logout needs the token too; then the cookies are cleared and the session is over, even
    // for a copy of the cookie kept elsewhere.
    let kept = browser.cookies.clone();
    let (status, _) = browser
        .bare(&o, Method::DELETE, "/v1/auth/session", false)
        .await;
    assert_eq!(status, 403);
    let (status, _) = browser
        .bare(&o, Method::DELETE, "/v1/auth/session", true)
        .await;
    assert_eq!(status, 204);
    assert!(browser.set_cookie("cynode_session").contains("Max-Age=0"));
    assert!(browser.set_cookie("cynode_refresh").contains("Max-Age=0"));
    assert!(browser.cookies.is_empty());
    let mut copy = Browser::holding(kept, String::new());
    let (status, _) = copy.get(&o, "/v1/users/me").await;
    assert_eq!(status, 401);
    let (status, _) = copy.get(&o, "/v1/auth/session").await;
    assert_eq!(
        status, 401,
        "a revoked session's refresh cookie tells nothing"
    );
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_sessions WHERE is_active")
        .fetch_one(&o.db)
        .await
        .unwrap();
    assert_eq!(active, 0);
    let logouts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_audit_log WHERE event_type = 'logout'")
            .fetch_one(&o.db)
            .await
            .unwrap();
    assert_eq!(logouts, 1);
}

#[tokio::test]
async fn cookies_are_secure_behind_https_and_only_a_trusted_proxy_may_say_so() {
    let https = Orchestrator::start(&[("USER_GATEWAY_PUBLIC_URL", "https://ai.example.org")]).await;
    let mut browser = Browser::new();
    browser.login(&https, "admin", ADMIN_PASSWORD).await;
    assert!(browser.set_cookie("cynode_session").ends_with("; Secure"));
    assert!(browser.set_cookie("cynode_refresh").ends_with("; Secure"));

    let proxied = Orchestrator::start(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let forwarded = [("x-forwarded-proto", "https")];
    let login = json!({"handle": "admin", "password": ADMIN_PASSWORD});
    let mut browser = Browser::new();
    browser
        .send(
            &proxied,
            Method::POST,
            "/v1/auth/session",
            Some(login.clone()),
            false,
            &forwarded,
        )
        .await;
    assert!(browser.set_cookie("cynode_session").ends_with("; Secure"));
    let mut browser = Browser::new();
    browser
        .send(
            &proxied,
            Method::POST,
            "/v1/auth/session",
            Some(login.clone()),
            false,
            &[],
        )
        .await;
    assert!(
        !browser.set_cookie("cynode_session").contains("Secure"),
        "no header, plain http"
    );

    // From an address that is not a trusted proxy the header means nothing.
    let direct = Orchestrator::start(&[("TRUSTED_PROXIES", "192.0.2.1")]).await;
    let mut browser = Browser::new();
    browser
        .send(
            &direct,
            Method::POST,
            "/v1/auth/session",
            Some(login),
            false,
            &forwarded,
        )
        .await;
    assert!(!browser.set_cookie("cynode_session").contains("Secure"));
}

/// A built console in a temporary directory: `index.html`, one hashed asset and its gzip copy.
fn console_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>CyNodeAI console</title><script type=module src=/assets/app-1.js></script>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    let js = "console.log('the app');".repeat(50);
    std::fs::write(dir.path().join("assets/app-1.js"), &js).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(js.as_bytes()).unwrap();
    std::fs::write(dir.path().join("assets/app-1.js.gz"), gz.finish().unwrap()).unwrap();
    dir
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn assert_protected(resp: &reqwest::Response) {
    let csp = header(resp, "content-security-policy");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-eval") && !csp.contains("http"),
        "{csp}"
    );
    assert_eq!(header(resp, "x-frame-options"), "DENY");
    assert_eq!(header(resp, "referrer-policy"), "no-referrer");
    assert_eq!(header(resp, "x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn the_gateway_serves_the_console_at_the_root_with_its_headers_and_never_under_v1() {
    let dir = console_dir();
    let o = Orchestrator::start(&[("CONSOLE_DIR", dir.path().to_str().unwrap())]).await;
    let get = |path: &str| o.http.get(format!("{}{path}", o.gw)).send();

    let index = get("/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert_protected(&index);
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert!(index.text().await.unwrap().contains("CyNodeAI console"));
    // A page of the app (a deep link) is the app.
    for deep in [
        "/tasks/2b0a6c9e-0000-0000-0000-000000000000",
        "/chat",
        "/nodes/node-1",
    ] {
        let page = get(deep).await.unwrap();
        assert_eq!(page.status(), 200, "{deep}");
        assert_protected(&page);
        assert!(
            page.text().await.unwrap().contains("CyNodeAI console"),
            "{deep}"
        );
    }
    // Hashed assets are cached for good, and sent compressed to a browser that takes gzip.
    let asset = o
        .http
        .get(format!("{}/assets/app-1.js", o.gw))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert_protected(&asset);
    assert_eq!(header(&asset, "content-encoding"), "gzip");
    assert_eq!(
        header(&asset, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(header(&asset, "content-type").contains("javascript"));
    // The API keeps its answers: unknown API paths are problems, not the app.
    for path in ["/v1/nope", "/v1", "/v1/tasks/x/nope"] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(
            header(&resp, "content-type"),
            "application/problem+json",
            "{path}"
        );
        assert_protected(&resp);
    }
    let post = o.http.post(format!("{}/tasks", o.gw)).send().await.unwrap();
    assert_eq!(post.status(), 404, "only GET and HEAD reach the console");
    // No way out of the directory.
    let escape = get("/../../etc/passwd").await.unwrap();
    assert!(!escape.text().await.unwrap().contains("root:"));

    // Without a console the root says so, and the API is unchanged.
    let bare = Orchestrator::start(&[]).await;
    let resp = bare.http.get(format!("{}/", bare.gw)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_protected(&resp);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("console is not installed")
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_client_may_choose() {
    let o = Orchestrator::start(&[]).await;
    let chosen = o
        .http
        .get(format!("{}/healthz", o.gw))
        .header("x-request-id", "console-4f1a")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&chosen, "x-request-id"), "console-4f1a");
    let made_up = o
        .http
        .get(format!("{}/healthz", o.gw))
        .send()
        .await
        .unwrap();
    let id = header(&made_up, "x-request-id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // Something unfit for a log line is replaced, not echoed.
    let odd = o
        .http
        .get(format!("{}/healthz", o.gw))
        .header("x-request-id", "a".repeat(200))
        .send()
        .await
        .unwrap();
    assert!(uuid::Uuid::parse_str(header(&odd, "x-request-id")).is_ok());
}

#[tokio::test]
async fn openapi_publishes_the_upload_limits_the_console_checks_before_sending() {
    let o = Orchestrator::start(&[("MAX_REQUEST_BODY_MB", "3")]).await;
    let doc: Value = o
        .http
        .get(format!("{}/openapi.json", o.gw))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["x-max-request-body-bytes"], 3 * 1024 * 1024);
    let upload = &doc["components"]["schemas"]["TaskUpload"];
    assert_eq!(
        upload["properties"]["files"]["items"]["maxLength"],
        10 * 1024 * 1024
    );
    assert_eq!(upload["properties"]["files"]["maxItems"], 16);
    let create = &doc["paths"]["/v1/tasks"]["post"]["requestBody"]["content"];
    assert_eq!(
        create["multipart/form-data"]["schema"]["$ref"],
        "#/components/schemas/TaskUpload"
    );
    for path in ["/v1/auth/session", "/v1/auth/session/refresh"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}
