//! First start: create the `root` account (role `system`) and the JWT secret.
//!
//! Safe by default: root's password is `KALAMDB_ROOT_PASSWORD` if set, otherwise a random
//! 24-character password written to `<data-dir>/root-password.txt` with mode 0600. The
//! password is never logged; the log names the file. The JWT secret, unless configured, is
//! generated once into `<data-dir>/jwt-secret` (0600) so tokens survive restarts.

use crate::auth::password;
use crate::catalog::Catalog;
use crate::clock::now_micros;
use crate::error::{KalamError, Result};
use crate::ids::UserId;
use kalamdb_client_core::protocol::Role;
use rand::Rng;
use std::path::Path;

pub(crate) const ROOT_USERNAME: &str = "root";
pub(crate) const ROOT_PASSWORD_ENV: &str = "KALAMDB_ROOT_PASSWORD";

fn random_secret(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(KalamError::io("write", path))?;
    f.write_all(contents.as_bytes()).and_then(|_| f.sync_all()).map_err(KalamError::io("write", path))
}

/// Creates `root` if there are no users yet. In cluster mode every node creates the same
/// `root` (same id; the password from the environment, which all nodes must share).
/// `cluster_secret`: set in a cluster, where every node makes root alike (see below).
pub(crate) async fn ensure_root(
    catalog: &Catalog,
    data_dir: &Path,
    bcrypt_cost: u32,
    cluster_secret: Option<&str>,
) -> Result<()> {
    let cluster = cluster_secret.is_some();
    if catalog.has_users() {
        return Ok(());
    }
    let (pw, from_env) = match std::env::var(ROOT_PASSWORD_ENV) {
        Ok(pw) if !pw.is_empty() => (pw, true),
        _ if cluster => {
            return Err(KalamError::InvalidRequest(format!(
                "a cluster node needs {ROOT_PASSWORD_ENV} on its first start (the same on every node)"
            )));
        }
        _ => (random_secret(24), false),
    };
    password::validate(&pw).map_err(|e| KalamError::InvalidRequest(format!("{ROOT_PASSWORD_ENV}: {e}")))?;
    if !from_env {
        let file = data_dir.join("root-password.txt");
        write_private(&file, &format!("{pw}\n"))?;
        tracing::info!(file = %file.display(), "created user 'root'; its generated password is in this file");
    } else {
        tracing::info!("created user 'root' with the password from {ROOT_PASSWORD_ENV}");
    }
    // Every node of a cluster makes root on its own first start, and all must make the same
    // record: tokens carry a fingerprint of the password hash (a node would refuse another's
    // root tokens as revoked), and `system.users` must read the same everywhere. So the salt
    // comes from the cluster secret and the creation time is the epoch.
    let (hash, created_at) = match cluster_secret {
        Some(secret) => {
            let derived = derived_secret(secret, "root password salt");
            let salt: [u8; 16] = std::array::from_fn(|i| derived[i]);
            (password::hash_with_salt(pw, bcrypt_cost, salt).await?, 0)
        }
        None => (password::hash(pw, bcrypt_cost).await?, now_micros()),
    };
    catalog.create_user(Some(UserId::ROOT), ROOT_USERNAME, hash, Role::System, None, created_at)?;
    Ok(())
}

/// A secret for `purpose` derived from the cluster secret, the same on every node.
pub(crate) fn derived_secret(cluster_secret: &str, purpose: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(cluster_secret.as_bytes()).expect("any key length");
    mac.update(b"kalamdb derived secret: ");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The configured JWT secret, or the one generated into the data dir.
pub(crate) fn jwt_secret(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>> {
    server_secret(configured, data_dir, "jwt-secret")
}

/// The configured key that signs backup manifests, or the one generated into the data dir
/// (`backup-key`). A server restores only backups signed with its key.
pub(crate) fn backup_key(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>> {
    server_secret(configured, data_dir, "backup-key")
}

/// A secret from the configuration, or from `data_dir/file` (created with a random value,
/// mode 0600, on first use).
fn server_secret(configured: Option<&str>, data_dir: &Path, file: &str) -> Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let file = data_dir.join(file);
    match std::fs::read_to_string(&file) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
        _ => {
            let secret = random_secret(48);
            write_private(&file, &secret)?;
            Ok(secret.into_bytes())
        }
    }
}
