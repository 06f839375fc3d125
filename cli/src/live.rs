//! `\live SELECT ...`: a server subscription over the WebSocket (client-core's native
//! transport and wire types). The matching rows print first, then every change as it
//! commits, until Ctrl-C (then back to the prompt) or the server ends the subscription.
//!
//! In table format a change is one line, `INSERT id=2, title='eggs'`; an update names the
//! key and the columns that changed (`UPDATE id=1: title 'milk' -> 'oat milk'`). In JSON a
//! change is `{"op":...,"row":{...},"old":{...}}`; in CSV a row with the operation first.

use crate::error::CliError;
use crate::render::{self, Format};
use crate::session::{Session, ctrl_c, interruptible};
use futures::StreamExt;
use futures::channel::mpsc;
use kalamdb_client_core::protocol::ws::{ChangeOp, ClientMessage, Cursor, ServerMessage, Subscribe};
use kalamdb_client_core::protocol::{ColumnInfo, ErrorCode, QueryResult};
use kalamdb_client_core::sync::native::NativePlatform;
use kalamdb_client_core::sync::platform::{Platform, Socket, SocketEvent, parse_utc_ms};
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The subscription's id on the connection (one per `\live`).
const SUBSCRIPTION_ID: &str = "kalam-live";
/// The server answers `auth` at once; this bounds a server that never does.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Keeps the connection from looking idle to the server (its idle timeout is 60 s).
const PING_EVERY: Duration = Duration::from_secs(15);

/// Runs `\live sql` until Ctrl-C or the end of the subscription.
pub(crate) async fn run(session: &mut Session, sql: &str) -> Result<(), CliError> {
    // client-core's native sockets run their reader and writer as local tasks; dropping
    // the set at the end drops them and with them the connection.
    let local = tokio::task::LocalSet::new();
    local.run_until(stream(session, sql)).await
}

/// One WebSocket connection, signed in.
struct Connection {
    socket: Box<dyn Socket>,
    events: mpsc::UnboundedReceiver<SocketEvent>,
    url: String,
}

impl Connection {
    async fn open(url: &str) -> Result<Connection, CliError> {
        let (tx, events) = mpsc::unbounded();
        let socket = NativePlatform
            .connect(url, 1, tx)
            .await
            .map_err(|e| CliError::Connect { url: url.to_string(), reason: socket_reason(&e) })?;
        Ok(Connection { socket, events, url: url.to_string() })
    }

    fn send(&self, message: &ClientMessage) -> Result<(), CliError> {
        let text = serde_json::to_string(message)
            .map_err(|e| CliError::Protocol { url: self.url.clone(), detail: e.to_string() })?;
        self.socket.send(text).map_err(|reason| CliError::Connect { url: self.url.clone(), reason })
    }

    /// The next frame from the server.
    async fn next(&mut self) -> Result<ServerMessage, CliError> {
        match self.events.next().await {
            Some(SocketEvent::Frame { text, .. }) => serde_json::from_str(&text).map_err(|e| CliError::Protocol {
                url: self.url.clone(),
                detail: format!("a frame that is not KalamDB's protocol ({e})"),
            }),
            other => Err(CliError::Connect {
                url: self.url.clone(),
                reason: match other.and_then(|e| match e {
                    SocketEvent::Closed { reason, .. } => reason_of(reason),
                    SocketEvent::Frame { .. } => None,
                }) {
                    Some(r) => format!("the server closed the connection: {r}"),
                    None => "the server closed the connection".into(),
                },
            }),
        }
    }

    /// Sends `auth` and waits for `auth_ok`: when the token expires, or `None` if it was
    /// refused.
    async fn sign_in(&mut self, token: &str) -> Result<Option<String>, CliError> {
        self.send(&ClientMessage::Auth { token: token.to_string() })?;
        let answer = tokio::time::timeout(AUTH_TIMEOUT, async {
            loop {
                match self.next().await? {
                    ServerMessage::AuthOk { expires_at, .. } => return Ok(Some(expires_at)),
                    ServerMessage::Error { code: ErrorCode::Unauthorized, .. } => return Ok(None),
                    ServerMessage::Error { code, message, .. } => return Err(CliError::Sql { code, message }),
                    _ => {}
                }
            }
        })
        .await;
        answer.unwrap_or_else(|_| {
            Err(CliError::Connect { url: self.url.clone(), reason: "no answer to sign-in within 10 s".into() })
        })
    }
}

fn reason_of(reason: Option<String>) -> Option<String> {
    reason.filter(|r| !r.is_empty())
}

/// tungstenite's error text, shortened the way `connect` words HTTP failures.
fn socket_reason(e: &str) -> String {
    if e.contains("Connection refused") {
        "connection refused".into()
    } else if e.contains("failed to lookup address") || e.contains("Name or service not known") {
        "unknown host".into()
    } else {
        e.to_string()
    }
}

/// When to send a renewed token for one that expires at `expires_at` (RFC 3339): a minute
/// before, or halfway there for a token that lives less than two minutes.
fn renewal_time(expires_at: &str) -> Option<Instant> {
    let expires_ms = parse_utc_ms(expires_at)?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0;
    let left_ms = (expires_ms - now_ms).max(0.0);
    let wait_ms = if left_ms < 120_000.0 { left_ms / 2.0 } else { left_ms - 60_000.0 };
    Some(Instant::now() + Duration::from_millis(wait_ms as u64))
}

/// Opens a connection signed in with the session's token, renewing the token once if the
/// server refuses it. Returns the connection and when to renew its token.
async fn connect(session: &mut Session) -> Result<(Connection, Option<Instant>), CliError> {
    let url = session.server.ws_url();
    let mut conn = Connection::open(&url).await?;
    if let Some(expires_at) = conn.sign_in(session.access_token()).await? {
        return Ok((conn, renewal_time(&expires_at)));
    }
    // The server closes the socket after refusing a token: renew and reconnect.
    if session.renew().await? {
        conn = Connection::open(&url).await?;
        if let Some(expires_at) = conn.sign_in(session.access_token()).await? {
            return Ok((conn, renewal_time(&expires_at)));
        }
    }
    Err(CliError::Auth { url, who: String::new(), message: "the token was refused (expired or revoked)".into() })
}

async fn stream(session: &mut Session, sql: &str) -> Result<(), CliError> {
    let (mut conn, mut renew_at) = interruptible(connect(session)).await?;
    // A token-only session cannot renew: the server ends the stream when the token expires.
    if session.refresh_token().is_none() {
        renew_at = None;
    }
    let subscribe = |since: Option<Cursor>| {
        ClientMessage::Subscribe(Subscribe {
            id: SUBSCRIPTION_ID.into(),
            sql: sql.to_string(),
            since,
            last_rows: None,
            batch_size: None,
        })
    };
    conn.send(&subscribe(None))?;
    let mut view = View::new(session.format);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            () = ctrl_c() => {
                // Best effort: the server also drops the subscription when the socket closes.
                let _ = conn.send(&ClientMessage::Unsubscribe { id: SUBSCRIPTION_ID.into() });
                conn.socket.close();
                eprintln!("Live query stopped.");
                return Ok(());
            }
            _ = ping.tick() => conn.send(&ClientMessage::Ping { nonce: None })?,
            // The server closes a connection whose token expires: send a renewed one before
            // (the subscription stays); its `auth_ok` schedules the next renewal.
            () = sleep_until(renew_at) => {
                renew_at = None;
                if session.renew().await? {
                    conn.send(&ClientMessage::Auth { token: session.access_token().to_string() })?;
                }
            }
            frame = conn.next() => match frame? {
                ServerMessage::Subscribed { schema, primary_key, live_id, .. } => {
                    view.subscribed(schema, &primary_key);
                    if !view.loaded {
                        eprintln!("Live query {live_id}: loading rows...");
                    }
                }
                ServerMessage::Batch { rows, deleted, cursor, reset, last, .. } => {
                    view.cursor = Some(cursor);
                    view.batch(rows, deleted, reset, last)?;
                }
                ServerMessage::Change { op, row, old, cursor, .. } => {
                    view.cursor = Some(cursor);
                    view.change(op, &row, old.as_deref())?;
                }
                ServerMessage::SchemaChanged { schema_version, .. } => {
                    eprintln!("The table was altered (schema version {schema_version}); subscribing again.");
                    conn.send(&subscribe(view.cursor))?;
                }
                ServerMessage::Error { code, message, .. } => return Err(CliError::Sql { code, message }),
                ServerMessage::AuthOk { expires_at, .. } => renew_at = renewal_time(&expires_at),
                ServerMessage::Pong { .. }
                | ServerMessage::Unsubscribed { .. }
                | ServerMessage::MutateResult(_) => {}
            },
        }
    }
}

/// Resolves at `at`; never without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// What `\live` has shown so far and how it prints.
struct View {
    format: Format,
    schema: Vec<ColumnInfo>,
    key: usize,
    /// The initial rows, printed together once the last batch arrives.
    initial: Vec<Vec<Value>>,
    /// The initial load has been printed; later batches are catch-up after a resubscribe.
    loaded: bool,
    cursor: Option<Cursor>,
}

impl View {
    fn new(format: Format) -> View {
        View { format, schema: Vec::new(), key: 0, initial: Vec::new(), loaded: false, cursor: None }
    }

    fn subscribed(&mut self, schema: Vec<ColumnInfo>, primary_key: &str) {
        self.key = schema.iter().position(|c| c.name == primary_key).unwrap_or(0);
        self.schema = schema;
    }

    fn batch(&mut self, rows: Vec<Vec<Value>>, deleted: Vec<Value>, reset: bool, last: bool) -> Result<(), CliError> {
        if !self.loaded {
            self.initial.extend(rows);
            if last {
                self.loaded = true;
                let mut out = std::io::stdout().lock();
                self.print_initial(&mut out)?;
                out.flush()?;
                eprintln!("Waiting for changes (Ctrl-C to stop).");
            }
            return Ok(());
        }
        // Catch-up after the table was altered: rows changed meanwhile, then deletions.
        if reset {
            eprintln!("The server sent the whole result again (reset).");
        }
        let mut out = std::io::stdout().lock();
        for row in &rows {
            self.print_change(&mut out, "upsert", row, None)?;
        }
        for pk in deleted {
            let mut row = vec![Value::Null; self.schema.len()];
            if let Some(slot) = row.get_mut(self.key) {
                *slot = pk;
            }
            self.print_change(&mut out, "delete", &row, None)?;
        }
        out.flush()?;
        Ok(())
    }

    fn change(&self, op: ChangeOp, row: &[Value], old: Option<&[Value]>) -> Result<(), CliError> {
        let op = match op {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        };
        let mut out = std::io::stdout().lock();
        self.print_change(&mut out, op, row, old)?;
        out.flush()?;
        Ok(())
    }

    fn print_initial(&self, out: &mut dyn Write) -> std::io::Result<()> {
        match self.format {
            Format::Csv => {
                let header: Vec<String> = std::iter::once("op".to_string())
                    .chain(self.schema.iter().map(|c| render::csv_field(&c.name)))
                    .collect();
                writeln!(out, "{}", header.join(","))?;
                for row in &self.initial {
                    self.print_change(out, "row", row, None)?;
                }
                Ok(())
            }
            _ => {
                let result = QueryResult {
                    schema: self.schema.clone(),
                    rows: self.initial.clone(),
                    row_count: self.initial.len() as u64,
                    message: None,
                };
                render::result(&result, self.format, out, &mut std::io::sink())
            }
        }
    }

    fn print_change(&self, out: &mut dyn Write, op: &str, row: &[Value], old: Option<&[Value]>) -> std::io::Result<()> {
        match self.format {
            Format::Table => writeln!(out, "{}", self.change_line(op, row, old)),
            Format::Json => {
                let mut line = format!("{{\"op\":\"{op}\",\"row\":{}", render::json_object(&self.schema, row));
                if let Some(old) = old {
                    line.push_str(&format!(",\"old\":{}", render::json_object(&self.schema, old)));
                }
                writeln!(out, "{line}}}")
            }
            Format::Csv => {
                let fields: Vec<String> =
                    std::iter::once(op.to_string()).chain(row.iter().map(|v| render::csv_field(&plain(v)))).collect();
                writeln!(out, "{}", fields.join(","))
            }
        }
    }

    /// `INSERT id=2, title='eggs'`; an update shows the key and each changed column.
    fn change_line(&self, op: &str, row: &[Value], old: Option<&[Value]>) -> String {
        let name = |i: usize| self.schema.get(i).map_or("?", |c| c.name.as_str());
        let key = format!("{}={}", name(self.key), row.get(self.key).map_or("?".into(), render::literal));
        match old {
            Some(old) => {
                let changed: Vec<String> = row
                    .iter()
                    .zip(old)
                    .enumerate()
                    .filter(|(i, (new, old))| *i != self.key && new != old)
                    .map(|(i, (new, old))| format!("{} {} -> {}", name(i), render::literal(old), render::literal(new)))
                    .collect();
                format!("{} {key}: {}", op.to_uppercase(), changed.join(", "))
            }
            None => {
                let all: Vec<String> =
                    row.iter().enumerate().map(|(i, v)| format!("{}={}", name(i), render::literal(v))).collect();
                format!("{} {}", op.to_uppercase(), all.join(", "))
            }
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(format: Format) -> View {
        let mut v = View::new(format);
        v.subscribed(
            vec![ColumnInfo::new("id", "BIGINT"), ColumnInfo::new("title", "TEXT"), ColumnInfo::new("done", "BOOLEAN")],
            "id",
        );
        v
    }

    #[test]
    fn changes_print_as_one_line_each() {
        let v = view(Format::Table);
        assert_eq!(
            v.change_line("insert", &[json!(2), json!("eggs"), json!(false)], None),
            "INSERT id=2, title='eggs', done=false"
        );
        assert_eq!(
            v.change_line(
                "update",
                &[json!(1), json!("oat milk"), json!(false)],
                Some(&[json!(1), json!("milk"), json!(false)])
            ),
            "UPDATE id=1: title 'milk' -> 'oat milk'"
        );
        let mut out = Vec::new();
        view(Format::Json)
            .print_change(
                &mut out,
                "update",
                &[json!(1), json!("b"), json!(true)],
                Some(&[json!(1), json!("a"), json!(true)]),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"op\":\"update\",\"row\":{\"id\":1,\"title\":\"b\",\"done\":true},\"old\":{\"id\":1,\"title\":\"a\",\"done\":true}}\n"
        );
        let mut out = Vec::new();
        view(Format::Csv).print_change(&mut out, "delete", &[json!(3), json!("a,b"), Value::Null], None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "delete,3,\"a,b\",\n");
    }

    #[tokio::test]
    async fn wss_goes_through_rustls_and_fails_as_a_connection_error() {
        // A listener that closes at once: the TLS handshake fails; rustls must be configured
        // (no missing crypto provider, no panic).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                drop(stream);
            }
        });
        let local = tokio::task::LocalSet::new();
        let result = local.run_until(Connection::open(&format!("wss://127.0.0.1:{port}/v1/ws"))).await;
        assert!(matches!(result, Err(CliError::Connect { .. })), "{:?}", result.err());
        // And a closed port is worded like HTTP's.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let result = local.run_until(Connection::open(&format!("ws://127.0.0.1:{port}/v1/ws"))).await;
        assert_eq!(
            result.err().map(|e| e.to_string()),
            Some(format!("cannot connect to ws://127.0.0.1:{port}/v1/ws: connection refused"))
        );
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let soon = Instant::now();
        // Expired already: at once.
        assert!(renewal_time("2000-01-01T00:00:00.000000Z").unwrap() <= soon + Duration::from_millis(50));
        // Far away: a minute before.
        let far = renewal_time("2999-01-01T00:00:00.000000Z").unwrap();
        assert!(far > soon + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(renewal_time("yesterday"), None);
    }

    #[test]
    fn socket_errors_are_worded_like_http_ones() {
        assert_eq!(socket_reason("IO error: Connection refused (os error 111)"), "connection refused");
        assert_eq!(socket_reason("HTTP error: 404 Not Found"), "HTTP error: 404 Not Found");
    }
}
