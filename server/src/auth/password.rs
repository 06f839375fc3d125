//! bcrypt hashing. Both operations are deliberately slow: they run on the blocking pool, at
//! most one per CPU at a time, so a flood of logins queues here instead of taking every core.

use crate::error::{KalamError, Result};
use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// Permits for bcrypt work: one per CPU.
fn bcrypt_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Longest password accepted (bcrypt only uses the first 72 bytes; longer input is refused
/// rather than silently truncated).
pub(crate) const MAX_PASSWORD_BYTES: usize = 72;

pub(crate) fn validate(password: &str) -> Result<()> {
    if password.len() < 8 {
        return Err(KalamError::Validation("password must be at least 8 characters".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(KalamError::Validation(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

pub(crate) async fn hash(password: String, cost: u32) -> Result<String> {
    let _slot = bcrypt_slots().acquire().await.map_err(KalamError::internal)?;
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(KalamError::internal)?
        .map_err(KalamError::internal)
}

/// [`hash`] with a given salt instead of a random one: the same password, cost and salt make
/// the same hash (a cluster's root account, made by every node alike).
pub(crate) async fn hash_with_salt(password: String, cost: u32, salt: [u8; 16]) -> Result<String> {
    let _slot = bcrypt_slots().acquire().await.map_err(KalamError::internal)?;
    tokio::task::spawn_blocking(move || bcrypt::hash_with_salt(password, cost, salt).map(|h| h.to_string()))
        .await
        .map_err(KalamError::internal)?
        .map_err(KalamError::internal)
}

pub(crate) async fn verify(password: String, hash: String) -> Result<bool> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    let _slot = bcrypt_slots().acquire().await.map_err(KalamError::internal)?;
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
        .await
        .map_err(KalamError::internal)?
        .map_err(KalamError::internal)
}
