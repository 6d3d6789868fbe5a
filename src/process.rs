//! What both binaries (`leads`, `tap-leads`) do around a run: logging to a
//! scrubbed stderr, the clock, the async runtime, the signals that end a run,
//! and turning the outcome into one error line and an exit code in exactly
//! one place.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::error::ErrorKind as ClapErrorKind;
use tracing_subscriber::EnvFilter;

use crate::error::{Error, ErrorKind, Result};

/// Runs `run` on a single-threaded runtime until it ends or a signal stops
/// it, then writes the run report (when one was asked for) and turns the
/// outcome into the exit code. With `interrupt_ends_well` (the sandbox,
/// which serves until Ctrl-C), an interrupt is success.
pub fn execute<F, Fut>(interrupt_ends_well: bool, run: F) -> ExitCode
where
    F: FnOnce(DateTime<Utc>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let now = clock();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(crate::idle::on_park)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return report(&Error::internal(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    let outcome = runtime.block_on(async {
        // Listening starts before the run does, so a signal that comes
        // while the first temporary file is created is not the default
        // (immediate, uncleaned) death.
        let stop = match stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                return Err(Error::internal(format!("cannot listen for signals: {e}")));
            }
        };
        tokio::select! {
            outcome = run(now) => outcome,
            // Dropping the run drops its open output and any prepared
            // state, which deletes their temporary files and leaves an
            // existing -o file and the state untouched.
            error = stop => Err(error),
        }
    });
    runtime.shutdown_background();
    let outcome = match crate::report::finish(&outcome) {
        // A report that cannot be written fails a run that succeeded.
        Err(error) if outcome.is_ok() => Err(error),
        Err(error) => {
            eprintln!(
                "leads: error: {}",
                crate::secret::for_terminal(&one_line(&error.message))
            );
            outcome
        }
        Ok(()) => outcome,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if interrupt_ends_well && error.kind == ErrorKind::Interrupted => {
            ExitCode::SUCCESS
        }
        Err(error) => report(&error),
    }
}

/// The one line `main` prints for an error, as a report records it.
pub fn error_line(error: &Error) -> String {
    crate::secret::for_terminal(&one_line(&error.message))
}

/// Resolves to the error of the first of SIGINT, SIGTERM or SIGHUP to come.
#[cfg(unix)]
pub fn stop_signal() -> std::io::Result<impl Future<Output = Error>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => Error::interrupted(),
            _ = terminate.recv() => Error::terminated(),
            _ = hangup.recv() => Error::hung_up(),
        }
    })
}

#[cfg(not(unix))]
pub fn stop_signal() -> std::io::Result<impl Future<Output = Error>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        Error::interrupted()
    })
}

/// "Now", in UTC. `LEADS_NOW` (RFC 3339) pins it, so tests of relative dates
/// (`--since 7d`) are deterministic.
pub fn clock() -> DateTime<Utc> {
    std::env::var("LEADS_NOW")
        .ok()
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

pub fn init_logging(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,leads=info",
        (false, _) => "warn,leads=debug",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ScrubbedStderr::default)
        .event_format(LogLine {
            with_time: verbose >= 2,
        })
        .init();
}

/// Log lines read like the rest of stderr: `leads: warning: ...`,
/// `leads: error: ...`, `leads: ...` for -v detail; -vv adds the UTC time.
struct LogLine {
    with_time: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LogLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if self.with_time {
            write!(writer, "{} ", Utc::now().format("%H:%M:%S%.3fZ"))?;
        }
        let prefix = match *event.metadata().level() {
            tracing::Level::ERROR => "leads: error: ",
            tracing::Level::WARN => "leads: warning: ",
            _ => "leads: ",
        };
        writer.write_str(prefix)?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// One log event, written to stderr when dropped, with every key the process
/// holds removed and control characters escaped: log lines carry URLs, ids
/// and reasons that came from a vendor, and no call site has to remember.
#[derive(Default)]
struct ScrubbedStderr(Vec<u8>);

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedStderr {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        crate::progress::eprint_line(&crate::secret::for_terminal(text.trim_end_matches('\n')));
    }
}

pub fn report(error: &Error) -> ExitCode {
    if error.kind == ErrorKind::OutputClosed {
        return ExitCode::SUCCESS;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(
        stderr,
        "leads: error: {}",
        crate::secret::for_terminal(&one_line(&error.message))
    );
    if let Some(hint) = &error.hint {
        let _ = writeln!(
            stderr,
            "hint: {}",
            crate::secret::for_terminal(&one_line(hint))
        );
    }
    ExitCode::from(error.kind.exit_code())
}

pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Clap's own errors, reshaped to `leads: error: ...` plus a hint, exit 2;
/// `--help` and `--version` print normally and exit 0.
pub fn argument_error(error: clap::Error) -> ExitCode {
    match error.kind() {
        ClapErrorKind::DisplayHelp
        | ClapErrorKind::DisplayVersion
        | ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return if error.kind() == ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(ErrorKind::Usage.exit_code())
            } else {
                ExitCode::SUCCESS
            };
        }
        _ => {}
    }
    report(&Error::usage(clap_message(&error.render().to_string())).with_hint(clap_hint(&error)))
}

/// Clap's message on one line, with the detail it puts on the lines after
/// the first (the missing arguments, the possible values), up to its usage
/// line.
fn clap_message(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:")
            || line.starts_with("tip:")
            || line.starts_with("For more information")
        {
            break;
        }
        parts.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    match parts.split_first() {
        Some((first, [])) => (*first).to_owned(),
        Some((first, rest)) if first.ends_with(':') => format!("{first} {}", rest.join(", ")),
        Some((first, rest)) => format!("{first} {}", rest.join(" ")),
        None => "invalid arguments".to_owned(),
    }
}

/// Clap's tip when it has one, else the subcommand's help.
fn clap_hint(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    rendered
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("tip: "))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let usage = rendered
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("Usage: "))
                .and_then(|u| u.split_whitespace().nth(1))
                .filter(|word| !word.starts_with(['[', '<', '-']));
            match usage {
                Some(command) => format!("see leads {command} --help"),
                None => "see leads --help".to_owned(),
            }
        })
}
