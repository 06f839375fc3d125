//! The command line (clap).

use crate::render::Format;
use crate::script::Input;
use clap::{CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Without -c or -f, kalam reads statements from stdin when it is not a terminal, and starts
the interactive shell when it is (\\? lists its commands).

Environment: KALAM_PASSWORD (the password for --user, instead of asking), KALAM_URL,
KALAM_USER, KALAM_TOKEN, KALAM_PROFILE, KALAM_CONFIG_DIR (where profiles.toml is),
KALAM_HISTORY (the history file).

Exit codes: 0 success, 1 a statement (or the job it started) failed, 2 cannot connect or
sign in, 3 bad arguments, profile or file, 130 interrupted.

Examples:
  kalam --user root                           # the shell; the password is asked
  kalam --user root --save-profile local      # ...and remember the sign-in as 'local'
  kalam --profile local -c 'SHOW TABLES'      # one statement, then exit
  kalam --profile local -f schema.sql --format csv
  echo 'SELECT 1;' | KALAM_PASSWORD=... kalam -u root";

/// The KalamDB shell: run SQL against a KalamDB server interactively or from scripts.
// No `Debug`: the struct holds the token.
#[derive(Parser)]
#[command(name = "kalam", version, after_help = AFTER_HELP)]
pub(crate) struct Args {
    /// Server URL [default: http://127.0.0.1:8080, or the profile's]
    #[arg(long, env = "KALAM_URL", value_name = "URL")]
    pub(crate) url: Option<String>,

    /// Sign in as USER; the password is asked without echo (or read from KALAM_PASSWORD)
    #[arg(short = 'u', long, env = "KALAM_USER", value_name = "USER")]
    pub(crate) user: Option<String>,

    /// Never ask for a password: fail instead (for scripts and CI)
    #[arg(short = 'w', long)]
    pub(crate) no_password: bool,

    /// Sign in with an access token instead of a password
    #[arg(long, env = "KALAM_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub(crate) token: Option<String>,

    /// Connect with saved profile NAME (see --save-profile)
    #[arg(long, env = "KALAM_PROFILE", value_name = "NAME")]
    pub(crate) profile: Option<String>,

    /// After signing in, save the URL, user, namespace and sign-in as profile NAME
    #[arg(long, value_name = "NAME")]
    pub(crate) save_profile: Option<String>,

    /// Run SQL (one or more statements separated by ';') and exit; repeatable
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub(crate) commands: Vec<String>,

    /// Run the statements in FILE ('-' for stdin) and exit; repeatable, runs in order with -c
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// Resolve unqualified table names in NAMESPACE (like USE)
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,

    /// How results are printed
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: Format,

    /// Print how long each statement takes (always on in the shell until \timing off)
    #[arg(long)]
    pub(crate) timing: bool,
}

/// Parses the command line; the inputs (`-c` and `-f`) come back in the order given.
pub(crate) fn parse() -> Result<(Args, Vec<Input>), clap::Error> {
    let matches = Args::command().try_get_matches()?;
    let args = Args::from_arg_matches(&matches)?;
    let mut inputs: Vec<(usize, Input)> = Vec::new();
    if let Some(indices) = matches.indices_of("commands") {
        for ((i, sql), n) in indices.zip(&args.commands).zip(1..) {
            inputs.push((i, Input::Command { n, sql: sql.clone() }));
        }
    }
    if let Some(indices) = matches.indices_of("files") {
        for (i, path) in indices.zip(&args.files) {
            inputs.push((i, Input::File(path.clone())));
        }
    }
    inputs.sort_by_key(|(i, _)| *i);
    Ok((args, inputs.into_iter().map(|(_, input)| input).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }
}
