//! The gateway client: the only thing cynork talks to.
//!
//! Errors come back as [`CliError`]s with one readable line: problem+json bodies are reduced to
//! `title: detail`, connection failures say "cannot reach gateway at URL". An expired access
//! token is refreshed once (before the request when its expiry is known, or after a 401) and
//! the new tokens are saved where the old ones came from. A personal API key (`CYNORK_API_KEY`
//! or the config's `api_key_file`) is sent as the bearer token as it is and never refreshed.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use cynode_contracts::problem::Problem;
use cynode_contracts::routes;
use cynode_contracts::user::{LoginRequest, LogoutRequest, RefreshRequest, TokenResponse};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{self, Config};
use crate::error::{CliError, Result};

/// Refresh this long before the access token's recorded expiry, so it does not lapse in flight.
const REFRESH_MARGIN_SECS: i64 = 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// For calls a model answers (chat): the gateway's own completion timeout is 120 s by default,
/// and a streamed answer may take longer than that in all; we give up only well after it.
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
/// For log streams that follow a task to its end (a day: tasks end long before).
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A request body.
#[derive(Debug, Clone)]
pub enum Payload {
    Json(serde_json::Value),
    /// Bytes sent as they are (a multipart form) with their `Content-Type`.
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// Where the access token came from, and so where a refreshed one goes.
#[derive(Debug)]
pub enum TokenSource {
    /// `CYNORK_TOKEN`: used as is, never refreshed or written anywhere.
    Env,
    /// The config file, which receives refreshed tokens.
    File { path: PathBuf, config: Box<Config> },
    /// A personal API key: used as is until it is revoked or expires.
    ApiKey(KeyOrigin),
}

/// Where a personal API key came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `CYNORK_API_KEY`.
    Env,
    /// The file the config's `api_key_file` names.
    File(PathBuf),
}

/// A logged-in session.
pub struct Session {
    pub source: TokenSource,
    access: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("source", &self.source)
            .field("access", &"<redacted>")
            .finish()
    }
}

impl Session {
    pub fn from_env(token: String) -> Self {
        Self {
            source: TokenSource::Env,
            access: token,
        }
    }

    pub fn from_api_key(key: String, origin: KeyOrigin) -> Self {
        Self {
            source: TokenSource::ApiKey(origin),
            access: key,
        }
    }

    /// The session saved in the config file, if there is one.
    pub fn from_file(path: PathBuf, config: Config) -> Option<Self> {
        let access = config.token.clone().filter(|t| !t.is_empty())?;
        Some(Self {
            source: TokenSource::File {
                path,
                config: Box::new(config),
            },
            access,
        })
    }

    fn refresh_token(&self) -> Option<&str> {
        match &self.source {
            TokenSource::File { config, .. } => config.refresh_token.as_deref(),
            TokenSource::Env | TokenSource::ApiKey(_) => None,
        }
    }

    fn expiring(&self) -> bool {
        match &self.source {
            TokenSource::File { config, .. } => config.token_expires_at.is_some_and(|at| {
                at - chrono::Duration::seconds(REFRESH_MARGIN_SECS) <= Utc::now()
            }),
            TokenSource::Env | TokenSource::ApiKey(_) => false,
        }
    }

    /// What to do about a refused credential.
    fn hint(&self) -> String {
        match &self.source {
            TokenSource::ApiKey(KeyOrigin::Env) => {
                "check CYNORK_API_KEY: the key may be revoked or expired".into()
            }
            TokenSource::ApiKey(KeyOrigin::File(path)) => format!(
                "check the API key in {}: it may be revoked or expired",
                path.display()
            ),
            _ => "run `cynork auth login` (or set CYNORK_TOKEN)".into(),
        }
    }
}

/// The credential a command uses; the first found wins: `CYNORK_TOKEN`, `CYNORK_API_KEY`, the
/// login session saved in the config file, the API key in the file its `api_key_file` names.
/// A login is the most deliberate act, so it beats a key configured once; `auth logout`
/// falls back to the key.
pub fn resolve_session(
    env_token: Option<String>,
    env_key: Option<String>,
    path: PathBuf,
    config: Config,
) -> Result<Option<Session>> {
    if let Some(token) = env_token {
        return Ok(Some(Session::from_env(token)));
    }
    if let Some(key) = env_key {
        return Ok(Some(Session::from_api_key(key, KeyOrigin::Env)));
    }
    let key_file = config.api_key_file.clone();
    if let Some(session) = Session::from_file(path.clone(), config) {
        return Ok(Some(session));
    }
    match key_file {
        Some(file) => {
            let key = config::read_api_key(&path, &file)?;
            Ok(Some(Session::from_api_key(key, KeyOrigin::File(file))))
        }
        None => Ok(None),
    }
}

/// Fills `config` with a fresh token pair.
pub fn store_tokens(config: &mut Config, tokens: &TokenResponse) {
    config.token = Some(tokens.access_token.clone());
    config.refresh_token = Some(tokens.refresh_token.clone());
    config.token_expires_at =
        Some(Utc::now() + chrono::Duration::seconds(i64::try_from(tokens.expires_in).unwrap_or(0)));
}

#[derive(Debug)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
    session: Option<Session>,
    /// Whole-request limit: [`REQUEST_TIMEOUT`], or [`MODEL_TIMEOUT`] after [`Client::for_model_calls`].
    timeout: Duration,
    /// Sent with every request (e.g. chat's `OpenAI-Project`).
    headers: Vec<(&'static str, String)>,
}

impl Client {
    pub fn new(gateway: &str, session: Option<Session>) -> Result<Self> {
        let base = parse_gateway_url(gateway)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("cynork/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| CliError::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base,
            http,
            session,
            timeout: REQUEST_TIMEOUT,
            headers: Vec::new(),
        })
    }

    /// The same client, sending `name: value` with every request.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The same client for calls that wait for a model to answer (chat), with a limit long
    /// enough for the gateway to give up first.
    pub fn for_model_calls(mut self) -> Self {
        self.timeout = MODEL_TIMEOUT;
        self
    }

    /// The same client for streams that last as long as a task runs (`task logs -F`): no
    /// whole-request limit worth the name; the caller gives up on a silent stream itself.
    pub fn for_streams(mut self) -> Self {
        self.timeout = STREAM_TIMEOUT;
        self
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// `base` + path segments; segments are percent-encoded, so a task name cannot escape.
    /// Callers build them from [`cynode_contracts::routes`] with [`routes::fill`].
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// An unauthenticated GET returning status and body text (health and readiness).
    pub async fn get_text(&self, segments: &[&str]) -> Result<(StatusCode, String)> {
        let resp = self
            .http
            .get(self.url(segments))
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(&e))?;
        Ok((status, text))
    }

    /// `POST /v1/auth/login`.
    pub async fn login(&self, handle: &str, password: &str) -> Result<TokenResponse> {
        let body = LoginRequest {
            handle: handle.to_owned(),
            password: password.to_owned(),
        };
        let resp = self
            .send(
                Method::POST,
                &routes::fill(routes::user::AUTH_LOGIN, &[]),
                &[],
                Some(&Payload::Json(json_body(&body))),
                None,
            )
            .await?;
        let resp = self.check(resp, false).await?;
        self.decode(resp).await
    }

    /// An authenticated call returning JSON.
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let resp = self
            .authed(method, segments, query, |_| {
                body.cloned().map(Payload::Json)
            })
            .await?;
        self.decode(resp).await
    }

    /// An authenticated call with any body, returning JSON.
    pub async fn call_with<T: DeserializeOwned>(
        &mut self,
        method: Method,
        segments: &[&str],
        payload: &Payload,
    ) -> Result<T> {
        let resp = self
            .authed(method, segments, &[], |_| Some(payload.clone()))
            .await?;
        self.decode(resp).await
    }

    /// An authenticated `GET` of raw bytes: the answer's `Content-Type` and body.
    pub async fn get_bytes(&mut self, segments: &[&str]) -> Result<(Option<String>, Vec<u8>)> {
        let resp = self.authed(Method::GET, segments, &[], |_| None).await?;
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        Ok((content_type, bytes.to_vec()))
    }

    /// An authenticated `POST` whose answer the caller reads as it arrives (server-sent
    /// events); non-2xx answers are errors as for [`Client::call`].
    pub async fn post_streaming(
        &mut self,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> Result<reqwest::Response> {
        self.authed(Method::POST, segments, &[], |_| {
            Some(Payload::Json(body.clone()))
        })
        .await
    }

    /// An authenticated `GET` whose answer the caller reads as it arrives (server-sent
    /// events); non-2xx answers are errors as for [`Client::call`].
    pub async fn get_streaming(
        &mut self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<reqwest::Response> {
        self.authed(Method::GET, segments, query, |_| None).await
    }

    /// The error for a response body that broke off while being read.
    pub fn read_error(&self, e: &reqwest::Error) -> CliError {
        self.transport_error(e)
    }

    /// An authenticated call whose answer has no body (204).
    pub async fn call_no_content(
        &mut self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<()> {
        self.authed(method, segments, query, |_| None)
            .await
            .map(drop)
    }

    /// An authenticated call whose answer, if any, is not needed (only its status).
    pub async fn call_discarding(
        &mut self,
        method: Method,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> Result<()> {
        self.authed(method, segments, &[], |_| Some(Payload::Json(body.clone())))
            .await
            .map(drop)
    }

    /// `POST /v1/auth/logout`, revoking the refresh token too. The body is built at send time
    /// because a refresh on the way rotates the refresh token. With an API key there is no
    /// session to end: nothing is sent, and the key keeps working.
    pub async fn logout(&mut self) -> Result<()> {
        if let Some(TokenSource::ApiKey(_)) = self.session.as_ref().map(|s| &s.source) {
            eprintln!(
                "note: cynork uses an API key, which logout does not revoke; `cynork apikey revoke ID` does"
            );
            return Ok(());
        }
        let path = routes::fill(routes::user::AUTH_LOGOUT, &[]);
        self.authed(Method::POST, &path, &[], |session| {
            Some(Payload::Json(json_body(&LogoutRequest {
                refresh_token: session.refresh_token().map(str::to_owned),
            })))
        })
        .await
        .map(drop)
    }

    async fn authed(
        &mut self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: impl Fn(&Session) -> Option<Payload>,
    ) -> Result<reqwest::Response> {
        let Some(session) = self.session.as_ref() else {
            return Err(not_logged_in());
        };
        if session.expiring() && session.refresh_token().is_some() {
            self.refresh().await?;
        }
        let resp = self
            .send_authed(method.clone(), segments, query, &body)
            .await?;
        let can_refresh = self
            .session
            .as_ref()
            .is_some_and(|s| s.refresh_token().is_some());
        if resp.status() == StatusCode::UNAUTHORIZED && can_refresh {
            self.refresh().await?;
            let resp = self.send_authed(method, segments, query, &body).await?;
            return self.check(resp, true).await;
        }
        self.check(resp, true).await
    }

    async fn send_authed(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: &impl Fn(&Session) -> Option<Payload>,
    ) -> Result<reqwest::Response> {
        let session = self.session.as_ref().ok_or_else(not_logged_in)?;
        let body = body(session);
        self.send(
            method,
            segments,
            query,
            body.as_ref(),
            Some(&session.access),
        )
        .await
    }

    /// Trades the refresh token for a new pair and saves it. A refused refresh means the
    /// session is over: that is an auth error telling the user to log in again.
    pub async fn refresh(&mut self) -> Result<()> {
        if let Some(TokenSource::ApiKey(_)) = self.session.as_ref().map(|s| &s.source) {
            return Err(CliError::Usage(
                "cynork uses an API key, which has no session to refresh; it works until revoked or expired".into(),
            ));
        }
        let Some(refresh_token) = self
            .session
            .as_ref()
            .and_then(|s| s.refresh_token())
            .map(str::to_owned)
        else {
            return Err(not_logged_in());
        };
        let body = RefreshRequest { refresh_token };
        let resp = self
            .send(
                Method::POST,
                &routes::fill(routes::user::AUTH_REFRESH, &[]),
                &[],
                Some(&Payload::Json(json_body(&body))),
                None,
            )
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::BAD_REQUEST {
            let detail = problem_line(resp).await;
            return Err(CliError::Auth(format!(
                "the session has expired or was revoked ({detail}); run `cynork auth login`"
            )));
        }
        let resp = self.check(resp, false).await?;
        let tokens: TokenResponse = self.decode(resp).await?;
        let session = self.session.as_mut().expect("checked above");
        session.access = tokens.access_token.clone();
        if let TokenSource::File { path, config } = &mut session.source {
            store_tokens(config, &tokens);
            config::save(path, config)?;
        }
        Ok(())
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Payload>,
        token: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method, self.url(segments))
            .timeout(self.timeout);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        match body {
            Some(Payload::Json(value)) => req = req.json(value),
            Some(Payload::Raw {
                content_type,
                bytes,
            }) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes.clone());
            }
            None => {}
        }
        req.send().await.map_err(|e| self.transport_error(&e))
    }

    /// Turns a non-2xx answer into the matching error.
    async fn check(&self, resp: reqwest::Response, authed: bool) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let line = problem_line(resp).await;
        Err(match status.as_u16() {
            401 if authed => {
                let hint = self.session.as_ref().map_or_else(
                    || "run `cynork auth login` (or set CYNORK_TOKEN)".into(),
                    Session::hint,
                );
                CliError::Auth(format!("{line}; {hint}"))
            }
            code => CliError::from_status(code, line),
        })
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T> {
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Server(format!(
                "the gateway at {} sent an answer cynork does not understand: {e}",
                self.base
            ))
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> CliError {
        if e.is_timeout() {
            return CliError::Network(format!(
                "the gateway at {} did not answer in time",
                self.base
            ));
        }
        CliError::Network(format!(
            "cannot reach gateway at {}: {}",
            self.base,
            root_cause(e)
        ))
    }
}

/// A request body as JSON. Our request types always serialise.
pub fn json_body<T: Serialize>(body: &T) -> serde_json::Value {
    serde_json::to_value(body).expect("request types serialise to JSON")
}

fn not_logged_in() -> CliError {
    CliError::Auth(
        "not logged in: run `cynork auth login`, or set CYNORK_TOKEN or CYNORK_API_KEY".into(),
    )
}

/// Accepts `host:port` too, as people type it.
pub fn parse_gateway_url(raw: &str) -> Result<Url> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| CliError::Usage(format!("invalid gateway URL {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(CliError::Usage(format!(
            "invalid gateway URL {raw:?}: expected http(s)://host[:port]"
        )));
    }
    Ok(url)
}

/// One line describing an error answer: the problem's `title: detail`, or the status and the
/// first line of whatever else came back.
async fn problem_line(resp: reqwest::Response) -> String {
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    describe_error_body(status, &bytes)
}

pub fn describe_error_body(status: StatusCode, bytes: &[u8]) -> String {
    if let Ok(problem) = serde_json::from_slice::<Problem>(bytes) {
        return one_line(&problem.one_line());
    }
    // The OpenAI-compatible routes answer `{"error": {"message", "code", ...}}`.
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(message) = body["error"]["message"].as_str()
    {
        let code = body["error"]["code"].as_str().unwrap_or("error");
        return one_line(&format!("{} {code}: {message}", status.as_u16()));
    }
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let reason = status.canonical_reason().unwrap_or("error");
    match first {
        Some(line) => {
            let line: String = line.chars().take(200).collect();
            format!("{} {reason}: {}", status.as_u16(), one_line(&line))
        }
        None => format!("{} {reason}", status.as_u16()),
    }
}

/// Control characters (newlines, escapes) from a server never reach the terminal.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_bodies_become_one_line() {
        let body = br#"{"type":"https://cynode.ai/problems/not-found","title":"Not found","status":404,"detail":"task x\ndoes not exist"}"#;
        assert_eq!(
            describe_error_body(StatusCode::NOT_FOUND, body),
            "Not found: task x does not exist"
        );
    }

    #[test]
    fn other_bodies_show_status_and_first_line() {
        assert_eq!(
            describe_error_body(
                StatusCode::BAD_GATEWAY,
                b"\n<html>upstream down</html>\nmore"
            ),
            "502 Bad Gateway: <html>upstream down</html>"
        );
        assert_eq!(
            describe_error_body(StatusCode::SERVICE_UNAVAILABLE, b""),
            "503 Service Unavailable"
        );
    }

    #[test]
    fn gateway_urls() {
        assert_eq!(
            parse_gateway_url("localhost:12080").unwrap().as_str(),
            "http://localhost:12080/"
        );
        assert!(parse_gateway_url("ftp://x").is_err());
        assert!(parse_gateway_url("http://").is_err());
    }

    #[test]
    fn task_names_are_encoded_as_one_segment() {
        let client = Client::new("http://gw:1/prefix/", None).unwrap();
        assert_eq!(
            client
                .url(&routes::fill(routes::user::TASK, &["../users/me"]))
                .as_str(),
            "http://gw:1/prefix/v1/tasks/..%2Fusers%2Fme"
        );
    }

    #[test]
    fn debug_never_shows_tokens() {
        let config = Config {
            token: Some("access-secret".into()),
            refresh_token: Some("refresh-secret".into()),
            ..Config::default()
        };
        let client =
            Client::new("http://gw:1", Session::from_file("c.yaml".into(), config)).unwrap();
        let text = format!("{client:?}");
        assert!(
            !text.contains("access-secret") && !text.contains("refresh-secret"),
            "{text}"
        );
        let text = format!("{:?}", Session::from_env("env-secret".into()));
        assert!(!text.contains("env-secret"), "{text}");
        let text = format!(
            "{:?}",
            Session::from_api_key("cyn_key-secret".into(), KeyOrigin::Env)
        );
        assert!(!text.contains("key-secret"), "{text}");
    }

    #[test]
    fn credentials_resolve_env_token_env_key_session_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(dir.path().join("key"), "cyn_from_file\n").unwrap();
        let with_session = Config {
            token: Some("saved".into()),
            api_key_file: Some("key".into()),
            ..Config::default()
        };
        let only_file = Config {
            api_key_file: Some("key".into()),
            ..Config::default()
        };
        let resolve = |token: Option<&str>, key: Option<&str>, config: &Config| {
            resolve_session(
                token.map(Into::into),
                key.map(Into::into),
                path.clone(),
                config.clone(),
            )
            .unwrap()
            .map(|s| (s.access.clone(), s.source))
        };
        let (access, source) = resolve(Some("t"), Some("cyn_k"), &with_session).unwrap();
        assert!(access == "t" && matches!(source, TokenSource::Env));
        let (access, source) = resolve(None, Some("cyn_k"), &with_session).unwrap();
        assert!(access == "cyn_k" && matches!(source, TokenSource::ApiKey(KeyOrigin::Env)));
        let (access, source) = resolve(None, None, &with_session).unwrap();
        assert!(access == "saved" && matches!(source, TokenSource::File { .. }));
        let (access, source) = resolve(None, None, &only_file).unwrap();
        assert_eq!(access, "cyn_from_file");
        assert!(matches!(source, TokenSource::ApiKey(KeyOrigin::File(_))));
        assert!(resolve(None, None, &Config::default()).is_none());
        let missing = Config {
            api_key_file: Some("nope".into()),
            ..Config::default()
        };
        assert!(resolve_session(None, None, path.clone(), missing).is_err());
    }

    #[test]
    fn expiry_triggers_refresh_only_with_a_known_past_expiry() {
        let mut config = Config {
            token: Some("a".into()),
            refresh_token: Some("r".into()),
            token_expires_at: Some(Utc::now() + chrono::Duration::seconds(5)),
            ..Config::default()
        };
        let session = Session::from_file("x".into(), config.clone()).unwrap();
        assert!(session.expiring());
        config.token_expires_at = Some(Utc::now() + chrono::Duration::seconds(600));
        let session = Session::from_file("x".into(), config.clone()).unwrap();
        assert!(!session.expiring());
        assert!(!Session::from_env("t".into()).expiring());
        config.token = None;
        assert!(Session::from_file("x".into(), config).is_none());
    }
}
