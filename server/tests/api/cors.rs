//! CORS: off unless configured; configured origins get preflight answers, others nothing.

use crate::common::*;

async fn preflight(s: &TestServer, origin: &str) -> Option<String> {
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/api/sql", s.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn cors_is_off_by_default_and_limited_to_configured_origins() {
    let s = TestServer::start().await;
    assert_eq!(preflight(&s, "http://app.example").await, None);
    drop(s);

    let s = TestServer::start_with(&["--cors-origins", "http://app.example,https://other.example:8443"]).await;
    assert_eq!(preflight(&s, "http://app.example").await.as_deref(), Some("http://app.example"));
    assert_eq!(preflight(&s, "https://other.example:8443").await.as_deref(), Some("https://other.example:8443"));
    assert_eq!(preflight(&s, "http://evil.example").await, None);
    // Actual requests carry the header too, and auth still applies.
    let r = s
        .client
        .post(format!("{}/v1/api/sql", s.base))
        .header("origin", "http://app.example")
        .json(&serde_json::json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("access-control-allow-origin").unwrap(), "http://app.example");
}

#[test]
fn a_malformed_origin_stops_the_server_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .args(["--listen", "127.0.0.1:0", "--cors-origins", "app.example/path"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().unwrap().path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cors_origins"), "{}", String::from_utf8_lossy(&out.stderr));
}
