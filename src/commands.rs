//! The commands as typed, dispatched: clap's structures become settled
//! settings here (through `config`), and the orchestration (`app`) gets
//! only those, never the parser's types.

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::CommandFactory;

use crate::app::{self, Ui};
use crate::cli::{Cli, Command, FilterArgs, OutputArgs, ReportArgs, SandboxArgs};
use crate::config::{self, ExportArgs, ProcessEnvironment};
use crate::error::Result;
use crate::model::{Conversation, Lead, Resource};
use crate::sandbox::SandboxOptions;

pub async fn run(cli: Cli, now: DateTime<Utc>) -> Result<()> {
    let ui = Ui {
        quiet: cli.quiet,
        verbose: cli.verbose,
        summary: cli.summary,
    };
    match cli.command {
        Command::Pull(args) => {
            begin_report(
                &args.report,
                &args.output,
                &args.filters,
                Resource::Leads,
                now,
            )?;
            let export = ExportArgs {
                resource: Resource::Leads,
                source: &args.source,
                filters: &args.filters,
                channels: &[],
                output: &args.output,
                fetch: &args.fetch,
            };
            let settings = config::resolve(&export, &ProcessEnvironment, now)?;
            app::run_export::<Lead>(settings, ui, now).await
        }
        Command::Conversations(args) => {
            begin_report(
                &args.report,
                &args.output,
                &args.filters,
                Resource::Conversations,
                now,
            )?;
            let export = ExportArgs {
                resource: Resource::Conversations,
                source: &args.source,
                filters: &args.filters,
                channels: &args.channels,
                output: &args.output,
                fetch: &args.fetch,
            };
            let settings = config::resolve(&export, &ProcessEnvironment, now)?;
            app::run_export::<Conversation>(settings, ui, now).await
        }
        Command::Sandbox(args) => {
            let options = SandboxOptions {
                log_requests: ui.verbose > 0,
                ..sandbox_options(&args)
            };
            app::serve_sandbox(options).await
        }
        Command::Check(args) => crate::check::run(&args, &ProcessEnvironment, now).await,
        Command::Schema { kind } => {
            let mut text = serde_json::to_string_pretty(&kind.schema())
                .map_err(|e| crate::error::Error::internal(e.to_string()))?;
            text.push('\n');
            app::print_stdout(&text)
        }
        Command::Tap(args) => crate::singer::run(&args, &ProcessEnvironment, now).await,
        Command::Vendors => {
            app::print_stdout(&app::vendors_table())?;
            Ok(())
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(app::write_error)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&page)
                .and_then(|_| out.flush())
                .map_err(app::write_error)
        }
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "leads", &mut out);
            out.flush().map_err(app::write_error)
        }
    }
}

/// `--report`: registers the report of this run, refusing a path that is
/// the run's `-o` file or its state.
fn begin_report(
    report: &ReportArgs,
    output: &OutputArgs,
    filters: &FilterArgs,
    resource: Resource,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(path) = &report.report else {
        return Ok(());
    };
    let output = output.output.as_deref().filter(|p| p.as_os_str() != "-");
    let others = [("-o", output), ("--state", filters.state.as_deref())];
    let command = match resource {
        Resource::Leads => "pull",
        Resource::Conversations => "conversations",
    };
    crate::report::begin(path.clone(), &others, command, resource, now)
}

fn sandbox_options(args: &SandboxArgs) -> SandboxOptions {
    SandboxOptions {
        port: args.port,
        seed: args.seed,
        leads: args.leads,
        conversations: args.conversations,
        latency: std::time::Duration::from_millis(args.latency_ms),
        fail_every: args.fail_every,
        rate_limit: args.rate_limit,
        log_requests: false,
        message_bytes: args.message_bytes,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn sandbox_args(argv: &[&str]) -> std::result::Result<SandboxArgs, clap::Error> {
        let cli = Cli::try_parse_from(["leads", "sandbox"].iter().chain(argv))?;
        match cli.command {
            Command::Sandbox(args) => Ok(args),
            _ => panic!("not the sandbox command"),
        }
    }

    #[test]
    fn sandbox_message_bytes_flag_reaches_the_options() {
        let args = sandbox_args(&["--message-bytes", "100000"]).unwrap();
        assert_eq!(sandbox_options(&args).message_bytes, Some(100_000));
        let args = sandbox_args(&[]).unwrap();
        assert_eq!(sandbox_options(&args).message_bytes, None);
        for bad in ["0", "-5", "big"] {
            assert!(sandbox_args(&["--message-bytes", bad]).is_err(), "{bad}");
        }
    }
}
