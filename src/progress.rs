//! The progress indicator on a terminal's stderr: pages, records (of the
//! vendor's total when it gives one) and elapsed time, drawn only when
//! stderr is a terminal and `--quiet` is off. It ticks on its own, so the
//! elapsed time moves while a slow page is awaited, and every other line
//! written to stderr during the run goes through `eprint_line`, which lifts
//! the indicator out of the way first, so no spinner debris is left between
//! log lines.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fetch::FetchStats;

/// The indicator being drawn, if any: log lines are written around it.
static DRAWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes one line to stderr, hiding the indicator while it does.
pub fn eprint_line(line: &str) {
    let drawn = DRAWN.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let write = || {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    };
    match drawn {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    fetches: Vec<Arc<FetchStats>>,
}

impl Progress {
    pub fn new(enabled: bool, fetches: Vec<Arc<FetchStats>>) -> Progress {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("0 pages  0 records");
            bar.enable_steady_tick(Duration::from_millis(200));
            *DRAWN.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
            bar
        });
        Progress { bar, fetches }
    }

    pub fn record(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            // Cheap enough at terminal speeds, and pages are what the user
            // waits on: answered requests less the retried ones.
            if bar.position() % 64 == 1 {
                bar.set_message(self.message(bar.position()));
            }
        }
    }

    fn message(&self, records: u64) -> String {
        let load = |f: fn(&FetchStats) -> u64| self.fetches.iter().map(|s| f(s)).sum::<u64>();
        let pages = load(|f| {
            f.requests
                .load(Ordering::Relaxed)
                .saturating_sub(f.retries.load(Ordering::Relaxed))
        });
        let total = load(|f| f.expected.load(Ordering::Relaxed));
        let records = if total > 0 {
            format!("{records} of {total} records")
        } else {
            format!("{records} records")
        };
        format!("{pages} pages  {records}")
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            *DRAWN.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
