//! One run of a command, from settled settings to a committed output: starts
//! the sandbox when asked, takes the state lock, runs each source (several
//! concurrently, each into its own spool so a failing source writes
//! nothing), streams records to the writer, prepares the new state, and
//! then commits the output and the state, in that order.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::{Endpoint, Settings, Source};
use crate::db::{Database, Stored};
use crate::error::{Error, ErrorKind, Result};
use crate::export::{self, Bookmark, Exportable, RunStats, SeenIds};
use crate::fetch::Fetcher;
use crate::model::{Resource, Vendor};
use crate::output::{Destination, Formatted, Output};
use crate::progress::Progress;
use crate::sandbox::{self, Sandbox, SandboxOptions};
use crate::secret::ApiKey;
use crate::state::{self, StateFile};

/// How chatty the run is on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: u8,
    /// The summary line whatever stderr is (`--summary`).
    pub summary: bool,
}

/// The fetcher of one source: its base URL and key, or the sandbox's when
/// the source runs against the built-in simulator (started by the caller).
pub fn build_fetcher(
    source: &Source,
    fetch: &crate::fetch::FetchSettings,
    sandbox: Option<&Sandbox>,
) -> Result<Fetcher> {
    let (base_url, key, ca_certs) = match (&source.endpoint, sandbox) {
        (
            Endpoint::Remote {
                base_url,
                key,
                ca_certs,
            },
            _,
        ) => (base_url.clone(), key.clone(), ca_certs.as_slice()),
        (Endpoint::Sandbox, Some(sandbox)) => {
            let url = url::Url::parse(
                &sandbox
                    .base_url(source.job.vendor.as_str())
                    .unwrap_or_default(),
            )
            .map_err(|e| Error::internal(e.to_string()))?;
            let key = ApiKey::new(sandbox::key(source.job.vendor.as_str()).unwrap_or_default())
                .ok_or_else(|| Error::internal("empty sandbox key"))?;
            (url, key, &[][..])
        }
        (Endpoint::Sandbox, None) => return Err(Error::internal("sandbox not started")),
    };
    Fetcher::new(
        source.job.vendor,
        &source.job.agent,
        &base_url,
        &key,
        source.job.vendor.spec().auth,
        fetch.clone(),
        ca_certs,
    )
}

/// A write failure: a closed stdout is a quiet success, anything else is a
/// local file error.
pub fn write_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::new(ErrorKind::OutputClosed, "stdout was closed")
    } else {
        Error::local_file(format!("cannot write the output: {e}"))
    }
}

pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(write_error)
}

/// One source's export, from its state bookmark (what was written before
/// is dropped) or, `from_table`, from where the database's table leaves off
/// (nothing is dropped: the table upserts).
pub(crate) async fn export_source<R: Exportable>(
    job: &export::Job,
    bookmark: Option<&Bookmark>,
    from_table: bool,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: export::Sink<'_, R>,
) -> Result<RunStats> {
    if from_table {
        export::export_from_table(job, bookmark, fetcher, seen, sink).await
    } else {
        export::export(job, bookmark, fetcher, seen, sink).await
    }
}

pub async fn run_export<R: Exportable + Formatted + Stored>(
    settings: Settings,
    ui: Ui,
    now: DateTime<Utc>,
) -> Result<()> {
    let started = Instant::now();
    // The lock comes first: a second run must not even start fetching.
    let mut state = match &settings.state {
        // Waiting for the lock blocks; off the runtime's thread, so Ctrl-C
        // still ends the run at once.
        Some(state) => {
            let (path, wait) = (state.path.clone(), state.lock_timeout);
            let opened = tokio::task::spawn_blocking(move || StateFile::open(&path, wait))
                .await
                .map_err(|e| Error::internal(format!("the state lock wait failed: {e}")))??;
            Some(opened)
        }
        None => None,
    };
    let mut bookmarks: Vec<Option<Bookmark>> = vec![None; settings.sources.len()];
    if let Some(state) = &state {
        for (source, slot) in settings.sources.iter().zip(&mut bookmarks) {
            let key = state::bookmark_key(source.job.vendor, &source.job.agent, settings.resource);
            let bookmark = state.bookmark(&key);
            // Saved by an older leads that let a future-dated record become
            // the bookmark: every run would skip everything before it.
            if let Some(mark) = bookmark.as_ref().and_then(|b| b.created_at)
                && mark > now + export::FUTURE_TOLERANCE
            {
                return Err(Error::local_file(format!(
                    "the state file {} has a bookmark in the future for {key} ({}): every record before it would be skipped",
                    settings.state.as_ref().map_or_else(Default::default, |s| s.path.display().to_string()),
                    crate::model::format_timestamp(&mark)
                ))
                .with_hint(format!(
                    "remove the \"{key}\" entry from the state file (that source is then exported from the start once), or check the clock"
                )));
            }
            *slot = bookmark;
        }
    }
    // A database is opened (and its tables checked) before anything is
    // fetched; with --incremental, the table is where each source starts.
    let mut from_table = false;
    let mut database = match &settings.output.destination {
        Destination::Database(db) => {
            let mut database = Database::open(db, settings.resource, now).await?;
            if db.incremental {
                from_table = true;
                for (source, slot) in settings.sources.iter().zip(&mut bookmarks) {
                    let newest = database
                        .newest(
                            source.job.vendor.as_str(),
                            &source.job.agent,
                            now + export::FUTURE_TOLERANCE,
                        )
                        .await?;
                    *slot = newest.map(|created_at| Bookmark {
                        created_at: Some(created_at),
                        ids: Vec::new(),
                    });
                }
            }
            Some(database)
        }
        _ => None,
    };
    if let Some(source) = settings.sources.iter().find(|s| {
        matches!(s.endpoint, Endpoint::Sandbox) && sandbox::key(s.job.vendor.as_str()).is_none()
    }) {
        return Err(Error::usage(format!(
            "the sandbox does not simulate {} yet",
            source.job.vendor.display_name()
        )));
    }
    let sandbox = if settings
        .sources
        .iter()
        .any(|s| matches!(s.endpoint, Endpoint::Sandbox))
    {
        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .map_err(|e| Error::internal(format!("cannot start the sandbox: {e}")))?;
        Some(sandbox)
    } else {
        None
    };
    crate::report::sources(settings.sources.iter().zip(&bookmarks).map(|(s, b)| {
        (
            s.name.as_deref(),
            s.job.vendor,
            s.job.agent.as_str(),
            b.as_ref(),
        )
    }));
    let mut fetchers = Vec::with_capacity(settings.sources.len());
    for source in &settings.sources {
        fetchers.push(Arc::new(build_fetcher(
            source,
            &settings.fetch,
            sandbox.as_ref(),
        )?));
    }

    // The fetchers go to their sources, so that each one's connections
    // close when its source is done; only their counters stay here.
    let fetch_stats: Vec<_> = fetchers.iter().map(|f| f.stats.clone()).collect();
    crate::report::fetch_stats(&fetch_stats);
    let progress = Progress::new(
        !ui.quiet && std::io::stderr().is_terminal(),
        fetch_stats.clone(),
    );
    let mut output = match database.take() {
        Some(database) => Output::<R>::database(database, &settings.output.options),
        None => Output::<R>::open(&settings.output)?,
    };
    let mut outcomes: Vec<(usize, Result<RunStats>)> = Vec::new();

    if settings.sources.len() == 1 {
        let limit = settings.sources[0].job.filters.limit;
        let mut seen = limit.map_or_else(SeenIds::default, SeenIds::with_capacity);
        let mut sink = |record: &R| {
            output.write(record)?;
            progress.record();
            Ok(())
        };
        let fetcher = fetchers
            .pop()
            .ok_or_else(|| Error::internal("no fetcher for the source"))?;
        let stats = export_source(
            &settings.sources[0].job,
            bookmarks[0].as_ref(),
            from_table,
            fetcher,
            &mut seen,
            &mut sink,
        )
        .await?;
        outcomes.push((0, Ok(stats)));
    } else {
        outcomes = crate::relay::run_sources::<R>(
            &settings.sources,
            &bookmarks,
            from_table,
            fetchers,
            &mut output,
            &progress,
            settings.keep_going,
        )
        .await?;
    }

    let succeeded: Vec<&(usize, Result<RunStats>)> =
        outcomes.iter().filter(|(_, r)| r.is_ok()).collect();
    let first_failure = outcomes
        .iter()
        .find_map(|(i, r)| r.as_ref().err().map(|e| (*i, e.clone())));
    if succeeded.is_empty()
        && let Some((_, error)) = first_failure
    {
        return Err(error);
    }
    let finished = output.finish()?;

    // The new state is written and synced before the output is put in
    // place, so a state that cannot be saved (full disk, no permission)
    // stops the run with nothing committed; otherwise the output would be
    // in place while the old bookmark makes the next run write it again.
    // What is left after the output's rename is the state's rename alone.
    let prepared = match &mut state {
        Some(state) => {
            let mut future_dated = 0;
            for (index, result) in &outcomes {
                if let Ok(stats) = result {
                    future_dated += stats.future_dated;
                    let source = &settings.sources[*index];
                    if let Some(newest) = &stats.newest {
                        state.advance(
                            &state::bookmark_key(
                                source.job.vendor,
                                &source.job.agent,
                                settings.resource,
                            ),
                            newest,
                            now,
                        );
                    }
                }
            }
            if future_dated > 0 && !ui.quiet {
                eprintln!(
                    "leads: warning: {future_dated} {} dated more than a day after this run's clock ({}): written, but the bookmark does not move to {}",
                    if future_dated == 1 {
                        "record"
                    } else {
                        "records"
                    },
                    crate::model::format_timestamp(&now),
                    if future_dated == 1 { "it" } else { "them" },
                );
            }
            Some(state.prepare()?)
        }
        None => None,
    };
    let database = finished.commit()?;
    if let Some(prepared) = prepared {
        prepared.commit()?;
    }
    let stored = match database {
        Some(database) => {
            let shown = database.shown().to_owned();
            Some((shown, database.commit().await?))
        }
        None => None,
    };
    for (index, result) in &outcomes {
        match result {
            Ok(stats) => {
                let source = &settings.sources[*index];
                let after = state.as_ref().and_then(|state| {
                    state.bookmark(&state::bookmark_key(
                        source.job.vendor,
                        &source.job.agent,
                        settings.resource,
                    ))
                });
                crate::report::source_succeeded(*index, stats, after);
            }
            Err(error) => crate::report::source_failed(*index, error),
        }
    }
    progress.finish();

    let total = outcomes.iter().filter_map(|(_, r)| r.as_ref().ok()).fold(
        RunStats::default(),
        |mut acc, s| {
            acc.written += s.written;
            acc.pages += s.pages;
            acc.duplicates += s.duplicates;
            acc.filtered += s.filtered;
            acc
        },
    );
    let requests: u64 = fetch_stats
        .iter()
        .map(|s| s.requests.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let retries: u64 = fetch_stats
        .iter()
        .map(|s| s.retries.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    if ui.summary || (!ui.quiet && (ui.verbose > 0 || std::io::stderr().is_terminal())) {
        use crate::words::counted;
        let (one, many) = match settings.resource {
            Resource::Leads => ("lead", "leads"),
            Resource::Conversations => ("conversation", "conversations"),
        };
        let stored = stored
            .map(|(shown, counts)| {
                format!(
                    " to {shown} ({} inserted, {} updated, {} unchanged)",
                    counts.inserted, counts.updated, counts.unchanged
                )
            })
            .unwrap_or_default();
        eprintln!(
            "leads: {} written{stored}, {}, {} ({} retried), {} dropped, {} filtered out, {:.1}s",
            counted(total.written, one, many),
            counted(total.pages, "page", "pages"),
            counted(requests, "request", "requests"),
            retries,
            counted(total.duplicates, "duplicate", "duplicates"),
            total.filtered,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    match first_failure {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// `leads sandbox`: serves until Ctrl-C.
pub async fn serve_sandbox(options: SandboxOptions) -> Result<()> {
    if !sandbox::AVAILABLE {
        return Err(Error::usage("this build has no sandbox"));
    }
    let port = options.port;
    let sandbox = Sandbox::start(options).await.map_err(|e| {
        Error::new(
            ErrorKind::LocalFile,
            format!("cannot listen on 127.0.0.1:{port}: {e}"),
        )
        .with_hint("pick another --port, or --port 0 for a free one")
    })?;
    print_stdout(&sandbox::describe(&sandbox))?;
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    sandbox.shutdown().await;
    Ok(())
}

/// `leads vendors`: what each vendor supports, read from the registry.
pub fn vendors_table() -> String {
    use crate::vendors::plan::{DateFilter, SessionFilter};
    let mut rows: Vec<[String; 7]> = vec![
        [
            "vendor",
            "resource",
            "paging",
            "--since/--until",
            "--session",
            "--source",
            "--page-size",
        ]
        .map(str::to_owned),
    ];
    let mut notes = Vec::new();
    for vendor in Vendor::all() {
        let spec = vendor.spec();
        for resource in [Resource::Leads, Resource::Conversations] {
            let info = spec.resource(resource);
            let dates = match info.dates {
                DateFilter::ServerDays => "server (days) + client",
                DateFilter::ServerExact => "server (exact) + client",
                DateFilter::ClientOnly => "client only",
            };
            let session = match info.session {
                SessionFilter::Unsupported => "no",
                SessionFilter::SessionId {
                    server: true,
                    numeric: true,
                } => "server (numeric)",
                SessionFilter::SessionId { server: true, .. } => "server",
                SessionFilter::SessionId { server: false, .. } => "client",
                SessionFilter::RecordId => "server (one conversation)",
            };
            let page_size = info
                .page_size
                .map_or_else(|| "ignored".to_owned(), |p| format!("1-{}", p.max));
            rows.push([
                spec.name.to_owned(),
                resource.as_str().to_owned(),
                info.paging.to_owned(),
                dates.to_owned(),
                session.to_owned(),
                if info.sources.is_some() { "yes" } else { "no" }.to_owned(),
                page_size,
            ]);
        }
        if let Some(note) = spec.note {
            notes.push(format!("{}: {note}", spec.name));
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}
