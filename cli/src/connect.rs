//! HTTP to the server: sign-in, SQL, health and metrics, with transport failures turned
//! into one readable reason ("connection refused", not a chain of library errors).

use crate::error::CliError;
use kalamdb_client_core::protocol::{
    ErrorCode, HealthResponse, LoginRequest, QueryResult, RefreshRequest, SqlRequest, SqlResponse, TokenResponse,
};
use std::time::Duration;

/// The server's default listen address (`kalamdb-server`'s `--listen` default).
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How long to wait for a TCP (and TLS) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Sign-in, health and metrics answer at once; SQL is bounded by the server's own
/// `limits.query_timeout_secs` instead (and by Ctrl-C).
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);

/// A server's base URL and an HTTP client for it.
#[derive(Clone)]
pub(crate) struct Server {
    http: reqwest::Client,
    /// `http(s)://host:port[/prefix]`, without a trailing slash.
    base: String,
}

/// What a successful `POST /v1/api/sql` returned.
#[derive(Debug)]
pub(crate) struct SqlOk {
    pub(crate) results: Vec<QueryResult>,
    /// The server's own time for the request.
    pub(crate) took_ms: f64,
}

impl Server {
    /// A client for `url` (`http://` or `https://`; a bare `host:port` means `http://`).
    pub(crate) fn new(url: &str) -> Result<Server, CliError> {
        let url = url.trim().trim_end_matches('/');
        let base = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        let https = base.starts_with("https://");
        if !https && !base.starts_with("http://") {
            return Err(CliError::Usage(format!("unsupported URL {base}: use http:// or https://")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Loading the system's root certificates takes milliseconds of every start; only
            // https needs them.
            .tls_built_in_root_certs(https)
            .user_agent(concat!("kalam/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Connect { url: base.clone(), reason: reason(&e) })?;
        Ok(Server { http, base })
    }

    /// The base URL, as shown to the user.
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// `host:port` of the URL, for the prompt.
    pub(crate) fn host(&self) -> &str {
        let rest = self.base.split_once("://").map_or(self.base.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    /// The WebSocket endpoint (`ws://` or `wss://` + `/v1/ws`).
    pub(crate) fn ws_url(&self) -> String {
        match self.base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}/v1/ws"),
            None => format!("ws://{}/v1/ws", self.base.trim_start_matches("http://")),
        }
    }

    fn connect_error(&self, e: &reqwest::Error) -> CliError {
        CliError::Connect { url: self.base.clone(), reason: reason(e) }
    }

    /// `POST /v1/api/auth/login`.
    pub(crate) async fn login(&self, username: &str, password: &str) -> Result<TokenResponse, CliError> {
        let body = LoginRequest { username: username.into(), password: password.into() };
        self.token_request("/v1/api/auth/login", &body, &format!(" as {username}")).await
    }

    /// `POST /v1/api/auth/refresh`: new tokens for a refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, CliError> {
        let body = RefreshRequest { refresh_token: refresh_token.into() };
        self.token_request("/v1/api/auth/refresh", &body, "").await
    }

    async fn token_request<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
        who: &str,
    ) -> Result<TokenResponse, CliError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(SHORT_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| self.connect_error(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| self.not_kalamdb(status));
        }
        match serde_json::from_slice::<SqlResponse>(&bytes) {
            Ok(SqlResponse::Error { error }) => {
                Err(CliError::Auth { url: self.base.clone(), who: who.into(), message: error.message })
            }
            _ => Err(self.not_kalamdb(status)),
        }
    }

    /// `POST /v1/api/sql` with a bearer token. The outer error is the transport's; the inner
    /// `Err` is the server's answer for a failed statement (code, message, statement index).
    pub(crate) async fn sql(
        &self,
        token: &str,
        request: &SqlRequest,
    ) -> Result<Result<SqlOk, kalamdb_client_core::protocol::ErrorBody>, CliError> {
        let resp = self
            .http
            .post(format!("{}/v1/api/sql", self.base))
            .bearer_auth(token)
            .json(request)
            .send()
            .await
            .map_err(|e| self.connect_error(&e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(&e))?;
        match serde_json::from_slice::<SqlResponse>(&bytes) {
            Ok(SqlResponse::Success { results, took_ms }) => Ok(Ok(SqlOk { results, took_ms })),
            Ok(SqlResponse::Error { error }) => Ok(Err(error)),
            Err(_) => Err(self.not_kalamdb(status)),
        }
    }

    /// `GET /health`.
    pub(crate) async fn health(&self) -> Result<HealthResponse, CliError> {
        let resp = self.get("/health").await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(&e))?;
        serde_json::from_slice(&bytes).map_err(|_| self.not_kalamdb(status))
    }

    /// `GET /metrics` (Prometheus text).
    pub(crate) async fn metrics(&self) -> Result<String, CliError> {
        let resp = self.get("/metrics").await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.not_kalamdb(status));
        }
        resp.text().await.map_err(|e| self.connect_error(&e))
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, CliError> {
        self.http
            .get(format!("{}{path}", self.base))
            .timeout(SHORT_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.connect_error(&e))
    }

    fn not_kalamdb(&self, status: reqwest::StatusCode) -> CliError {
        CliError::Protocol {
            url: self.base.clone(),
            detail: format!("HTTP {status} without a KalamDB answer (is this a KalamDB server?)"),
        }
    }
}

/// The server's SQL error as a [`CliError`].
pub(crate) fn sql_error(error: kalamdb_client_core::protocol::ErrorBody) -> CliError {
    CliError::Sql { code: error.code, message: error.message }
}

/// Whether the server refused the credentials (so a refresh may help).
pub(crate) fn is_unauthorized(error: &kalamdb_client_core::protocol::ErrorBody) -> bool {
    error.code == ErrorCode::Unauthorized
}

/// One short reason for a transport failure: the innermost cause, named the way `curl`
/// and `psql` would name it.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let named = match io.kind() {
                ConnectionRefused => Some("connection refused"),
                ConnectionReset => Some("connection reset by the server"),
                ConnectionAborted => Some("connection aborted"),
                TimedOut => Some("timed out"),
                HostUnreachable => Some("host unreachable"),
                NetworkUnreachable => Some("network unreachable"),
                AddrNotAvailable => Some("address not available"),
                _ => None,
            };
            if let Some(named) = named {
                return named.into();
            }
        }
        innermost = s.to_string();
        source = s.source();
    }
    if innermost.contains("dns error") || innermost.contains("failed to lookup address") {
        return "unknown host".into();
    }
    innermost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_and_map_to_the_websocket() {
        let s = Server::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(s.url(), "http://127.0.0.1:8080");
        assert_eq!(s.host(), "127.0.0.1:8080");
        assert_eq!(s.ws_url(), "ws://127.0.0.1:8080/v1/ws");
        let s = Server::new("localhost:9000").unwrap();
        assert_eq!(s.url(), "http://localhost:9000");
        let s = Server::new("https://db.example.com/kalam").unwrap();
        assert_eq!(s.ws_url(), "wss://db.example.com/kalam/v1/ws");
        assert_eq!(s.host(), "db.example.com");
        assert!(matches!(Server::new("ftp://x"), Err(CliError::Usage(_))));
    }

    #[tokio::test]
    async fn a_closed_port_is_one_short_reason() {
        // Bind then drop: nothing listens on the port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = Server::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = s.health().await.unwrap_err();
        assert_eq!(e.to_string(), format!("cannot connect to http://127.0.0.1:{port}: connection refused"));
    }

    #[tokio::test]
    async fn https_reaches_rustls_not_a_missing_crypto_provider() {
        // A plain TCP listener that closes at once: the TLS handshake must fail as a
        // connection error (rustls is configured), not panic or report a missing provider.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                drop(stream);
            }
        });
        let s = Server::new(&format!("https://127.0.0.1:{port}")).unwrap();
        let e = s.health().await.unwrap_err();
        assert!(matches!(e, CliError::Connect { .. }), "{e}");
    }
}
