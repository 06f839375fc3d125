//! Saved connection profiles: `<config dir>/kalam/profiles.toml`, readable by the owner only
//! (mode 0600, its directory 0700), since a profile may hold a token.
//!
//! ```toml
//! [profiles.dev]
//! url = "http://127.0.0.1:8080"
//! user = "alice"
//! refresh_token = "eyJ..."   # from the last sign-in; renewed on every use
//! ```

use crate::error::CliError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One saved connection. Tokens are never shown: `Debug` hides them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// An access token given with `--token` (expires; see `refresh_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    /// The refresh token of the last password sign-in: `kalam --profile` exchanges it for an
    /// access token, so the password is asked again only after it expires or the password
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    /// The namespace unqualified table names resolve in (like `USE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "<hidden>");
        f.debug_struct("Profile")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("token", &hidden(&self.token))
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The profiles file: `$KALAM_CONFIG_DIR/profiles.toml`, else `<config dir>/kalam/profiles.toml`
/// (`$XDG_CONFIG_HOME` or `~/.config` on Linux).
pub(crate) fn path() -> Result<PathBuf, CliError> {
    if let Some(dir) = std::env::var_os("KALAM_CONFIG_DIR") {
        return Ok(PathBuf::from(dir).join("profiles.toml"));
    }
    dirs::config_dir()
        .map(|d| d.join("kalam").join("profiles.toml"))
        .ok_or_else(|| CliError::Usage("no config directory (set HOME or KALAM_CONFIG_DIR)".into()))
}

fn read(path: &Path) -> Result<ProfileFile, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileFile::default()),
        Err(e) => return Err(CliError::io(path.display().to_string(), e)),
    };
    warn_if_readable_by_others(path);
    toml::from_str(&text).map_err(|e| CliError::Usage(format!("{}: {}", path.display(), e.message())))
}

/// Loads profile `name` from `path`.
pub(crate) fn load(path: &Path, name: &str) -> Result<Profile, CliError> {
    let mut file = read(path)?;
    file.profiles.remove(name).ok_or_else(|| {
        let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
        CliError::Usage(if known.is_empty() {
            format!("no profile '{name}' in {} (save one with --save-profile {name})", path.display())
        } else {
            format!("no profile '{name}' in {} (it has: {})", path.display(), known.join(", "))
        })
    })
}

/// Saves (creates or replaces) profile `name` in `path`, keeping the others. The file is
/// written next to the old one and renamed over it, so a crash never leaves half a file.
pub(crate) fn save(path: &Path, name: &str, profile: &Profile) -> Result<(), CliError> {
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(CliError::Usage(format!("invalid profile name {name:?}")));
    }
    let mut file = read(path)?;
    file.profiles.insert(name.to_string(), profile.clone());
    let text = toml::to_string(&file).map_err(|e| CliError::Usage(format!("cannot encode the profiles: {e}")))?;
    let io = |e| CliError::io(path.display().to_string(), e);
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(io)?;
    }
    let tmp = path.with_extension("toml.tmp");
    write_private(&tmp, text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Creates `dir` (and its parents) readable by the owner only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to a new file at `path` that only the owner can read (mode 0600 from the
/// start, so the content is never briefly readable by others).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!("kalam: warning: {} can be read by other users; run chmod 600 on it", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kalam").join("profiles.toml");
        let dev = Profile {
            url: Some("http://127.0.0.1:8080".into()),
            user: Some("alice".into()),
            refresh_token: Some("secret-refresh".into()),
            ..Profile::default()
        };
        save(&path, "dev", &dev).unwrap();
        save(&path, "prod", &Profile { url: Some("https://db".into()), ..Profile::default() }).unwrap();
        assert_eq!(load(&path, "dev").unwrap(), dev);
        assert_eq!(load(&path, "prod").unwrap().url.as_deref(), Some("https://db"));
        let missing = load(&path, "nope").unwrap_err().to_string();
        assert!(missing.contains("it has: dev, prod"), "{missing}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert!(!format!("{dev:?}").contains("secret-refresh"));
    }

    #[test]
    fn a_malformed_file_is_a_usage_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        std::fs::write(&path, "[profiles.dev]\nurl = 3\n").unwrap();
        let e = load(&path, "dev").unwrap_err();
        assert!(matches!(e, CliError::Usage(ref m) if m.contains("profiles.toml")), "{e}");
    }
}
