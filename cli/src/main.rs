//! `kalam`, the KalamDB shell. See docs/cli.md.
//!
//! - [`args`]: the command line; [`signin`]: credentials, profiles ([`profile`]);
//! - [`connect`]: HTTP to the server; [`session`]: a signed-in session running statements;
//! - [`shell`]: the interactive loop, with completion ([`complete`], the rules of which are the
//!   crate kalamdb-complete's); [`script`]: `-c`, `-f` and stdin;
//! - [`meta`]: backslash commands; [`live`]: `\live` over the WebSocket; [`jobs`]: progress
//!   of FLUSH, BACKUP and RESTORE;
//! - [`statements`]: splitting input; [`render`]: tables, JSON and CSV; [`error`]: the error
//!   type and exit codes.

mod args;
mod complete;
mod connect;
mod error;
mod jobs;
mod live;
mod meta;
mod profile;
mod render;
mod script;
mod session;
mod shell;
mod signin;
mod statements;

use error::exit;
use script::Input;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let (args, mut inputs) = match args::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            // --help and --version print to stdout and succeed; real mistakes are usage errors.
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let interactive = inputs.is_empty() && std::io::stdin().is_terminal();
    if inputs.is_empty() && !interactive {
        inputs.push(Input::Stdin);
    }
    // One worker runs background work (the completion catalog) while the main thread waits
    // in the line editor.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kalam: cannot start the runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = match runtime.block_on(signin::connect(&args)) {
        Ok(mut session) => {
            session.format = args.format;
            session.timing = args.timing || interactive;
            if interactive {
                shell::run(&runtime, session).unwrap_or_else(|e| {
                    eprintln!("kalam: {e}");
                    e.exit_code()
                })
            } else {
                script::run(&runtime, &mut session, &inputs)
            }
        }
        Err(e) => {
            eprintln!("kalam: {e}");
            e.exit_code()
        }
    };
    // A catalog load still under way is not worth waiting for.
    runtime.shutdown_background();
    ExitCode::from(code)
}
