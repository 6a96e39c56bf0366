//! The `netsec` binary: parse arguments, dispatch, turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;
use netsec::cli::{Cli, Command};
use netsec::exit::{exit_code, is_broken_pipe};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
    netsec::logging::init(verbosity, cli.log_format);
    // The process's one async runtime; `serve --workers N` sizes it (0 is refused by serve).
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(args) = &cli.command
        && let Some(workers) = args.workers.filter(|&n| n > 0)
    {
        runtime.worker_threads(workers);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::from(netsec::exit::RUNTIME_FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(netsec::commands::run(cli.command, &mut stdout)) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
