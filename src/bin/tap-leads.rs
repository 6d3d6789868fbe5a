//! `tap-leads`: the Singer tap as a binary of its own, because Meltano runs
//! a plugin's `executable` with the Singer flags. The same code runs as
//! `leads tap`; everything lives in `leads::singer`.

use std::process::ExitCode;

use clap::Parser;

use leads::cli::TapCli;
use leads::config::ProcessEnvironment;

fn main() -> ExitCode {
    let cli = match TapCli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return leads::process::argument_error(error),
    };
    leads::process::init_logging(cli.quiet, cli.verbose);
    leads::process::execute(false, |now| async move {
        leads::singer::run(&cli.tap, &ProcessEnvironment, now).await
    })
}
