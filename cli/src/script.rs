//! Non-interactive runs: `-c SQL`, `-f file.sql` and standard input. Statements run in
//! order and the first failure stops the run, naming where it was and what it was.

use crate::error::{CliError, exit};
use crate::session::{Flow, Session};
use crate::statements::split;
use std::io::Read;
use std::path::PathBuf;

/// Where statements come from, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// `-c SQL` (the n-th one, from 1).
    Command { n: usize, sql: String },
    /// `-f FILE` (`-` is standard input).
    File(PathBuf),
    /// Standard input, when it is not a terminal and nothing else was given.
    Stdin,
}

impl Input {
    /// Where a statement at `line` came from, for error messages: `q.sql:3`, `stdin:2`, `-c 1`.
    fn location(&self, line: usize) -> String {
        match self {
            Input::Command { n, .. } => format!("-c {n}, line {line}"),
            Input::File(path) if path.as_os_str() == "-" => format!("stdin:{line}"),
            Input::File(path) => format!("{}:{line}", path.display()),
            Input::Stdin => format!("stdin:{line}"),
        }
    }

    fn read(&self) -> Result<String, CliError> {
        match self {
            Input::Command { sql, .. } => Ok(sql.clone()),
            Input::File(path) if path.as_os_str() == "-" => read_stdin(),
            Input::File(path) => {
                std::fs::read_to_string(path).map_err(|e| CliError::io(format!("cannot read {}", path.display()), e))
            }
            Input::Stdin => read_stdin(),
        }
    }
}

fn read_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| CliError::io("cannot read stdin", e))?;
    Ok(text)
}

/// The statement as one short line for an error message.
fn excerpt(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// Runs every input; returns the exit code. Files are read only when their turn comes, so
/// what ran before a missing file has run.
pub(crate) fn run(runtime: &tokio::runtime::Runtime, session: &mut Session, inputs: &[Input]) -> u8 {
    for input in inputs {
        let text = match input.read() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("kalam: {e}");
                return e.exit_code();
            }
        };
        for piece in split(&text) {
            match runtime.block_on(session.run(&piece.text)) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => return exit::OK,
                Err(e) if e.is_broken_pipe() => return exit::OK,
                Err(e) => {
                    let location = input.location(piece.line);
                    match e {
                        CliError::Sql { .. } | CliError::Job { .. } | CliError::Usage(_) => {
                            eprintln!("kalam: {location}: ERROR: {e}");
                            eprintln!("kalam: {location}: failed statement: {}", excerpt(&piece.text));
                        }
                        // Connection and sign-in failures are about the server, not the statement.
                        _ => eprintln!("kalam: {e}"),
                    }
                    return e.exit_code();
                }
            }
        }
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_excerpts_name_the_statement() {
        assert_eq!(Input::File("q.sql".into()).location(3), "q.sql:3");
        assert_eq!(Input::Stdin.location(2), "stdin:2");
        assert_eq!(Input::Command { n: 2, sql: String::new() }.location(1), "-c 2, line 1");
        assert_eq!(excerpt("SELECT *\n  FROM   t"), "SELECT * FROM t");
        let long = format!("SELECT '{}'", "x".repeat(300));
        assert!(excerpt(&long).ends_with("...") && excerpt(&long).len() < 110);
    }
}
