//! The admin console at `/admin`: the embedded files with their content types, security and
//! cache headers, gzip twins and ETags; the console's sign-in, which admits only the
//! configured roles; and the switch that turns it off.

use crate::common::*;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = s.client.get(format!("{}{}", s.base, path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    Got { status, headers, body: resp.bytes().await.unwrap().to_vec() }
}

fn assert_security_headers(g: &Got, what: &str) {
    assert_eq!(g.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(g.header("x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(g.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(g.header("x-frame-options"), Some("DENY"), "{what}");
}

/// The hashed script and stylesheet `index.html` names.
fn assets(index: &str) -> (String, String) {
    let find = |ext: &str| {
        index
            .split('"')
            .find(|p| p.starts_with("/admin/assets/index-") && p.ends_with(ext))
            .unwrap_or_else(|| panic!("no {ext} in {index}"))
            .to_string()
    };
    (find(".js"), find(".css"))
}

#[tokio::test]
async fn the_console_is_served_with_content_types_security_and_cache_headers() {
    let s = TestServer::start().await;
    let mut index = String::new();
    for path in ["/admin", "/admin/"] {
        let g = get(&s, path, &[]).await;
        assert_eq!(g.status, 200, "{path}");
        assert_eq!(g.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(g.header("cache-control"), Some("no-cache"), "index.html is revalidated");
        assert_eq!(g.header("content-encoding"), None);
        assert_security_headers(&g, path);
        index = String::from_utf8(g.body).unwrap();
    }
    assert!(index.contains("<div id=\"app\"></div>"), "{index}");
    let (js, css) = assets(&index);
    for (path, content_type) in [(&js, "text/javascript; charset=utf-8"), (&css, "text/css; charset=utf-8")] {
        let plain = get(&s, path, &[]).await;
        assert_eq!(plain.status, 200, "{path}");
        assert_eq!(plain.header("content-type"), Some(content_type));
        assert_eq!(plain.header("cache-control"), Some("public, max-age=31536000, immutable"));
        assert_eq!(plain.header("vary"), Some("accept-encoding"));
        assert_security_headers(&plain, path);
        // The gzip twin to clients that take gzip: smaller, with its own ETag.
        let gz = get(&s, path, &[("accept-encoding", "br, gzip")]).await;
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(gz.header("content-type"), Some(content_type));
        assert!(gz.body.len() < plain.body.len(), "{path}: {} >= {}", gz.body.len(), plain.body.len());
        assert_eq!(&gz.body[..2], &[0x1f, 0x8b], "{path} is gzip");
        assert_ne!(gz.header("etag"), plain.header("etag"));
        // A client holding the file gets 304, with the same headers and no body.
        let etag = gz.header("etag").unwrap().to_string();
        let again = get(&s, path, &[("accept-encoding", "gzip"), ("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_security_headers(&again, path);
        let refused = get(&s, path, &[("accept-encoding", "gzip;q=0, identity")]).await;
        assert_eq!(refused.header("content-encoding"), None, "q=0 refuses gzip");
        assert_eq!(refused.body, plain.body);
    }
    // The icon, as an image.
    let icon = index.split('"').find(|p| p.ends_with(".svg")).expect("an icon");
    assert_eq!(get(&s, icon, &[]).await.header("content-type"), Some("image/svg+xml"));
    // HEAD answers like GET, without a body.
    let head = s.client.head(format!("{}{}", s.base, js)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-security-policy"], CSP);
    // Unknown files, the gzip twins by name and overlong paths are 404, still with the headers.
    let long = format!("/admin/{}", "a".repeat(300));
    for path in ["/admin/nope.js", "/admin/assets/..%2Findex.html", &format!("{js}.gz"), &long, "/admin/api/nope"] {
        let g = get(&s, path, &[]).await;
        assert_eq!(g.status, 404, "{path}");
        assert_security_headers(&g, path);
    }
}

async fn console_login(s: &TestServer, user: &str, password: &str) -> Resp {
    s.post("/admin/api/login", &Auth::None, &json!({"username": user, "password": password})).await
}

async fn console_session(s: &TestServer, token: &str) -> (StatusCode, Value, Option<String>) {
    let resp = s.client.get(format!("{}/admin/api/session", s.base)).bearer_auth(token).send().await.unwrap();
    let status = resp.status();
    let cache = resp.headers().get("cache-control").map(|v| v.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap(), cache)
}

#[tokio::test]
async fn console_sign_in_admits_dba_and_system_only() {
    let s = TestServer::start().await;
    s.create_user_with_role("alice", "user").await;
    s.create_user_with_role("svc", "service").await;
    s.create_user_with_role("dan", "dba").await;

    for (user, role) in [("alice", "user"), ("svc", "service")] {
        let r = console_login(&s, user, &format!("{user}-password")).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.code(), "FORBIDDEN");
        assert_eq!(
            r.body["error"]["message"],
            format!("the admin console is open to roles dba, system; '{user}' has role {role}")
        );
        assert!(r.body.get("access_token").is_none(), "no token for a refused role");
    }
    // Wrong passwords are 401 as on the normal login.
    let r = console_login(&s, "dan", "wrong-password").await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "UNAUTHORIZED"));

    let root = console_login(&s, "root", ROOT_PASSWORD).await;
    assert_eq!(root.status, 200, "{}", root.body);
    assert_eq!(root.body["user"]["role"], "system");
    let dan = console_login(&s, "dan", "dan-password").await;
    assert_eq!(dan.status, 200, "{}", dan.body);
    let token = dan.body["access_token"].as_str().unwrap().to_string();
    let refresh = dan.body["refresh_token"].as_str().unwrap().to_string();

    // The session check (a reloaded tab): the role as the catalog has it now.
    let (status, body, cache) = console_session(&s, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "dan");
    assert_eq!(body["allowed_roles"], json!(["dba", "system"]));
    assert_eq!(cache.as_deref(), Some("no-store"), "token answers are not cached");
    // The console's token is an ordinary one: the SQL API checks each statement as usual.
    let r = s.sql(&Auth::Bearer(token.clone()), "SELECT count(*) FROM system.users").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Demoted: the console refuses the session and its renewal.
    s.sql_ok(&Auth::root(), "ALTER USER 'dan' SET ROLE user").await;
    let (status, body, _) = console_session(&s, &token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["message"], "the admin console is open to roles dba, system; 'dan' has role user");
    let r = s.post("/admin/api/refresh", &Auth::None, &json!({"refresh_token": refresh})).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "FORBIDDEN"), "{}", r.body);
    // Promoted again: renewal works and returns new tokens.
    s.sql_ok(&Auth::root(), "ALTER USER 'dan' SET ROLE dba").await;
    let r = s.post("/admin/api/refresh", &Auth::None, &json!({"refresh_token": refresh})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["role"], "dba");

    // No or a bad token is 401; an access token is no refresh token.
    let resp = s.client.get(format!("{}/admin/api/session", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(console_session(&s, "not-a-token").await.0, 401);
    let r = s.post("/admin/api/refresh", &Auth::None, &json!({"refresh_token": token})).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn console_roles_are_configurable() {
    let s = TestServer::start_with_config("[admin]\nroles = [\"system\"]\n").await;
    s.create_user_with_role("dan", "dba").await;
    let r = console_login(&s, "dan", "dan-password").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["error"]["message"], "the admin console is open to roles system; 'dan' has role dba");
    assert_eq!(console_login(&s, "root", ROOT_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let s = TestServer::start_with_config("[admin]\nenabled = false\n").await;
    for path in ["/admin", "/admin/", "/admin/index.html"] {
        let g = get(&s, path, &[]).await;
        assert_eq!(g.status, 404, "{path}");
        assert_eq!(g.header("content-security-policy"), None, "{path}: an unknown path like any other");
    }
    let r = console_login(&s, "root", ROOT_PASSWORD).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "NOT_FOUND"), "{}", r.body);
    // The rest of the server is unaffected.
    s.sql_ok(&Auth::root(), "SELECT 1").await;
}

#[test]
fn an_empty_role_list_stops_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kalamdb.toml");
    std::fs::write(&config, "[admin]\nroles = []\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .args(["--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admin.roles"), "{stderr}");
}
