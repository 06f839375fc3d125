//! Signing in: from `--token`, a saved profile, or a user and password (asked without echo,
//! or `KALAM_PASSWORD`), and saving or renewing the profile.

use crate::args::Args;
use crate::connect::{DEFAULT_URL, Server};
use crate::error::CliError;
use crate::profile::{self, Profile};
use crate::session::{SavedProfile, Session};
use kalamdb_client_core::protocol::{ErrorCode, SqlRequest, TokenResponse};

fn from_tokens(server: Server, tokens: TokenResponse) -> Session {
    Session::new(server, tokens.user.username, tokens.access_token, Some(tokens.refresh_token))
}

/// Signs in with a password: `KALAM_PASSWORD`, or asked on the terminal without echo
/// (unless `ask` is false: `--no-password`).
async fn with_password(server: Server, user: &str, ask: bool) -> Result<Session, CliError> {
    let no_password = |detail: String| CliError::Auth {
        url: server.url().to_string(),
        who: format!(" as {user}"),
        message: format!("no password: set KALAM_PASSWORD{detail}"),
    };
    let password = match std::env::var("KALAM_PASSWORD") {
        Ok(p) => p,
        Err(_) if !ask => return Err(no_password(" (--no-password forbids asking)".into())),
        Err(_) => rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| no_password(format!(" or run kalam in a terminal ({e})")))?,
    };
    let tokens = server.login(user, &password).await?;
    Ok(from_tokens(server, tokens))
}

/// Signs in with an access token, checking it with the server (and learning whose it is).
async fn with_token(server: Server, token: String) -> Result<Session, CliError> {
    let request = SqlRequest { sql: "SELECT CURRENT_USER() AS username".into(), params: Vec::new(), namespace: None };
    let refused = |message: String| CliError::Auth { url: server.url().to_string(), who: String::new(), message };
    let username = match server.sql(&token, &request).await? {
        Ok(ok) => ok
            .results
            .first()
            .and_then(|r| r.rows.first())
            .and_then(|row| row.first())
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string(),
        Err(e) if matches!(e.code, ErrorCode::Unauthorized | ErrorCode::AccountLocked) => {
            return Err(refused(format!("the token was refused: {}", e.message)));
        }
        Err(e) => return Err(CliError::Sql { code: e.code, message: e.message }),
    };
    Ok(Session::new(server, username, token, None))
}

/// Signs in as the command line and profile say, and saves or renews the profile.
pub(crate) async fn connect(args: &Args) -> Result<Session, CliError> {
    let loaded = match &args.profile {
        Some(name) => {
            let path = profile::path()?;
            let p = profile::load(&path, name)?;
            Some((path, name.clone(), p))
        }
        None => None,
    };
    let saved = loaded.as_ref().map(|(_, _, p)| p.clone()).unwrap_or_default();
    let url = args.url.clone().or_else(|| saved.url.clone()).unwrap_or_else(|| DEFAULT_URL.into());
    let server = Server::new(&url)?;
    let mut session = if let Some(token) = &args.token {
        with_token(server, token.clone()).await?
    } else if let (None, Some(refresh)) = (&args.user, &saved.refresh_token) {
        match server.refresh(refresh).await {
            Ok(tokens) => from_tokens(server, tokens),
            // The saved sign-in expired or was revoked by a password change: ask again.
            Err(CliError::Auth { message, .. }) if saved.user.is_some() => {
                let user = saved.user.clone().unwrap_or_default();
                eprintln!(
                    "kalam: profile '{}': the saved sign-in was refused ({message}); signing in again",
                    args.profile.as_deref().unwrap_or("")
                );
                with_password(server, &user, !args.no_password).await?
            }
            Err(e) => return Err(e),
        }
    } else if let (None, Some(token)) = (&args.user, &saved.token) {
        with_token(server, token.clone()).await?
    } else if let Some(user) = args.user.as_ref().or(saved.user.as_ref()) {
        with_password(server, user, !args.no_password).await?
    } else {
        return Err(CliError::Usage(
            "no credentials: use --user NAME (the password is asked, or KALAM_PASSWORD), --token TOKEN or --profile NAME"
                .into(),
        ));
    };
    session.namespace = args.namespace.clone().or(saved.namespace.clone());

    if let Some(name) = &args.save_profile {
        let path = profile::path()?;
        let new = Profile {
            url: Some(session.server.url().to_string()),
            user: (session.username != "?").then(|| session.username.clone()),
            token: if session.refresh_token().is_none() { Some(session.access_token().to_string()) } else { None },
            refresh_token: session.refresh_token().map(str::to_string),
            namespace: session.namespace.clone(),
        };
        profile::save(&path, name, &new)?;
        eprintln!("kalam: saved profile '{name}' in {}", path.display());
        session.keep_profile(SavedProfile { path, name: name.clone(), profile: new });
    } else if let Some((path, name, mut p)) = loaded
        && let Some(refresh) = session.refresh_token()
        && p.user.as_deref().is_none_or(|u| u == session.username)
        && p.url.as_deref().is_none_or(|u| Server::new(u).is_ok_and(|s| s.url() == session.server.url()))
    {
        // Every refresh returns a new refresh token: keep the newest, so the profile stays
        // signed in as long as it is used within the token's lifetime. Only for the profile's
        // own user and server: `--user` or `--url` overriding it leave it alone.
        p.refresh_token = Some(refresh.to_string());
        p.token = None;
        profile::save(&path, &name, &p)?;
        session.keep_profile(SavedProfile { path, name, profile: p });
    }
    Ok(session)
}
