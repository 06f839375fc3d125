//! Authentication and authorisation.
//!
//! - [`Authenticator`]: HTTP Basic and Bearer (JWT) credentials, login with lockout,
//!   token issue and refresh.
//! - [`token`]: JWT claims, signing and verification.
//! - [`password`]: bcrypt hashing (off the async runtime).
//! - [`bootstrap`]: the first-start `root` account.
//! - [`Principal`]: who a statement runs as; permission checks live with each command.

pub(crate) mod bootstrap;
pub(crate) mod lockout;
pub(crate) mod password;
mod signer;
pub(crate) mod token;

pub(crate) use signer::ManifestSigner;

use crate::catalog::Catalog;
use crate::clock::now_micros;
use crate::config::AuthConfig;
use crate::error::{KalamError, Result};
use crate::ids::UserId;
use crate::schema::User;
use base64::Engine;
use kalamdb_client_core::protocol::{Role, TokenResponse, UserInfo};
use lockout::{Admit, LoginThrottle, Outcome};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use token::{TokenIssuer, TokenKind};

/// The user a statement runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
}

impl Principal {
    pub(crate) fn from_user(u: &User) -> Principal {
        Principal { user_id: u.id, username: u.username.clone(), role: u.role }
    }

    /// Fails with `Forbidden` unless the role is at least `min`.
    pub(crate) fn require(&self, min: Role, what: &str) -> Result<()> {
        if self.role >= min {
            Ok(())
        } else {
            Err(KalamError::Forbidden(format!("{what} requires role {min} or higher (you are {})", self.role)))
        }
    }
}

/// A verified access token: whom it was issued to, until when, and for which password.
#[derive(Debug, Clone)]
pub(crate) struct TokenGrant {
    pub principal: Principal,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: i64,
    password: Option<String>,
}

/// How long a successful Basic-auth check is remembered, so a client sending Basic on every
/// request does not pay a bcrypt verification each time.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 10_000;

struct CachedCredential {
    password_digest: [u8; 32],
    password_hash: String,
    at: Instant,
}

pub(crate) struct Authenticator {
    catalog: Arc<Catalog>,
    tokens: TokenIssuer,
    config: AuthConfig,
    basic_cache: Mutex<HashMap<UserId, CachedCredential>>,
    /// Serialises the failed-login counter updates.
    login_lock: Mutex<()>,
    throttle: LoginThrottle,
    /// Where outcomes of logins to existing accounts go; unset: applied here at once.
    ledger: std::sync::OnceLock<Arc<dyn LoginLedger>>,
    /// A real bcrypt hash to verify against for unknown users, so response time does not
    /// reveal which user names exist.
    dummy_hash: String,
}

/// The outcome of a login to an existing account, as the account's counters take it
/// ([`Authenticator::apply_login_record`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LoginRecord {
    pub user: UserId,
    pub succeeded: bool,
    /// When the attempt was checked (microseconds): a lock runs from here.
    pub at: i64,
}

/// Where login outcomes are recorded instead of the local catalog: in a cluster, the
/// replicated log.
#[async_trait::async_trait]
pub(crate) trait LoginLedger: Send + Sync {
    /// Records `record` and returns once this node has applied it.
    async fn record(&self, record: LoginRecord) -> Result<()>;

    /// Returns once this node has applied every outcome recorded anywhere before the call,
    /// so that a login reads the account's counters as they stand cluster-wide.
    async fn catch_up(&self) -> Result<()>;
}

impl Authenticator {
    pub(crate) fn new(catalog: Arc<Catalog>, config: AuthConfig, jwt_secret: &[u8]) -> Result<Authenticator> {
        let dummy_hash = bcrypt::hash("kalamdb-dummy-password", config.bcrypt_cost).map_err(KalamError::internal)?;
        let throttle = LoginThrottle::new(config.max_failed_logins, Duration::from_secs(config.lockout_secs));
        Ok(Authenticator {
            catalog,
            tokens: TokenIssuer::new(jwt_secret),
            config,
            basic_cache: Mutex::new(HashMap::new()),
            login_lock: Mutex::new(()),
            throttle,
            ledger: std::sync::OnceLock::new(),
            dummy_hash,
        })
    }

    /// Sends the outcomes of logins to existing accounts to `ledger` from now on (a cluster
    /// replicates them, so that every node counts every node's failed logins).
    pub(crate) fn set_ledger(&self, ledger: Arc<dyn LoginLedger>) {
        let _ = self.ledger.set(ledger);
    }

    pub(crate) fn bcrypt_cost(&self) -> u32 {
        self.config.bcrypt_cost
    }

    /// Authenticates an `Authorization` header value (`Bearer <jwt>` or `Basic <b64>`).
    pub(crate) async fn authenticate_header(&self, header: Option<&str>) -> Result<Principal> {
        let header = header.ok_or_else(|| {
            KalamError::Unauthorized("missing Authorization header (use Bearer <token> or Basic)".into())
        })?;
        let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => self.authenticate_token(value.trim()),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| KalamError::Unauthorized("malformed Basic credentials".into()))?;
                let (user, pass) = decoded
                    .split_once(':')
                    .ok_or_else(|| KalamError::Unauthorized("malformed Basic credentials".into()))?;
                self.authenticate_basic(user, pass).await
            }
            _ => Err(KalamError::Unauthorized("unsupported Authorization scheme (use Bearer or Basic)".into())),
        }
    }

    /// Verifies an access token; the role comes from the catalog, so role changes and
    /// dropped users take effect at once, and a password change revokes the token.
    pub(crate) fn authenticate_token(&self, token: &str) -> Result<Principal> {
        self.grant(token).map(|g| g.principal)
    }

    /// Verifies an access token for a long-lived session (a WebSocket), which checks it
    /// again with [`Authenticator::recheck`] before each use.
    pub(crate) fn grant(&self, token: &str) -> Result<TokenGrant> {
        let claims = self.tokens.verify(token, TokenKind::Access)?;
        let grant = TokenGrant {
            principal: Principal { user_id: claims.user_id()?, username: claims.username.clone(), role: Role::User },
            expires: claims.exp as i64,
            password: claims.pwd,
        };
        let principal = self.recheck(&grant)?;
        Ok(TokenGrant { principal, ..grant })
    }

    /// The grant's user as the catalog has them now: fails once the user is dropped or their
    /// password changed since the token was issued; carries their current role.
    pub(crate) fn recheck(&self, grant: &TokenGrant) -> Result<Principal> {
        let user = self
            .catalog
            .user(grant.principal.user_id)
            .ok_or_else(|| KalamError::Unauthorized("the token's user no longer exists".into()))?;
        // Tokens issued before access tokens carried the fingerprint stay valid until expiry.
        if grant.password.as_deref().is_some_and(|p| p != token::password_fingerprint(&user)) {
            return Err(KalamError::Unauthorized("the token was revoked by a password change; sign in again".into()));
        }
        Ok(Principal::from_user(&user))
    }

    async fn authenticate_basic(&self, username: &str, password: &str) -> Result<Principal> {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if let Some(user) = self.catalog.user_by_name(username) {
            let cache = self.basic_cache.lock();
            if let Some(c) = cache.get(&user.id)
                && c.password_digest == digest
                && c.password_hash == user.password_hash
                && c.at.elapsed() < BASIC_CACHE_TTL
                && !is_locked(&user)
            {
                return Ok(Principal::from_user(&user));
            }
        }
        let user = self.login(username, password).await?;
        let mut cache = self.basic_cache.lock();
        if cache.len() >= BASIC_CACHE_MAX {
            cache.retain(|_, c| c.at.elapsed() < BASIC_CACHE_TTL);
            if cache.len() >= BASIC_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            user.id,
            CachedCredential { password_digest: digest, password_hash: user.password_hash.clone(), at: Instant::now() },
        );
        Ok(Principal::from_user(&user))
    }

    /// Checks a user name and password, counting failures: after `max_failed_logins` in a
    /// row the name is locked for `lockout_secs` — persisted for existing accounts, so
    /// restarts don't reset it. Attempts are counted before their password is checked (see
    /// [`lockout`]), and names without an account are answered exactly like names with one.
    pub(crate) async fn login(&self, username: &str, password: &str) -> Result<User> {
        let invalid = || KalamError::Unauthorized("invalid username or password".into());
        let locked = |left: Duration| {
            KalamError::AccountLocked(format!(
                "too many failed logins for this user name; try again in {} s",
                left.as_secs() + 1
            ))
        };
        if let Some(ledger) = self.ledger.get()
            && let Err(e) = ledger.catch_up().await
        {
            // Checked on what this node knows: the outcome still goes through the ledger.
            tracing::warn!("a login reads counters that may be behind: {}", e.report());
        }
        let stored = self.catalog.user_by_name(username);
        let now = now_micros();
        let (stored_failures, stored_lock) = match &stored {
            Some(u) => {
                (u.failed_logins, u.locked_until.filter(|t| *t > now).map(|t| Duration::from_micros((t - now) as u64)))
            }
            None => (0, None),
        };
        if let Admit::Locked(left) = self.throttle.begin(username, stored_failures, stored_lock) {
            return Err(locked(left));
        }
        let hash = stored.as_ref().map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let verified = password::verify(password.to_string(), hash).await;
        let ok = stored.is_some() && matches!(verified, Ok(true));
        // Re-read: another login may have changed the counters meanwhile.
        let current = stored.and_then(|u| self.catalog.user(u.id));
        let outcome = self.throttle.finish(username, ok, current.as_ref().map_or(0, |u| u.failed_logins));
        verified?;
        // The attempt that locks a name is answered like any failure, with or without an account.
        let Some(current) = current else { return Err(invalid()) };
        let succeeded = outcome == Outcome::Succeeded;
        if succeeded && current.failed_logins == 0 && current.locked_until.is_none() {
            return Ok(current);
        }
        let record = LoginRecord { user: current.id, succeeded, at: now_micros() };
        let recorded = match self.ledger.get() {
            Some(ledger) => ledger.record(record).await,
            None => self.apply_login_record(&record, |_| {}).map(|_| ()),
        };
        if let Err(e) = recorded {
            // Still answered: a right password lets the user in, a wrong one is refused.
            tracing::warn!(user = %current.username, "a login's outcome was not recorded: {}", e.report());
        }
        match succeeded {
            true => Ok(current),
            false => Err(invalid()),
        }
    }

    /// Applies a login's outcome to its account's stored counters: a success clears them; a
    /// failure counts, and the `max_failed_logins`th locks the account for `lockout_secs`
    /// from the attempt. Deterministic given the catalog and `record` (in a cluster every
    /// node applies the same records in log order, with the same settings). `also` goes into
    /// the same atomic write as the account, if it changes; whether it did.
    pub(crate) fn apply_login_record(
        &self,
        record: &LoginRecord,
        also: impl FnOnce(&mut rocksdb::WriteBatch),
    ) -> Result<bool> {
        let _guard = self.login_lock.lock();
        let Some(mut user) = self.catalog.user(record.user) else { return Ok(false) };
        if record.succeeded {
            if user.failed_logins == 0 && user.locked_until.is_none() {
                return Ok(false);
            }
            user.failed_logins = 0;
            user.locked_until = None;
            return self.catalog.update_user_with(&user, also).map(|()| true);
        }
        if user.locked_until.is_some_and(|until| until > record.at) {
            // Refused without a check on the node that counted it: nothing more to count.
            return Ok(false);
        }
        user.failed_logins += 1;
        if user.failed_logins >= self.config.max_failed_logins.max(1) {
            user.failed_logins = 0;
            user.locked_until = Some(record.at + self.config.lockout_secs as i64 * 1_000_000);
            tracing::warn!(user = %user.username, "account locked after repeated failed logins");
        }
        self.catalog.update_user_with(&user, also).map(|()| true)
    }

    /// Issues an access token and a refresh token for `user`.
    pub(crate) fn issue(&self, user: &User) -> Result<TokenResponse> {
        let (access_token, expires_at) =
            self.tokens.sign(user, TokenKind::Access, self.config.access_token_ttl_secs)?;
        let (refresh_token, _) = self.tokens.sign(user, TokenKind::Refresh, self.config.refresh_token_ttl_secs)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_at: crate::values::format_timestamp(expires_at * 1_000_000),
            refresh_token,
            user: UserInfo { id: user.id.to_string(), username: user.username.clone(), role: user.role },
        })
    }

    /// Exchanges a refresh token for new tokens. A password change since the refresh token
    /// was issued invalidates it.
    pub(crate) fn refresh(&self, refresh_token: &str) -> Result<TokenResponse> {
        let claims = self.tokens.verify(refresh_token, TokenKind::Refresh)?;
        let user = self
            .catalog
            .user(claims.user_id()?)
            .ok_or_else(|| KalamError::Unauthorized("the token's user no longer exists".into()))?;
        if claims.pwd.as_deref() != Some(token::password_fingerprint(&user).as_str()) {
            return Err(KalamError::Unauthorized("the refresh token was revoked by a password change".into()));
        }
        if is_locked(&user) {
            return Err(KalamError::AccountLocked(format!("account '{}' is locked", user.username)));
        }
        self.issue(&user)
    }
}

fn is_locked(user: &User) -> bool {
    user.locked_until.is_some_and(|u| u > now_micros())
}
