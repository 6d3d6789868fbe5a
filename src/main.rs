//! `leads`: parse the command line and run it; `leads::process` turns the
//! outcome into an exit code in exactly one place.

use std::process::ExitCode;

use clap::Parser;

use leads::cli::Cli;

// Every lead costs a few dozen small allocations (parsed strings, model
// strings, output buffers); mimalloc serves them in about a third less CPU
// than glibc's allocator, measured on the benchmark's 200,000-lead export.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return leads::process::argument_error(error),
    };
    leads::process::init_logging(cli.quiet, cli.verbose);
    // The sandbox serves until Ctrl-C: that is how it is stopped, not a
    // failure.
    let serving = matches!(cli.command, leads::cli::Command::Sandbox(_));
    leads::process::execute(serving, |now| leads::commands::run(cli, now))
}
