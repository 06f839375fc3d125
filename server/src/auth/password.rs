//! bcrypt hashing. Both operations are deliberately slow, so they run on the blocking pool.

use crate::error::{KalamError, Result};

/// Longest password accepted (bcrypt only uses the first 72 bytes; longer input is refused
/// rather than silently truncated).
pub const MAX_PASSWORD_BYTES: usize = 72;

pub fn validate(password: &str) -> Result<()> {
    if password.len() < 8 {
        return Err(KalamError::Validation("password must be at least 8 characters".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(KalamError::Validation(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

pub async fn hash(password: String, cost: u32) -> Result<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(KalamError::internal)?
        .map_err(KalamError::internal)
}

pub async fn verify(password: String, hash: String) -> Result<bool> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
        .await
        .map_err(KalamError::internal)?
        .map_err(KalamError::internal)
}
