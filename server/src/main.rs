use clap::Parser;
use kalamdb_server::config::{Cli, Config};
use kalamdb_server::server;
use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(debug_assertions)]
    let _failpoints = kalamdb_server::fault::setup();
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kalamdb-server: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.server.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let runtime = match server::request_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kalamdb-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(
        config,
        |url| {
            // Tests and scripts read this line to find the port when listening on port 0.
            println!("kalamdb-server listening on {url}");
        },
        server::shutdown_signal(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kalamdb-server: {e}");
            ExitCode::FAILURE
        }
    }
}
