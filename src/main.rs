//! The `netsec` binary: parse arguments, dispatch, turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;
use netsec::cli::Cli;
use netsec::exit::{exit_code, is_broken_pipe};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
    netsec::logging::init(verbosity, cli.log_format);
    let mut stdout = std::io::stdout().lock();
    match netsec::commands::run(cli.command, &mut stdout) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
