//! The admin console: the files of `admin/dist` (built by `scripts/build-admin.sh`, committed,
//! embedded here at compile time so `cargo build` needs neither npm nor a network) served
//! under `/admin`, and the console's sign-in, which admits only the roles in `admin.roles`.
//!
//! The console reads and changes data only through `POST /v1/api/sql` and `/v1/ws`, which
//! check every statement against the caller's role; the gate here decides who gets a console
//! session at all. Every response under `/admin` carries a strict Content-Security-Policy.

use crate::api::AppState;
use crate::api::body::JsonBody;
use crate::error::{KalamError, StatementError};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use kalamdb_client_core::protocol::{LoginRequest, RefreshRequest, Role, TokenResponse, UserInfo};
use rust_embed::Embed;
use serde::Serialize;
use std::borrow::Cow;

/// The built console. `debug-embed` embeds it in debug builds too, so tests run what ships.
/// Every build changes `index.html` (it names the hashed assets), which cargo tracks, so a
/// rebuilt console is picked up by the next `cargo build`.
#[derive(Embed)]
#[folder = "../admin/dist/"]
struct Assets;

/// No script, style, image or connection from anywhere but the server itself; no inline
/// code; no framing. The built `index.html` has no inline script or style. `'wasm-unsafe-eval'`
/// lets the SQL editor compile its completion module (WebAssembly, a file of the server's
/// own); it allows no JavaScript `eval`.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Longer paths are not the console's (its files have short names).
const MAX_PATH_BYTES: usize = 256;

/// Hashed file names never change content: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Routes under `/admin`, with the security headers on every response.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/api/login", post(login))
        .route("/admin/api/refresh", post(refresh))
        .route("/admin/api/session", get(session))
        .route("/admin/{*path}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    // The API's answers hold tokens and the errors are not worth keeping: no cache stores them.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // `.gz` twins are sent as Content-Encoding, never by name.
    if path.len() > MAX_PATH_BYTES || path.ends_with(".gz") {
        return not_found();
    }
    serve(&path, &headers)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found").into_response()
}

/// A built file: its gzip twin to clients that accept gzip, an ETag (the content's SHA-256)
/// answered with 304 when the client has it, a long cache for hashed assets and revalidation
/// for `index.html`.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else { return not_found() };
    let gzip = accepts_gzip(headers).then(|| Assets::get(&format!("{path}.gz"))).flatten();
    let (body, encoding) = match gzip {
        Some(gz) => (gz.data, Some("gzip")),
        None => (file.data, None),
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}{}\"", hex::encode(&hash[..16]), if encoding.is_some() { "-gz" } else { "" });
    let cache = if path.starts_with("assets/") { IMMUTABLE } else { "no-cache" };
    let mut out = HeaderMap::new();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    if let Some(e) = encoding {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    // Embedded files are 'static: sent without a copy.
    let body = match body {
        Cow::Borrowed(b) => Bytes::from_static(b),
        Cow::Owned(v) => Bytes::from(v),
    };
    (out, body).into_response()
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else { return false };
    v.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused =
            parts.any(|p| p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        // What WebAssembly.instantiateStreaming insists on.
        Some("wasm") => "application/wasm",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Refuses roles the console is not open to, with a message the sign-in page shows.
fn admit(state: &AppState, username: &str, role: Role) -> Result<(), KalamError> {
    let allowed = &state.db.config.admin.roles;
    if allowed.contains(&role) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
    Err(KalamError::Forbidden(format!(
        "the admin console is open to roles {}; '{username}' has role {role}",
        names.join(", ")
    )))
}

/// `POST /admin/api/login`: the login endpoint's check (same lockout), then the role gate;
/// a refused role gets no token.
async fn login(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, StatementError> {
    let user = crate::api::auth::check_credentials(&state, &req).await?;
    admit(&state, &user.username, user.role)?;
    Ok(Json(state.db.auth.issue(&user)?))
}

/// `POST /admin/api/refresh`: renews the console's tokens while the role is still admitted.
async fn refresh(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, StatementError> {
    let tokens = state.db.auth.refresh(&req.refresh_token)?;
    admit(&state, &tokens.user.username, tokens.user.role)?;
    Ok(Json(tokens))
}

/// Answer of `GET /admin/api/session`.
#[derive(Serialize)]
struct SessionInfo {
    user: UserInfo,
    allowed_roles: Vec<Role>,
}

/// `GET /admin/api/session` with `Authorization: Bearer`: whether the token (kept by a
/// reloaded tab) still opens the console, and as whom (the role as the catalog has it now).
async fn session(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SessionInfo>, StatementError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .ok_or_else(|| KalamError::Unauthorized("missing Authorization: Bearer <token>".into()))?;
    let p = state.db.auth.authenticate_token(token.trim())?;
    admit(&state, &p.username, p.role)?;
    Ok(Json(SessionInfo {
        user: UserInfo { id: p.user_id.to_string(), username: p.username, role: p.role },
        allowed_roles: state.db.config.admin.roles.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
        h
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_build_is_embedded_without_inline_code() {
        let index = Assets::get("index.html").expect("admin/dist/index.html is embedded");
        let html = std::str::from_utf8(&index.data).unwrap();
        assert!(html.contains("<script type=\"module\""), "{html}");
        // CSP allows no inline script or style: every <script> has a src, no style blocks or attributes.
        assert_eq!(html.matches("<script").count(), html.matches("<script type=\"module\" crossorigin src=").count());
        assert!(!html.contains("<style") && !html.contains("style="), "{html}");
        for name in Assets::iter() {
            if !name.ends_with(".gz") && name.as_ref() != "index.html" {
                assert!(name.starts_with("assets/"), "{name} is not a hashed asset");
            }
        }
    }
}
