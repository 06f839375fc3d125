//! The interactive shell: line editing, history, completion and multi-line statements
//! (rustyline), running each statement as it is entered.

use crate::complete::{CATALOG_MAX_AGE, SharedCatalog, ShellHelper};
use crate::error::{CliError, exit};
use crate::profile::create_private_dir;
use crate::session::{Flow, Session};
use crate::statements::{holds_secret, split};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};
use std::path::PathBuf;

/// The history file: `$KALAM_HISTORY`, else `<data dir>/kalam/history` (`$XDG_DATA_HOME` or
/// `~/.local/share` on Linux). rustyline writes it readable by the owner only.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KALAM_HISTORY") {
        return Some(PathBuf::from(path));
    }
    let dir = dirs::data_dir()?.join("kalam");
    create_private_dir(&dir).ok()?;
    Some(dir.join("history"))
}

fn terminal_error(e: ReadlineError) -> CliError {
    CliError::io("terminal", std::io::Error::other(e))
}

/// Prints an error of one statement; the shell goes on.
pub(crate) fn report(e: &CliError) {
    match e {
        CliError::Sql { .. } | CliError::Job { .. } => eprintln!("ERROR: {e}"),
        CliError::Interrupted => eprintln!("Cancelled."),
        _ => eprintln!("kalam: {e}"),
    }
}

/// Runs the shell until `\q` or Ctrl-D.
pub(crate) fn run(runtime: &tokio::runtime::Runtime, mut session: Session) -> Result<u8, CliError> {
    let catalog = SharedCatalog::default();
    catalog.reload(runtime.handle(), session.server.clone(), session.access_token().to_string());
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .max_history_size(2000)
        .map_err(terminal_error)?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(config).map_err(terminal_error)?;
    editor.set_helper(Some(ShellHelper::new(catalog.clone(), session.namespace.clone())));
    let history = history_path();
    if let Some(path) = &history
        && path.exists()
        && let Err(e) = editor.load_history(path)
    {
        eprintln!("kalam: warning: cannot read the history {}: {e}", path.display());
    }
    println!(
        "kalam {} connected to {} as {}. Type \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION"),
        session.server.url(),
        session.username
    );
    loop {
        let namespace = session.namespace.as_deref().map(|ns| format!("/{ns}")).unwrap_or_default();
        let prompt = format!("{}@{}{namespace}> ", session.username, session.server.host());
        let input = match editor.readline(&prompt) {
            Ok(input) => input,
            // Ctrl-C at the prompt discards the line, as in psql and bash.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(exit::OK),
            Err(e) => return Err(terminal_error(e)),
        };
        if input.trim().is_empty() {
            continue;
        }
        // Statements with a password or a storage secret stay out of the history file.
        if !holds_secret(&input)
            && editor.add_history_entry(input.as_str()).unwrap_or(false)
            && let Some(path) = &history
            && let Err(e) = editor.append_history(path)
        {
            eprintln!("kalam: warning: cannot write the history {}: {e}", path.display());
        }
        for piece in split(&input) {
            match runtime.block_on(session.run(&piece.text)) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => return Ok(exit::OK),
                Err(e) => {
                    // The rest of what was entered depended on this statement: skip it.
                    report(&e);
                    break;
                }
            }
        }
        if std::mem::take(&mut session.catalog_changed) || catalog.older_than(CATALOG_MAX_AGE) {
            catalog.reload(runtime.handle(), session.server.clone(), session.access_token().to_string());
        }
        if let Some(helper) = editor.helper_mut() {
            helper.namespace.clone_from(&session.namespace);
        }
    }
}
