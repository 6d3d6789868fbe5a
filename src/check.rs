//! `leads check` (SPEC section 13): for each source, settle its settings and
//! key exactly as `pull` would, then make one cheap request — the first
//! page of leads at the smallest size, for NeoAgent a one-day window —
//! through the same export function, and report how it went. Nothing is
//! written and no state moves: the records are dropped.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::cli::{CheckArgs, CheckFormat, FilterArgs, OutputArgs, SourceArgs};
use crate::config::{self, Endpoint, Environment, ExportArgs, Source};
use crate::error::{Error, ErrorKind, Result};
use crate::export::{self, SeenIds};
use crate::model::{Resource, Vendor};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::vendors::plan::DateFilter;

/// How one source's check went.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub source: String,
    pub vendor: Option<Vendor>,
    pub agent: Option<String>,
    pub status: &'static str,
    pub exit_code: u8,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

/// The status words of SPEC section 13, and two more for what is neither.
pub fn status_of(error: &Error) -> &'static str {
    match error.kind {
        ErrorKind::Auth => "auth refused",
        ErrorKind::NotFound => "not found",
        ErrorKind::Network
            if error
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("certificate")) =>
        {
            "certificate not trusted"
        }
        ErrorKind::Network => "unreachable",
        ErrorKind::Usage => "invalid settings",
        _ => "vendor failure",
    }
}

pub async fn run(args: &CheckArgs, env: &dyn Environment, now: DateTime<Utc>) -> Result<()> {
    let results = check_all(args, env, now).await?;
    let mut out = std::io::stdout().lock();
    let text = match args.format {
        CheckFormat::Ndjson => ndjson(&results),
        CheckFormat::Table => table(&results, std::io::stdout().is_terminal()),
    };
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(crate::app::write_error)?;
    // The worst failure is the one with the highest exit code.
    match results.iter().max_by_key(|r| r.exit_code) {
        Some(worst) if worst.exit_code != 0 => Err(Error::new(
            kind_of(worst.exit_code),
            format!(
                "{} of {} sources failed the check; the worst: {}: {}",
                results.iter().filter(|r| r.exit_code != 0).count(),
                results.len(),
                worst.source,
                worst.status
            ),
        )),
        _ => Ok(()),
    }
}

fn kind_of(code: u8) -> ErrorKind {
    [
        ErrorKind::Usage,
        ErrorKind::Auth,
        ErrorKind::NotFound,
        ErrorKind::Vendor,
        ErrorKind::Network,
        ErrorKind::LocalFile,
    ]
    .into_iter()
    .find(|k| k.exit_code() == code)
    .unwrap_or(ErrorKind::Internal)
}

/// The sources to check: one per name (each settled on its own, so one
/// source's missing key is its own row, not the end of the check), or the
/// single `--vendor`/`--agent` source.
async fn check_all(
    args: &CheckArgs,
    env: &dyn Environment,
    now: DateTime<Utc>,
) -> Result<Vec<CheckResult>> {
    let named = !args.source.names.is_empty() || args.source.all;
    let names: Vec<Option<String>> = if named {
        let defined = crate::sources::load(args.source.config.as_deref(), env)?;
        defined
            .select(&args.source.names, args.source.all)?
            .into_iter()
            .map(|e| Some(e.name.clone()))
            .collect()
    } else {
        vec![None]
    };
    let filters = FilterArgs {
        since: None,
        until: None,
        session: None,
        limit: None,
        state: None,
        lock_timeout: None,
    };
    let output = OutputArgs {
        format: None,
        output: None,
        raw: false,
        no_formula_guard: false,
        bom: false,
        columns: None,
    };
    let mut results = Vec::with_capacity(names.len());
    let mut sandbox: Option<Sandbox> = None;
    for name in names {
        let source_args = SourceArgs {
            names: name.iter().cloned().collect(),
            all: false,
            config: args.source.config.clone(),
            vendor: args.source.vendor,
            agent: args.source.agent.clone(),
            project: args.source.project.clone(),
            base_url: args.source.base_url.clone(),
            api_key_file: args.source.api_key_file.clone(),
            ca_cert: args.source.ca_cert.clone(),
            sandbox: args.source.sandbox,
            keep_going: false,
        };
        let export_args = ExportArgs {
            resource: Resource::Leads,
            source: &source_args,
            filters: &filters,
            channels: &[],
            output: &output,
            fetch: &args.fetch,
        };
        let label = name.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                args.source.vendor.map_or("?", Vendor::as_str),
                args.source.agent.as_deref().unwrap_or("?")
            )
        });
        let settings = match config::resolve(&export_args, env, now) {
            Ok(settings) => settings,
            // A single source's bad input is the command's usage error.
            Err(error) if !named => return Err(error),
            Err(error) => {
                results.push(CheckResult {
                    source: label,
                    vendor: None,
                    agent: None,
                    status: status_of(&error),
                    exit_code: error.kind.exit_code(),
                    latency_ms: None,
                    error: Some(crate::process::error_line(&error)),
                });
                continue;
            }
        };
        for source in &settings.sources {
            if matches!(source.endpoint, Endpoint::Sandbox)
                && crate::sandbox::key(source.job.vendor.as_str()).is_none()
            {
                return Err(Error::usage(format!(
                    "the sandbox does not simulate {} yet",
                    source.job.vendor.display_name()
                )));
            }
            if matches!(source.endpoint, Endpoint::Sandbox) && sandbox.is_none() {
                sandbox = Some(
                    Sandbox::start(SandboxOptions::default())
                        .await
                        .map_err(|e| Error::internal(format!("cannot start the sandbox: {e}")))?,
                );
            }
            let label = source
                .name
                .clone()
                .unwrap_or_else(|| format!("{}/{}", source.job.vendor, source.job.agent));
            results.push(check_one(label, source, &settings.fetch, sandbox.as_ref(), now).await);
        }
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(results)
}

async fn check_one(
    label: String,
    source: &Source,
    fetch: &crate::fetch::FetchSettings,
    sandbox: Option<&Sandbox>,
    now: DateTime<Utc>,
) -> CheckResult {
    let mut job = source.job.clone();
    job.filters.limit = Some(1);
    job.page_size = 1;
    job.concurrency = 1;
    // A vendor that does not page by number but filters by date answers a
    // range whole: ask for one window of the last day only.
    let leads = job.vendor.spec().resource(Resource::Leads);
    if leads.page_size.is_none() && leads.dates != DateFilter::ClientOnly {
        job.filters.since = Some(now - Duration::days(1));
        job.window_days = 2;
    }
    let started = Instant::now();
    let outcome = async {
        let fetcher = Arc::new(crate::app::build_fetcher(source, fetch, sandbox)?);
        let mut seen = SeenIds::default();
        let mut discard = |_: &crate::model::Lead| Ok(());
        export::export(&job, None, fetcher, &mut seen, &mut discard).await
    }
    .await;
    let latency_ms = Some(started.elapsed().as_millis() as u64);
    let (status, exit_code, error) = match outcome {
        Ok(_) => ("ok", 0, None),
        Err(error) => (
            status_of(&error),
            error.kind.exit_code(),
            Some(crate::process::error_line(&error)),
        ),
    };
    CheckResult {
        source: label,
        vendor: Some(source.job.vendor),
        agent: Some(source.job.agent.clone()),
        status,
        exit_code,
        latency_ms,
        error,
    }
}

fn ndjson(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(
            &json!({
                "source": r.source,
                "vendor": r.vendor,
                "agent_id": r.agent,
                "status": r.status,
                "exit_code": r.exit_code,
                "latency_ms": r.latency_ms,
                "error": r.error,
            })
            .to_string(),
        );
        out.push('\n');
    }
    out
}

fn table(results: &[CheckResult], terminal: bool) -> String {
    let mut rows = vec![[
        "source".to_owned(),
        "vendor".to_owned(),
        "status".to_owned(),
        "latency".to_owned(),
        "detail".to_owned(),
    ]];
    for r in results {
        rows.push([
            r.source.clone(),
            r.vendor.map_or("-", Vendor::as_str).to_owned(),
            r.status.to_owned(),
            r.latency_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c < 4 {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            } else {
                // On a terminal the detail is cut to keep one row a line.
                let cell = if terminal && cell.chars().count() > 100 {
                    format!("{}...", cell.chars().take(97).collect::<String>())
                } else {
                    cell.clone()
                };
                line.push_str(&cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
