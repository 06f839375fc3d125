//! What the sync driver needs from its environment: a WebSocket, a task spawner, timers, a
//! clock and randomness. Native code implements it with tokio ([`super::native`]); the
//! browser and Node implement it in the `wasm` crate.

use futures::channel::mpsc::UnboundedSender;
use futures::future::LocalBoxFuture;

/// Events a socket reports to the driver, tagged with the connection number the driver gave
/// it, so late events of an old connection are recognised and ignored.
#[derive(Debug)]
pub enum SocketEvent {
    Frame { conn: u64, text: String },
    Closed { conn: u64, reason: Option<String> },
}

/// The sending half of an open WebSocket.
pub trait Socket {
    /// Queues a text frame. An error means the socket is gone; a `Closed` event follows.
    fn send(&self, text: String) -> Result<(), String>;
    fn close(&self);
}

/// The environment of one sync driver.
pub trait Platform: 'static {
    /// Opens a WebSocket to `url`; frames and the close go to `events` tagged with `conn`.
    fn connect(
        &self,
        url: &str,
        conn: u64,
        events: UnboundedSender<SocketEvent>,
    ) -> LocalBoxFuture<'static, Result<Box<dyn Socket>, String>>;
    /// Runs a task on the driver's thread.
    fn spawn(&self, task: LocalBoxFuture<'static, ()>);
    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()>;
    /// Wall-clock time, ms since the Unix epoch.
    fn now_ms(&self) -> f64;
    /// Uniformly random bits (used for jitter, client ids and offline keys).
    fn random_u32(&self) -> u32;
}

/// Supplies access tokens: called before each connection and again to renew before expiry.
pub type TokenSource = Box<dyn Fn() -> LocalBoxFuture<'static, Result<String, ConnectError>>>;

/// Why the client could not connect: signing in failed (the token source's error: the
/// server's code such as `UNAUTHORIZED`, or `NETWORK_ERROR` when it could not be reached), or
/// the WebSocket could not be opened (`NETWORK_ERROR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// The server's error code, or one of the client's (`NETWORK_ERROR`, `SIGN_IN_FAILED`).
    pub code: String,
    /// What went wrong, and what to check.
    pub message: String,
}

/// A UUIDv7 (RFC 9562) as text: 48-bit Unix ms timestamp, then random bits. Keys generated
/// offline sort by creation time, like the server's `UUID_V7()`.
pub fn uuid_v7(now_ms: f64, mut random: impl FnMut() -> u32) -> String {
    let ms = (now_ms.max(0.0) as u64) & 0xFFFF_FFFF_FFFF;
    let r = [random(), random(), random()];
    let rand_a = (r[0] & 0x0FFF) as u64;
    let rand_b = (((r[1] as u64) << 32) | r[2] as u64) & 0x3FFF_FFFF_FFFF_FFFF;
    let hi = (ms << 16) | (0x7 << 12) | rand_a;
    let lo = (0b10u64 << 62) | rand_b;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Parses the server's RFC 3339 UTC timestamps (`2026-11-23T09:00:00.000000Z`) to ms.
pub fn parse_utc_ms(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60) as f64 + sec) * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_has_version_variant_and_time_order() {
        let mut n = 0u32;
        let a = uuid_v7(1_700_000_000_000.0, || {
            n = n.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            n
        });
        let b = uuid_v7(1_700_000_000_001.0, || 0);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert!(a < b);
        assert_eq!(&a[..13], "018bcfe5-6800");
    }

    #[test]
    fn parses_server_timestamps() {
        assert_eq!(parse_utc_ms("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_utc_ms("2023-11-14T22:13:20.500000Z"), Some(1_700_000_000_500.0));
        assert_eq!(parse_utc_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000.0));
        assert_eq!(parse_utc_ms("garbage"), None);
    }
}
