//! The web console's files, served by the user gateway itself at `/` (same origin as the API:
//! no CORS, one port, one unit), and the security headers every gateway response carries.
//!
//! The console is a static single-page app (`console/`, built into `console/dist`, installed at
//! `share/cynodeai/console`). A path that is not an API route and not a file is one of the app's
//! own pages (`/tasks/…`, `/chat/…`): it gets `index.html`, and the app's router shows the page.
//! `/v1/*` never does: an unknown API path is a 404 problem, as before.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use cynode_contracts::routes;
use cynode_service_kit::http::not_found_fallback;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// No inline script, no eval, nothing from another origin; no framing. Inline styles are
/// allowed: the app sets element styles (virtual scrolling, Swagger UI) and styles cannot run
/// code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers of every gateway response: API answers are not pages, but a browser that is
/// tricked into rendering one gets the same protection.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The fallback of the gateway's router: a console file, the console's page, or a 404
/// problem for anything under `/v1/`.
pub async fn serve(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let api = path
        .strip_prefix(routes::API_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if api || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return not_found_fallback(req.uri().clone()).await.into_response();
    }
    let Some(dir) = state.config.console.dir.as_deref() else {
        return not_installed();
    };
    let immutable = path.starts_with("/assets/");
    let mut response = files(dir)
        .oneshot(req)
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|never| match never {});
    // Vite names assets by their content hash: a changed file is a new name.
    let cache = match (immutable, response.status()) {
        (true, StatusCode::OK) => "public, max-age=31536000, immutable",
        _ => "no-cache",
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The built console's files, gzip-compressed copies preferred when the browser takes them;
/// `index.html` for any path that is not a file.
fn files(dir: &Path) -> ServeDir<ServeFile> {
    ServeDir::new(dir)
        .precompressed_gzip()
        .fallback(ServeFile::new(dir.join("index.html")).precompressed_gzip())
}

fn not_installed() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CyNodeAI</title></head>\
             <body><main><h1>The web console is not installed here</h1>\
             <p>This CyNodeAI gateway answers the API under <code>/v1/</code> \
             (<a href=\"/openapi.json\">/openapi.json</a>). To serve the console, build it \
             (<code>just console</code>) and set <code>CONSOLE_DIR</code> to its \
             <code>dist</code> directory, or install the package that ships it.</p></main></body></html>",
        ),
    )
        .into_response()
}
