//! JWTs (HS256). Access tokens authenticate requests; refresh tokens only buy new tokens.
//! Both carry a fingerprint of the password hash, so a password change revokes them.

use crate::error::{KalamError, Result};
use crate::ids::UserId;
use crate::schema::User;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The user id.
    pub sub: String,
    pub username: String,
    pub typ: TokenKind,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<String>,
}

impl Claims {
    pub(crate) fn user_id(&self) -> Result<UserId> {
        self.sub.parse().map(UserId).map_err(|_| KalamError::Unauthorized("invalid token subject".into()))
    }
}

pub(crate) fn password_fingerprint(user: &User) -> String {
    let digest = Sha256::digest(user.password_hash.as_bytes());
    hex::encode(&digest[..8])
}

pub(crate) struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenIssuer {
    pub(crate) fn new(secret: &[u8]) -> TokenIssuer {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs a token; returns it with its expiry (seconds since epoch).
    pub(crate) fn sign(&self, user: &User, kind: TokenKind, ttl_secs: u64) -> Result<(String, i64)> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.clone(),
            typ: kind,
            iat: now,
            exp: now + ttl_secs,
            pwd: Some(password_fingerprint(user)),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(KalamError::internal)?;
        Ok((token, claims.exp as i64))
    }

    pub(crate) fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => KalamError::Unauthorized("token expired".into()),
                _ => KalamError::Unauthorized("invalid token".into()),
            }
        })?;
        if data.claims.typ != kind {
            return Err(KalamError::Unauthorized(format!(
                "expected an {} token",
                if kind == TokenKind::Access { "access" } else { "refresh" }
            )));
        }
        Ok(data.claims)
    }
}
