//! The progress indicator on a terminal's stderr: pages, records and elapsed
//! time, drawn only when stderr is a terminal and `--quiet` is off.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fetch::FetchStats;

pub struct Progress {
    bar: Option<ProgressBar>,
    fetches: Vec<Arc<FetchStats>>,
}

impl Progress {
    pub fn new(enabled: bool, fetches: Vec<Arc<FetchStats>>) -> Progress {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} pages  {pos} records  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("0");
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
                let pages: u64 = self
                    .fetches
                    .iter()
                    .map(|f| {
                        f.requests
                            .load(Ordering::Relaxed)
                            .saturating_sub(f.retries.load(Ordering::Relaxed))
                    })
                    .sum();
                bar.set_message(pages.to_string());
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
