//! Run reports (`--report PATH`, SPEC section 13): at the end of every run of
//! `pull` or `conversations` — success, failure or a signal — a JSON file, or
//! with a `.prom` path the Prometheus text format for node_exporter's
//! textfile collector, replaced atomically.
//!
//! The run fills in what it learns as it goes (the sources, their fetch
//! counters, their results); the report itself is written by
//! `process::execute` after the run future has ended or been dropped by a
//! signal, which is why the pending report lives in one process-wide slot
//! rather than inside the run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::export::{Bookmark, RunStats};
use crate::fetch::FetchStats;
use crate::model::{Resource, Vendor, format_timestamp};

/// What the report says about one source.
#[derive(Debug, Clone)]
struct SourceEntry {
    label: String,
    vendor: Vendor,
    agent: String,
    bookmark_before: Option<Bookmark>,
    bookmark_after: Option<Bookmark>,
    fetch: Option<Arc<FetchStats>>,
    stats: Option<RunStats>,
    error: Option<String>,
}

#[derive(Debug)]
struct Pending {
    path: PathBuf,
    command: &'static str,
    resource: Resource,
    started: DateTime<Utc>,
    sources: Vec<SourceEntry>,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

fn with_pending(f: impl FnOnce(&mut Pending)) {
    if let Ok(mut slot) = PENDING.lock()
        && let Some(pending) = slot.as_mut()
    {
        f(pending);
    }
}

/// A report is wanted at `path` for this run. `others` are the run's other
/// files (`-o`, `--state`), by flag: a report over one of them would
/// replace it, so that is a usage error and no report is written.
pub fn begin(
    path: PathBuf,
    others: &[(&str, Option<&Path>)],
    command: &'static str,
    resource: Resource,
    started: DateTime<Utc>,
) -> Result<()> {
    let real = crate::output::resolve_path(&path).ok();
    for (flag, other) in others {
        let Some(other) = other else { continue };
        let same = match (&real, crate::output::resolve_path(other).ok()) {
            (Some(a), Some(b)) => *a == b,
            _ => path == *other,
        };
        if same || (*flag == "--state" && real.as_deref() == Some(&*crate::state::lock_path(other)))
        {
            return Err(Error::usage(format!(
                "--report {} is the same file as {flag} {}",
                path.display(),
                other.display()
            ))
            .with_hint("give the report a path of its own"));
        }
    }
    if let Ok(mut slot) = PENDING.lock() {
        *slot = Some(Pending {
            path,
            command,
            resource,
            started,
            sources: Vec::new(),
        });
    }
    Ok(())
}

/// The run's sources, in order, with their bookmarks before the run.
/// `name` is the config-file name of a named source.
pub fn sources<'a>(
    sources: impl IntoIterator<Item = (Option<&'a str>, Vendor, &'a str, Option<&'a Bookmark>)>,
) {
    with_pending(|pending| {
        pending.sources = sources
            .into_iter()
            .map(|(name, vendor, agent, bookmark)| SourceEntry {
                label: name.map_or_else(|| format!("{vendor}/{agent}"), str::to_owned),
                vendor,
                agent: agent.to_owned(),
                bookmark_before: bookmark.cloned(),
                bookmark_after: None,
                fetch: None,
                stats: None,
                error: None,
            })
            .collect();
    });
}

/// The request counters of each source, in source order.
pub fn fetch_stats(stats: &[Arc<FetchStats>]) {
    with_pending(|pending| {
        for (entry, stats) in pending.sources.iter_mut().zip(stats) {
            entry.fetch = Some(stats.clone());
        }
    });
}

/// Source `index` was exported and its records committed.
pub fn source_succeeded(index: usize, stats: &RunStats, bookmark_after: Option<Bookmark>) {
    with_pending(|pending| {
        if let Some(entry) = pending.sources.get_mut(index) {
            entry.stats = Some(stats.clone());
            entry.bookmark_after = bookmark_after;
        }
    });
}

/// Source `index` failed with `error`.
pub fn source_failed(index: usize, error: &Error) {
    with_pending(|pending| {
        if let Some(entry) = pending.sources.get_mut(index) {
            entry.error = Some(crate::process::error_line(error));
        }
    });
}

/// Writes the pending report, if any, for a run that ended with `outcome`.
pub fn finish(outcome: &Result<()>) -> Result<()> {
    let pending = PENDING.lock().ok().and_then(|mut slot| slot.take());
    let Some(pending) = pending else {
        return Ok(());
    };
    let ended = Utc::now();
    let (exit_code, error) = match outcome {
        Ok(()) => (0, None),
        Err(e) if e.kind == ErrorKind::OutputClosed => (0, None),
        Err(e) => (e.kind.exit_code(), Some(crate::process::error_line(e))),
    };
    let text = if is_prometheus(&pending.path) {
        let previous = std::fs::read_to_string(&pending.path).unwrap_or_default();
        prometheus(&pending, ended, exit_code, &previous)
    } else {
        let mut text = serde_json::to_string_pretty(&json_report(
            &pending,
            ended,
            exit_code,
            error.as_deref(),
        ))
        .map_err(|e| Error::internal(format!("cannot serialize the report: {e}")))?;
        text.push('\n');
        text
    };
    // Keys are scrubbed from error lines already; this is the last guard.
    write_atomically(&pending.path, crate::secret::scrub_known(&text).as_bytes())
}

fn is_prometheus(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("prom"))
}

fn bookmark_json(bookmark: &Option<Bookmark>) -> Value {
    match bookmark {
        Some(Bookmark {
            created_at: Some(t),
            ids,
        }) => json!({"created_at": format_timestamp(t), "ids": ids}),
        _ => Value::Null,
    }
}

fn counter(stats: &Option<Arc<FetchStats>>, pick: fn(&FetchStats) -> u64) -> u64 {
    stats.as_deref().map_or(0, pick)
}

struct Counts {
    written: u64,
    pages: u64,
    requests: u64,
    retries: u64,
    rate_limit_waits: u64,
    duplicates: u64,
    filtered: u64,
}

impl SourceEntry {
    fn counts(&self) -> Counts {
        let stats = self.stats.clone().unwrap_or_default();
        Counts {
            written: stats.written,
            pages: stats.pages,
            requests: counter(&self.fetch, |s| s.requests.load(Ordering::Relaxed)),
            retries: counter(&self.fetch, |s| s.retries.load(Ordering::Relaxed)),
            rate_limit_waits: counter(&self.fetch, |s| s.rate_limit_waits.load(Ordering::Relaxed)),
            duplicates: stats.duplicates,
            filtered: stats.filtered,
        }
    }

    fn status(&self, exit_code: u8) -> &'static str {
        if self.stats.is_some() {
            "ok"
        } else if self.error.is_some() || exit_code != 0 {
            "failed"
        } else {
            "not run"
        }
    }
}

fn json_report(
    pending: &Pending,
    ended: DateTime<Utc>,
    exit_code: u8,
    error: Option<&str>,
) -> Value {
    let sources: Vec<Value> = pending
        .sources
        .iter()
        .map(|entry| {
            let counts = entry.counts();
            json!({
                "source": entry.label,
                "vendor": entry.vendor,
                "agent_id": entry.agent,
                "resource": pending.resource.as_str(),
                "status": entry.status(exit_code),
                "records_written": counts.written,
                "pages": counts.pages,
                "requests": counts.requests,
                "retries": counts.retries,
                "rate_limit_waits": counts.rate_limit_waits,
                "duplicates_dropped": counts.duplicates,
                "filtered_out": counts.filtered,
                "bookmark_before": bookmark_json(&entry.bookmark_before),
                "bookmark_after": bookmark_json(&entry.bookmark_after),
                "error": entry.error,
            })
        })
        .collect();
    json!({
        "version": 1,
        "command": pending.command,
        "resource": pending.resource.as_str(),
        "started_at": format_timestamp(&pending.started),
        "ended_at": format_timestamp(&ended),
        "duration_seconds": seconds(ended) - seconds(pending.started),
        "exit_code": exit_code,
        "error": error,
        "sources": sources,
    })
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const LAST_SUCCESS: &str = "leads_last_success_timestamp_seconds";

/// The text format: one gauge family a metric, one sample a source. The
/// last-success time of a source that did not succeed this run is carried
/// over from the previous file, so an alert on its age fires when a cron
/// export keeps failing.
fn prometheus(pending: &Pending, ended: DateTime<Utc>, exit_code: u8, previous: &str) -> String {
    let resource = pending.resource.as_str();
    let labels: Vec<String> = pending
        .sources
        .iter()
        .map(|entry| {
            format!(
                "source=\"{}\",vendor=\"{}\",resource=\"{}\"",
                label(&entry.label),
                entry.vendor,
                resource
            )
        })
        .collect();
    let counts: Vec<Counts> = pending.sources.iter().map(SourceEntry::counts).collect();
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, String)>| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };

    let mut last_success: Vec<(String, String)> = Vec::new();
    for (entry, labels) in pending.sources.iter().zip(&labels) {
        if entry.stats.is_some() {
            last_success.push((labels.clone(), format!("{}", seconds(ended))));
        }
    }
    // Earlier successes of sources (or resources) not succeeding now.
    let prefix = format!("{LAST_SUCCESS}{{");
    for line in previous.lines() {
        if let Some(rest) = line.strip_prefix(&prefix)
            && let Some((labels, value)) = rest.rsplit_once("} ")
            && value.trim().parse::<f64>().is_ok()
            && !last_success.iter().any(|(l, _)| l == labels)
        {
            last_success.push((labels.to_owned(), value.trim().to_owned()));
        }
    }
    family(
        LAST_SUCCESS,
        "End of the last run that exported this source successfully (Unix time).",
        last_success,
    );
    let run_labels = if labels.is_empty() {
        vec![format!("resource=\"{resource}\"")]
    } else {
        labels.clone()
    };
    family(
        "leads_run_exit_code",
        "Exit code of the last run (0 is success).",
        run_labels
            .iter()
            .map(|l| (l.clone(), exit_code.to_string()))
            .collect(),
    );
    family(
        "leads_run_start_timestamp_seconds",
        "Start of the last run (Unix time).",
        run_labels
            .iter()
            .map(|l| (l.clone(), seconds(pending.started).to_string()))
            .collect(),
    );
    family(
        "leads_run_end_timestamp_seconds",
        "End of the last run (Unix time).",
        run_labels
            .iter()
            .map(|l| (l.clone(), seconds(ended).to_string()))
            .collect(),
    );
    let per_source = |pick: fn(&Counts) -> u64| -> Vec<(String, String)> {
        labels
            .iter()
            .zip(&counts)
            .map(|(l, c)| (l.clone(), pick(c).to_string()))
            .collect()
    };
    for (name, help, pick) in [
        (
            "leads_records_total",
            "Records written by the last run.",
            (|c: &Counts| c.written) as fn(&Counts) -> u64,
        ),
        ("leads_pages_total", "Pages read by the last run.", |c| {
            c.pages
        }),
        (
            "leads_requests_total",
            "HTTP requests sent by the last run.",
            |c| c.requests,
        ),
        (
            "leads_retries_total",
            "Requests retried by the last run.",
            |c| c.retries,
        ),
        (
            "leads_rate_limit_waits_total",
            "Retries of the last run that waited out a 429.",
            |c| c.rate_limit_waits,
        ),
        (
            "leads_duplicates_total",
            "Duplicate records dropped by the last run.",
            |c| c.duplicates,
        ),
        (
            "leads_filtered_total",
            "Records filtered out by the last run.",
            |c| c.filtered,
        ),
    ] {
        family(name, help, per_source(pick));
    }
    out
}

/// A temporary file beside `path`, synced, then renamed over it: a reader
/// (node_exporter) never sees half a report.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::local_file(format!(
            "cannot write the report {}: {}",
            path.display(),
            crate::output::os_reason(&e)
        ))
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    temp.write_all(bytes).map_err(fail)?;
    temp.as_file().sync_all().map_err(fail)?;
    temp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(sources: Vec<SourceEntry>) -> Pending {
        Pending {
            path: PathBuf::from("r.prom"),
            command: "pull",
            resource: Resource::Leads,
            started: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            sources,
        }
    }

    fn entry(label: &str, stats: Option<RunStats>) -> SourceEntry {
        SourceEntry {
            label: label.to_owned(),
            vendor: Vendor::Chatzuri,
            agent: "a".to_owned(),
            bookmark_before: None,
            bookmark_after: None,
            fetch: None,
            stats,
            error: None,
        }
    }

    #[test]
    fn a_failed_source_keeps_its_previous_last_success_and_a_label_is_escaped() {
        let ended = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let ok = RunStats {
            written: 7,
            ..Default::default()
        };
        let first = prometheus(
            &pending(vec![entry("a\"b", Some(ok)), entry("c", None)]),
            ended,
            0,
            "",
        );
        assert!(
            first.contains(
                "leads_last_success_timestamp_seconds{source=\"a\\\"b\",vendor=\"chatzuri\",resource=\"leads\"} 1700000100"
            ),
            "{first}"
        );
        assert!(first.contains(
            "leads_records_total{source=\"a\\\"b\",vendor=\"chatzuri\",resource=\"leads\"} 7"
        ));
        let later = DateTime::from_timestamp(1_700_000_900, 0).unwrap();
        let second = prometheus(
            &pending(vec![entry("a\"b", None), entry("c", None)]),
            later,
            5,
            &first,
        );
        assert!(
            second.contains("source=\"a\\\"b\",vendor=\"chatzuri\",resource=\"leads\"} 1700000100"),
            "{second}"
        );
        assert!(second.contains(
            "leads_run_exit_code{source=\"c\",vendor=\"chatzuri\",resource=\"leads\"} 5"
        ));
        assert_eq!(
            second
                .matches("# TYPE leads_last_success_timestamp_seconds")
                .count(),
            1
        );
    }
}
