//! Authentication and authorisation: login, tokens, refresh, lockout, password rules, role
//! checks for DDL and user management, and what `system.users` exposes (SPEC §4.7, §5).

use crate::common::*;
use base64::Engine;
use serde_json::{Value, json};

const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
const LOGIN: &str = "/v1/api/auth/login";
const REFRESH: &str = "/v1/api/auth/refresh";

async fn login(s: &TestServer, user: &str, pw: &str) -> Resp {
    s.post(LOGIN, &Auth::None, &json!({"username": user, "password": pw})).await
}

/// Logs in and returns the token response body.
async fn login_ok(s: &TestServer, user: &str, pw: &str) -> Value {
    let r = login(s, user, pw).await;
    assert_eq!(r.status, 200, "login of {user} failed: {}", r.body);
    r.body
}

async fn refresh(s: &TestServer, token: &str) -> Resp {
    s.post(REFRESH, &Auth::None, &json!({"refresh_token": token})).await
}

fn bearer(v: &Value) -> Auth {
    Auth::Bearer(v["access_token"].as_str().expect("access_token").to_string())
}

fn assert_status_code(r: &Resp, status: u16, code: &str, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
    assert_eq!(r.code(), code, "{what}: {}", r.body);
}

/// Signs arbitrary claims as an HS256 JWT.
fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign test token")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64url_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

async fn setup_app(s: &TestServer) {
    s.sql_ok(&Auth::root(), "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
}

// ---------------------------------------------------------------------------------------
// Login and tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn login_returns_tokens_and_bearer_works() {
    let s = TestServer::start().await;
    setup_app(&s).await;
    s.create_user("alice").await;
    let t = login_ok(&s, "alice", "alice-password").await;
    assert_eq!(t["token_type"], "Bearer");
    let access = t["access_token"].as_str().unwrap();
    let refresh_token = t["refresh_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "access token is a JWT");
    assert_eq!(refresh_token.split('.').count(), 3, "refresh token is a JWT");
    assert_ne!(access, refresh_token);
    let expires_at = t["expires_at"].as_str().expect("expires_at is a string");
    assert!(expires_at.starts_with("20") && expires_at.contains('T'), "RFC 3339 expiry: {expires_at}");
    assert!(t["user"]["id"].is_string() && !t["user"]["id"].as_str().unwrap().is_empty(), "{t}");
    assert_eq!(t["user"]["username"], "alice");
    assert_eq!(t["user"]["role"], "user");
    assert!(!t.to_string().contains("$2"), "no password hash in the login response: {t}");

    // The access token works for SQL, as alice.
    let alice = bearer(&t);
    s.sql_ok(&alice, "INSERT INTO app.notes (id, body) VALUES (1, 'via bearer')").await;
    let r = s.sql_ok(&Auth::basic("alice", "alice-password"), "SELECT body FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!(["via bearer"])], "bearer and basic act as the same user");

    // Root logs in too, with its role.
    let t = login_ok(&s, "root", ROOT_PASSWORD).await;
    assert_eq!(t["user"]["role"], "system");
    s.sql_ok(&bearer(&t), "SELECT count(*) FROM system.users").await;
}

#[tokio::test]
async fn tokens_survive_a_restart() {
    let mut s = TestServer::start().await;
    s.create_user("alice").await;
    let t = login_ok(&s, "alice", "alice-password").await;
    s.restart();
    s.sql_ok(&bearer(&t), "SELECT 1").await;
    let r = refresh(&s, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn refresh_issues_new_tokens_and_kinds_are_not_interchangeable() {
    let s = TestServer::start().await;
    s.create_user("alice").await;
    let t = login_ok(&s, "alice", "alice-password").await;
    let access = t["access_token"].as_str().unwrap();
    let refresh_token = t["refresh_token"].as_str().unwrap();

    let r = refresh(&s, refresh_token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["user"]["username"], "alice");
    assert_eq!(r.body["user"]["id"], t["user"]["id"]);
    assert!(r.body["refresh_token"].is_string());
    s.sql_ok(&bearer(&r.body), "SELECT 1").await;
    // The new refresh token refreshes again.
    let r2 = refresh(&s, r.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r2.status, 200, "{}", r2.body);

    // An access token is not a refresh token ...
    let r = refresh(&s, access).await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "access token used to refresh");
    // ... and a refresh token is not an access token.
    let r = s.sql(&Auth::Bearer(refresh_token.to_string()), "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "refresh token used as bearer");
    // Garbage refresh tokens.
    for bad in ["", "garbage", "a.b.c"] {
        let r = refresh(&s, bad).await;
        assert_status_code(&r, 401, "UNAUTHORIZED", &format!("refresh with {bad:?}"));
    }
}

#[tokio::test]
async fn bad_tokens_are_rejected() {
    let s = TestServer::start().await;
    s.create_user("alice").await;
    let t = login_ok(&s, "alice", "alice-password").await;
    let alice_id = t["user"]["id"].as_str().unwrap().to_string();
    let root_id = login_ok(&s, "root", ROOT_PASSWORD).await["user"]["id"].as_str().unwrap().to_string();
    let access = t["access_token"].as_str().unwrap().to_string();
    let parts: Vec<&str> = access.split('.').collect();
    let now = now_secs();

    let mut bad: Vec<(String, String)> = vec![
        ("garbage".into(), "garbage".into()),
        ("empty".into(), "".into()),
        ("three dots".into(), "a.b.c".into()),
        ("truncated".into(), access[..access.len() - 5].to_string()),
        ("appended".into(), format!("{access}x")),
    ];
    // Flip one character of the signature.
    let mut sig: Vec<u8> = parts[2].as_bytes().to_vec();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    bad.push(("bad signature".into(), format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(sig).unwrap())));
    // Tampered payload: alice's token rewritten to claim root's id, original signature.
    let mut payload: Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    payload["sub"] = json!(root_id);
    payload["username"] = json!("root");
    bad.push((
        "tampered payload".into(),
        format!("{}.{}.{}", parts[0], b64url(payload.to_string().as_bytes()), parts[2]),
    ));
    // Expired (well beyond any leeway), correctly signed.
    let expired = json!({"sub": alice_id, "username": "alice", "typ": "access", "iat": now - 7200, "exp": now - 3600});
    bad.push(("expired".into(), sign(&expired, JWT_SECRET)));
    // Signed with another secret, claiming root.
    let forged = json!({"sub": root_id, "username": "root", "typ": "access", "iat": now, "exp": now + 3600});
    bad.push(("wrong secret".into(), sign(&forged, "another-secret-another-secret-another-00")));
    // alg = none.
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    bad.push(("alg none".into(), format!("{none_header}.{}.", b64url(forged.to_string().as_bytes()))));
    // Correct secret, but a user id that does not exist.
    let ghost = json!({"sub": "999999999", "username": "ghost", "typ": "access", "iat": now, "exp": now + 3600});
    bad.push(("unknown user".into(), sign(&ghost, JWT_SECRET)));
    // Correct secret, refresh kind.
    let refresh_kind = json!({"sub": alice_id, "username": "alice", "typ": "refresh", "iat": now, "exp": now + 3600});
    bad.push(("refresh typ".into(), sign(&refresh_kind, JWT_SECRET)));

    for (what, token) in &bad {
        let r = s.sql(&Auth::Bearer(token.clone()), "SELECT 1").await;
        assert_status_code(&r, 401, "UNAUTHORIZED", what);
    }
    // A correctly signed, unexpired access token for alice is accepted (control for the
    // crafted tokens above).
    let fresh = json!({"sub": alice_id, "username": "alice", "typ": "access", "iat": now, "exp": now + 3600});
    s.sql_ok(&Auth::Bearer(sign(&fresh, JWT_SECRET)), "SELECT 1").await;

    // Unsupported schemes and malformed Basic credentials.
    for header in ["Digest abc", "Bearer", "Basic !!!notbase64", "Basic Zm9vYmFy", "Token abc", ""] {
        let req = s
            .client
            .post(format!("{}/v1/api/sql", s.base))
            .header("authorization", header)
            .json(&json!({"sql": "SELECT 1"}));
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "header {header:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "header {header:?}: {body}");
    }
}

#[tokio::test]
async fn missing_credentials_and_wrong_password_are_401() {
    let s = TestServer::start().await;
    s.create_user("alice").await;
    let r = s.sql(&Auth::None, "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "no Authorization header");
    let r = s.sql(&Auth::basic("alice", "wrong-password"), "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "basic with wrong password");
    let r = s.sql(&Auth::basic("nobody", "whatever-password"), "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "basic with unknown user");

    let wrong = login(&s, "alice", "wrong-password").await;
    assert_status_code(&wrong, 401, "UNAUTHORIZED", "login with wrong password");
    assert!(wrong.body.get("access_token").is_none());
    let unknown = login(&s, "nobody", "whatever-password").await;
    assert_status_code(&unknown, 401, "UNAUTHORIZED", "login with unknown user");
    // The answer does not reveal which user names exist.
    assert_eq!(wrong.body["error"]["message"], unknown.body["error"]["message"]);
    let r = login(&s, "alice", "").await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Malformed login bodies are 400, not 500.
    for body in [json!({"username": "alice"}), json!({"password": "x"}), json!({}), json!([1, 2]), json!("alice")] {
        let r = s.post(LOGIN, &Auth::None, &body).await;
        assert_status_code(&r, 400, "INVALID_REQUEST", &format!("login body {body}"));
    }
    let r = s.post_raw(LOGIN, &Auth::None, "{not json", "application/json").await;
    assert_status_code(&r, 400, "INVALID_REQUEST", "login with malformed JSON");
    let r = s.post(REFRESH, &Auth::None, &json!({})).await;
    assert_status_code(&r, 400, "INVALID_REQUEST", "refresh without refresh_token");
}

// ---------------------------------------------------------------------------------------
// Lockout
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn lockout_after_five_failures_persists_across_restart() {
    let mut s = TestServer::start().await;
    s.create_user("alice").await;
    s.create_user("bob").await;
    let before = login_ok(&s, "alice", "alice-password").await;
    for i in 0..5 {
        let r = login(&s, "alice", &format!("wrong-password-{i}")).await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    let r = login(&s, "alice", "alice-password").await;
    assert_status_code(&r, 401, "ACCOUNT_LOCKED", "right password after 5 failures");
    assert!(r.body.get("access_token").is_none());
    let r = s.sql(&Auth::basic("alice", "alice-password"), "SELECT 1").await;
    assert_status_code(&r, 401, "ACCOUNT_LOCKED", "basic auth while locked");
    let r = refresh(&s, before["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 401, "refresh while locked: {}", r.body);
    // Another account is not affected.
    login_ok(&s, "bob", "bob-password").await;

    // The lock is persisted.
    s.restart();
    let r = login(&s, "alice", "alice-password").await;
    assert_status_code(&r, 401, "ACCOUNT_LOCKED", "right password after restart");
    let r = s.sql(&Auth::basic("alice", "alice-password"), "SELECT 1").await;
    assert_status_code(&r, 401, "ACCOUNT_LOCKED", "basic auth after restart");
    login_ok(&s, "bob", "bob-password").await;
    // root can see the lock in system.users.
    let r = s.sql_ok(&Auth::root(), "SELECT locked_until IS NOT NULL FROM system.users WHERE username = 'alice'").await;
    assert_eq!(r.rows(0), &vec![json!([true])]);
}

#[tokio::test]
async fn failures_below_the_limit_do_not_lock() {
    let s = TestServer::start().await;
    s.create_user("alice").await;
    for round in 0..2 {
        for i in 0..4 {
            let r = login(&s, "alice", &format!("wrong-{round}-{i}")).await;
            assert_status_code(&r, 401, "UNAUTHORIZED", "wrong password below the limit");
        }
        // A success resets the counter.
        login_ok(&s, "alice", "alice-password").await;
    }
}

// ---------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn password_change_revokes_refresh_token() {
    let s = TestServer::start().await;
    s.create_user("alice").await;
    let t = login_ok(&s, "alice", "alice-password").await;
    let old_refresh = t["refresh_token"].as_str().unwrap().to_string();
    // The user changes their own password through SQL, authenticated by the token.
    let r = s.sql_ok(&bearer(&t), "ALTER USER 'alice' SET PASSWORD 'alice-new-password'").await;
    assert_eq!(r.body["status"], "success");

    let r = refresh(&s, &old_refresh).await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "refresh token from before the password change");
    let r = s.sql(&Auth::basic("alice", "alice-password"), "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "old password over basic");
    let r = login(&s, "alice", "alice-password").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "old password login");

    let t2 = login_ok(&s, "alice", "alice-new-password").await;
    let r = refresh(&s, t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "new refresh token works: {}", r.body);
    s.sql_ok(&Auth::basic("alice", "alice-new-password"), "SELECT 1").await;

    // A password change by root also revokes the user's refresh tokens.
    s.sql_ok(&Auth::root(), "ALTER USER 'alice' SET PASSWORD 'alice-third-password'").await;
    let r = refresh(&s, t2["refresh_token"].as_str().unwrap()).await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "refresh token from before root's password reset");
}

#[tokio::test]
async fn passwords_must_have_at_least_8_characters() {
    let s = TestServer::start().await;
    let root = Auth::root();
    s.sql_err(&root, "CREATE USER 'shorty' WITH PASSWORD 'short'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE USER 'shorty' WITH PASSWORD '1234567'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "CREATE USER 'shorty' WITH PASSWORD ''", 400, "VALIDATION_ERROR").await;
    // The refused user does not exist.
    let r = login(&s, "shorty", "1234567").await;
    assert_eq!(r.status, 401);
    let r = s.sql_ok(&root, "SELECT count(*) FROM system.users WHERE username = 'shorty'").await;
    assert_eq!(r.rows(0), &vec![json!([0])]);
    // Exactly 8 is fine.
    s.sql_ok(&root, "CREATE USER 'shorty' WITH PASSWORD '12345678'").await;
    login_ok(&s, "shorty", "12345678").await;
    // Changing to a short password is refused too, and the old one keeps working.
    let me = Auth::basic("shorty", "12345678");
    s.sql_err(&me, "ALTER USER 'shorty' SET PASSWORD 'abc'", 400, "VALIDATION_ERROR").await;
    s.sql_err(&root, "ALTER USER 'shorty' SET PASSWORD 'abcdefg'", 400, "VALIDATION_ERROR").await;
    login_ok(&s, "shorty", "12345678").await;
}

#[tokio::test]
async fn system_users_never_exposes_password_hashes() {
    let s = TestServer::start().await;
    s.create_user("alice").await;
    s.create_user_with_role("svc", "service").await;
    s.create_user_with_role("dba1", "dba").await;
    let r = s.sql_ok(&Auth::root(), "SELECT * FROM system.users").await;
    assert_eq!(r.rows(0).len(), 4);
    // A single node has no data groups.
    let groups = s.sql_ok(&Auth::root(), "SELECT count(*) FROM system.users WHERE data_group IS NULL").await;
    assert_eq!(groups.rows(0), &vec![json!([4])]);
    let t = r.body.to_string();
    assert!(!t.contains("$2"), "bcrypt hash exposed: {t}");
    for col in r.body["results"][0]["schema"].as_array().unwrap() {
        let name = col["name"].as_str().unwrap().to_ascii_lowercase();
        assert!(!name.contains("password") && !name.contains("hash"), "column {name} in system.users");
    }
    // Also not through information_schema, DESCRIBE-like views, or a dba.
    let r = s.sql_ok(&Auth::basic("dba1", "dba1-password"), "SELECT * FROM system.users").await;
    assert!(!r.body.to_string().contains("$2"), "{}", r.body);
    let r = s.sql(&Auth::root(), "SELECT password_hash FROM system.users").await;
    assert_eq!(r.status, 400, "no password_hash column: {}", r.body);
    assert!(!r.body.to_string().contains("$2"), "{}", r.body);
}

// ---------------------------------------------------------------------------------------
// Roles: DDL and user management
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_user_and_service_cannot_run_ddl_or_manage_users() {
    let s = TestServer::start().await;
    setup_app(&s).await;
    let alice = s.create_user("alice").await;
    let svc = s.create_user_with_role("svc", "service").await;
    s.create_user("bob").await;
    for who in [&alice, &svc] {
        for sql in [
            "CREATE USER 'mallory' WITH PASSWORD 'mallory-password'",
            "CREATE USER 'mallory' WITH PASSWORD 'mallory-password' ROLE system",
            "CREATE NAMESPACE evil",
            "CREATE TABLE app.evil (id BIGINT PRIMARY KEY)",
            "CREATE USER TABLE app.evil (id BIGINT PRIMARY KEY)",
            "CREATE SHARED TABLE app.evil (id BIGINT PRIMARY KEY)",
            "DROP TABLE app.notes",
            "DROP NAMESPACE app CASCADE",
            "ALTER NAMESPACE app SET OPTIONS (a = 1)",
            "DROP USER 'bob'",
            "ALTER USER 'bob' SET PASSWORD 'bob-hijacked-password'",
            "ALTER USER 'bob' SET ROLE dba",
            "ALTER USER 'root' SET PASSWORD 'root-hijacked-password'",
        ] {
            let r = s.sql(who, sql).await;
            assert_eq!(r.status, 403, "expected 403 for {sql}: {}", r.body);
            assert_eq!(r.code(), "FORBIDDEN", "{sql}: {}", r.body);
        }
    }
    // No self-promotion.
    s.sql_err(&alice, "ALTER USER 'alice' SET ROLE dba", 403, "FORBIDDEN").await;
    s.sql_err(&alice, "ALTER USER 'alice' SET ROLE system", 403, "FORBIDDEN").await;
    s.sql_err(&svc, "ALTER USER 'svc' SET ROLE dba", 403, "FORBIDDEN").await;
    // Nothing changed.
    let r = s.sql_ok(&Auth::root(), "SELECT username, role FROM system.users ORDER BY username").await;
    assert_eq!(
        r.rows(0),
        &vec![json!(["alice", "user"]), json!(["bob", "user"]), json!(["root", "system"]), json!(["svc", "service"])]
    );
    let r = s.sql_ok(&Auth::root(), "SELECT namespace, table_name FROM system.tables").await;
    assert_eq!(r.rows(0), &vec![json!(["app", "notes"])]);
    login_ok(&s, "bob", "bob-password").await;
    login_ok(&s, "root", ROOT_PASSWORD).await;
}

#[tokio::test]
async fn dba_manages_users_but_cannot_touch_system_users() {
    let s = TestServer::start().await;
    let dba = s.create_user_with_role("dba1", "dba").await;
    s.sql_ok(&dba, "CREATE USER 'u1' WITH PASSWORD 'u1-password'").await;
    s.sql_ok(&dba, "CREATE USER 's1' WITH PASSWORD 's1-password' ROLE service").await;
    s.sql_ok(&dba, "CREATE USER 'd2' WITH PASSWORD 'd2-password' ROLE dba").await;
    login_ok(&s, "u1", "u1-password").await;
    // Granting system is refused, at creation and by promotion.
    s.sql_err(&dba, "CREATE USER 'sys2' WITH PASSWORD 'sys2-password' ROLE system", 403, "FORBIDDEN").await;
    s.sql_err(&dba, "ALTER USER 'u1' SET ROLE system", 403, "FORBIDDEN").await;
    s.sql_err(&dba, "ALTER USER 'dba1' SET ROLE system", 403, "FORBIDDEN").await;
    let r = login(&s, "sys2", "sys2-password").await;
    assert_eq!(r.status, 401, "{}", r.body);
    // A dba can change roles up to dba and reset passwords of lower users.
    s.sql_ok(&dba, "ALTER USER 'u1' SET ROLE service").await;
    s.sql_ok(&dba, "ALTER USER 'u1' SET PASSWORD 'u1-new-password'").await;
    login_ok(&s, "u1", "u1-new-password").await;
    // ... but cannot take over root.
    s.sql_err(&dba, "ALTER USER 'root' SET PASSWORD 'root-hijacked-password'", 403, "FORBIDDEN").await;
    s.sql_err(&dba, "ALTER USER 'root' SET ROLE user", 403, "FORBIDDEN").await;
    let r = s.sql(&dba, "DROP USER 'root'").await;
    assert!(matches!(r.status.as_u16(), 400 | 403), "DROP USER root by a dba must be refused: {}", r.body);
    let r = s.sql(&dba, "DROP USER IF EXISTS 'root'").await;
    assert!(matches!(r.status.as_u16(), 400 | 403), "DROP USER IF EXISTS root by a dba must be refused: {}", r.body);
    login_ok(&s, "root", ROOT_PASSWORD).await;
    let r = s.sql_ok(&Auth::root(), "SELECT role FROM system.users WHERE username = 'root'").await;
    assert_eq!(r.rows(0), &vec![json!(["system"])]);
    // Duplicate user names.
    s.sql_err(&dba, "CREATE USER 'u1' WITH PASSWORD 'whatever-password'", 409, "ALREADY_EXISTS").await;
    s.sql_err(&dba, "DROP USER 'ghost'", 404, "USER_NOT_FOUND").await;
}

#[tokio::test]
async fn dropped_user_credentials_stop_working() {
    let s = TestServer::start().await;
    setup_app(&s).await;
    let carol = s.create_user("carol").await;
    let t = login_ok(&s, "carol", "carol-password").await;
    // Warm up any credential cache first.
    s.sql_ok(&carol, "INSERT INTO app.notes (id, body) VALUES (1, 'carol-1')").await;
    s.sql_ok(&bearer(&t), "SELECT 1").await;

    let r = s.sql_ok(&Auth::root(), "DROP USER 'carol'").await;
    assert_eq!(r.body["status"], "success");
    let r = s.sql(&bearer(&t), "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "access token of a dropped user");
    let r = s.sql(&carol, "SELECT 1").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "basic credentials of a dropped user");
    let r = refresh(&s, t["refresh_token"].as_str().unwrap()).await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "refresh token of a dropped user");
    let r = login(&s, "carol", "carol-password").await;
    assert_status_code(&r, 401, "UNAUTHORIZED", "login of a dropped user");

    // Re-creating a user with the same name does not inherit the old tokens or rows.
    let carol2 = s.create_user("carol").await;
    let r = s.sql(&bearer(&t), "SELECT 1").await;
    assert_eq!(r.status, 401, "old token must not work for the new carol: {}", r.body);
    let r = s.sql_ok(&carol2, "SELECT count(*) FROM app.notes").await;
    assert_eq!(r.rows(0), &vec![json!([0])], "the new carol does not see the old carol's rows");
}

/// `CURRENT_USER()` as a column default records the authenticated user (or the target of
/// EXECUTE AS), whatever the credentials.
#[tokio::test]
async fn current_user_default_records_the_caller() {
    let s = TestServer::start().await;
    s.sql_ok(
        &Auth::root(),
        "CREATE NAMESPACE app; CREATE USER TABLE app.docs (id BIGINT PRIMARY KEY, owner TEXT DEFAULT CURRENT_USER(), body TEXT)",
    )
    .await;
    let alice = s.create_user("alice").await;
    let svc = s.create_user_with_role("svc", "service").await;
    let t = login_ok(&s, "alice", "alice-password").await;
    s.sql_ok(&bearer(&t), "INSERT INTO app.docs (id, body) VALUES (1, 'bearer')").await;
    s.sql_ok(&alice, "INSERT INTO app.docs (id, body) VALUES (2, 'basic')").await;
    s.sql_ok(&svc, "EXECUTE AS USER 'alice' (INSERT INTO app.docs (id, body) VALUES (3, 'as alice'))").await;
    s.sql_ok(&svc, "INSERT INTO app.docs (id, body) VALUES (4, 'service itself')").await;
    let r = s.sql_ok(&alice, "SELECT id, owner FROM app.docs ORDER BY id").await;
    assert_eq!(r.rows(0), &vec![json!([1, "alice"]), json!([2, "alice"]), json!([3, "alice"])]);
    let r = s.sql_ok(&svc, "SELECT id, owner FROM app.docs").await;
    assert_eq!(r.rows(0), &vec![json!([4, "svc"])]);
}
