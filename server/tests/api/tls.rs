//! HTTPS on the client port (`--tls-cert`, `--tls-key`): the server answers over TLS with its
//! certificate, and nothing over plain HTTP on that port. (WSS is exercised by the `kalam`
//! shell's tests, whose live queries go over it.)

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn with_tls_files_the_client_port_speaks_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(dir.path(), "server");
    let mut s =
        TestServer::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]).await;
    assert!(s.base.starts_with("https://127.0.0.1:"), "the server announces https: {}", s.base);
    let trusted = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    s.client = reqwest::Client::builder().add_root_certificate(trusted).build().unwrap();
    let r = s.sql_ok(&Auth::root(), "SELECT 1 AS one").await;
    assert_eq!(r.rows(0), &vec![json!([1])]);
    let (status, _) = s.get("/health").await;
    assert_eq!(status, 200);

    // Plain HTTP on the same port gets no answer; a client that does not trust the CA
    // refuses the server.
    let plain =
        reqwest::Client::new().get(format!("{}/health", s.base.replacen("https://", "http://", 1))).send().await;
    assert!(!plain.as_ref().is_ok_and(|r| r.status().is_success()), "plain HTTP: {plain:?}");
    let untrusting = reqwest::Client::new().get(format!("{}/health", s.base)).send().await;
    assert!(untrusting.is_err(), "a client without the CA: {untrusting:?}");
}
