//! Several sources into one output (`pull NAME... | --all`), concurrently,
//! with the output in source order (README "Named sources").
//!
//! The sources share the output through a [`Relay`]. The source whose
//! turn it is writes straight into the output; each later one writes into
//! its own temporary spool, its records already formatted for the output
//! (`output::spool`). When the source at its turn ends, the spools of the
//! sources after it that have ended too are copied in, and the first one
//! still running takes the turn: its spool is copied in at its next record,
//! and it goes on straight. So only what a source fetched before its turn
//! is written twice, and memory stays flat. A source that waits for its
//! turn fetches only while the thread would otherwise sleep (`idle`): it
//! does not take the thread from the source at its turn, yet against slow
//! vendors still fetches ahead as fast as before.
//!
//! Straight writes need an output that a failed run leaves as it was (a
//! file put in place at the end, a database transaction), and no
//! `--keep-going` (where the run succeeds without a failed source, which
//! must leave no trace): otherwise every source spools, and the spools of
//! those that succeeded are copied in order once all have ended.

use std::cell::RefCell;
use std::io::{BufReader, BufWriter, Seek};
use std::sync::Arc;

use crate::app::export_source;
use crate::config::Source;
use crate::db::Stored;
use crate::error::{Error, Result};
use crate::export::{Bookmark, Exportable, RunStats, SeenIds};
use crate::fetch::Fetcher;
use crate::idle::Deferral;
use crate::model::Vendor;
use crate::output::{Formatted, Output, spool};
use crate::progress::Progress;

/// How many named sources are fetched at the same time.
pub const MAX_SOURCES_AT_ONCE: usize = 16;

/// A source's spool: its file, layout and count of records.
struct Spooled {
    file: std::fs::File,
    layout: spool::Layout,
    records: u64,
}

type SpoolWriter = spool::SpoolWriter<BufWriter<std::fs::File>>;

fn close(writer: SpoolWriter) -> Result<Spooled> {
    let (out, layout, records) = writer.into_parts();
    let mut file = out
        .into_inner()
        .map_err(|e| spool::write_error(e.into_error()))?;
    file.seek(std::io::SeekFrom::Start(0))
        .map_err(spool::read_error)?;
    Ok(Spooled {
        file,
        layout,
        records,
    })
}

/// The output of a multi-source run, shared by its sources. They run on
/// one thread and no borrow of it lives across an await, so a `RefCell`.
struct Relay<'o, R> {
    output: &'o mut Output<R>,
    /// The source whose turn it is (every source before it is written), or
    /// `None` when no source writes straight.
    turn: Option<usize>,
    /// Per source: its spool, once it has ended before its turn.
    ended: Vec<Option<Spooled>>,
    /// Per source: its vendor, when another source shares it. Across
    /// sources a record can repeat only then (the key is vendor, agent and
    /// id), so only such a source's records are looked up in `seen`.
    shared_vendor: Vec<Option<Vendor>>,
    seen: SeenIds,
    /// Per source: records left out as already written by another source.
    repeated: Vec<u64>,
    /// Per source: its name, for the log.
    names: Vec<String>,
    /// Per source: whether its fetches wait for an idle thread (`idle`),
    /// as they do until its turn comes. Not the fetcher itself: a source's
    /// connections close when it ends.
    deferrals: Vec<Arc<Deferral>>,
}

impl<R: Exportable + Formatted + Stored> Relay<'_, R> {
    fn write(&mut self, index: usize, record: &R) -> Result<()> {
        if let Some(vendor) = self.shared_vendor[index]
            && !self.seen.insert(vendor, record.agent_id(), record.id())
        {
            self.repeated[index] += 1;
            return Ok(());
        }
        self.output.write(record)
    }

    /// Copies source `index`'s spool into the output; `then` is what the
    /// log says comes after it.
    fn copy_in(&mut self, index: usize, spooled: Spooled, then: &str) -> Result<()> {
        let Spooled {
            mut file,
            layout,
            records,
        } = spooled;
        tracing::info!(
            "source {}: {} spooled before its turn, copied in; {then}",
            self.names[index],
            crate::words::counted(records, "record", "records")
        );
        if layout != spool::Layout::Framed {
            return self.output.copy_spooled_text(&mut file, records);
        }
        let mut input = BufReader::with_capacity(spool::BUFFER, file);
        while let Some(record) = spool::decode(&mut input).map_err(spool::read_error)? {
            if let Some(vendor) = self.shared_vendor[index]
                && !self.seen.insert(vendor, &record.agent_id, &record.id)
            {
                self.repeated[index] += 1;
                continue;
            }
            self.output.write_unit(record.unit)?;
        }
        Ok(())
    }

    /// Source `index` has ended well, with what it spooled (if anything):
    /// at its turn, the turn goes on past every source that has ended too;
    /// before it, the spool waits.
    fn end(&mut self, index: usize, spooled: Option<Spooled>) -> Result<()> {
        if self.turn != Some(index) {
            self.ended[index] = spooled;
            return Ok(());
        }
        if let Some(spooled) = spooled {
            self.copy_in(index, spooled, "it had ended")?;
        }
        let mut next = index + 1;
        while let Some(spooled) = self.ended.get_mut(next).and_then(Option::take) {
            self.copy_in(next, spooled, "it had ended")?;
            next += 1;
        }
        self.turn = Some(next);
        if let Some(deferral) = self.deferrals.get(next) {
            deferral.release();
        }
        Ok(())
    }
}

/// Where one source writes while it runs.
enum Target {
    Spool(SpoolWriter),
    Straight,
}

/// Exports `sources` into `output`, concurrently; the outcome of each, in
/// source order. A failed source fails the run unless `keep_going`.
pub async fn run_sources<R: Exportable + Formatted + Stored>(
    sources: &[Source],
    bookmarks: &[Option<Bookmark>],
    from_table: bool,
    fetchers: Vec<Arc<Fetcher>>,
    output: &mut Output<R>,
    progress: &Progress,
    keep_going: bool,
) -> Result<Vec<(usize, Result<RunStats>)>> {
    let options = &output.options().clone();
    let streams = !keep_going && output.is_atomic();
    let shared_vendor: Vec<Option<Vendor>> = sources
        .iter()
        .map(|source| {
            let vendor = source.job.vendor;
            (sources.iter().filter(|s| s.job.vendor == vendor).count() > 1).then_some(vendor)
        })
        .collect();
    if streams {
        // A source that writes straight is never deferred: the first, and
        // each one as its turn comes.
        for fetcher in fetchers.iter().skip(1) {
            fetcher.deferral.defer();
        }
    }
    let relay = RefCell::new(Relay {
        output,
        turn: streams.then_some(0),
        ended: sources.iter().map(|_| None).collect(),
        shared_vendor: shared_vendor.clone(),
        seen: SeenIds::default(),
        repeated: vec![0; sources.len()],
        names: sources
            .iter()
            .map(|s| s.name.clone().unwrap_or_else(|| s.job.vendor.to_string()))
            .collect(),
        deferrals: fetchers.iter().map(|f| f.deferral.clone()).collect(),
    });
    let relay = &relay;
    let runs = sources.iter().zip(bookmarks).zip(fetchers).enumerate().map(
        |(index, ((source, bookmark), fetcher))| {
            let layout = spool::Layout::for_format(options.format, shared_vendor[index].is_some());
            async move {
                let result = async {
                    let mut target = if relay.borrow().turn == Some(index) {
                        Target::Straight
                    } else {
                        let file = tempfile::tempfile().map_err(|e| {
                            Error::local_file(format!("cannot create a spool file: {e}"))
                        })?;
                        Target::Spool(SpoolWriter::new(
                            BufWriter::with_capacity(spool::BUFFER, file),
                            layout,
                            options,
                        ))
                    };
                    let mut seen = SeenIds::default();
                    let mut sink = |record: &R| {
                        let mut relay = relay.borrow_mut();
                        if relay.turn == Some(index) {
                            // The turn came while this source was spooling.
                            if let Target::Spool(writer) =
                                std::mem::replace(&mut target, Target::Straight)
                            {
                                relay.copy_in(index, close(writer)?, "the rest straight in")?;
                            }
                            relay.write(index, record)?;
                        } else {
                            match &mut target {
                                Target::Spool(writer) => {
                                    writer.write(record).map_err(spool::write_error)?
                                }
                                Target::Straight => {
                                    return Err(Error::internal("a turn taken back"));
                                }
                            }
                        }
                        progress.record();
                        Ok(())
                    };
                    let stats = export_source(
                        &source.job,
                        bookmark.as_ref(),
                        from_table,
                        fetcher,
                        &mut seen,
                        &mut sink,
                    )
                    .await?;
                    let spooled = match target {
                        Target::Spool(writer) => Some(close(writer)?),
                        Target::Straight => None,
                    };
                    relay.borrow_mut().end(index, spooled)?;
                    Ok::<_, Error>(stats)
                }
                .await;
                let name = source.name.clone().unwrap_or_default();
                (
                    index,
                    result.map_err(|mut e| {
                        if !name.is_empty() {
                            e.message = format!("source {name}: {}", e.message);
                        }
                        e
                    }),
                )
            }
        },
    );
    // Bounded: each running source holds a spool file and its connections,
    // and a long `--all` would otherwise run out of file descriptors.
    let results: Vec<_> = futures::StreamExt::collect(futures::StreamExt::buffered(
        futures::stream::iter(runs),
        MAX_SOURCES_AT_ONCE,
    ))
    .await;
    if !keep_going && results.iter().any(|(_, r)| r.is_err()) {
        let first = results.into_iter().find_map(|(_, r)| r.err());
        return Err(first.unwrap_or_else(|| Error::internal("a source failed")));
    }
    let mut relay = relay.borrow_mut();
    // What is still waiting: every spool when no source wrote straight.
    for index in 0..sources.len() {
        if let Some(spooled) = relay.ended[index].take() {
            relay.copy_in(index, spooled, "it had ended")?;
        }
    }
    let mut outcomes = Vec::with_capacity(results.len());
    // The first failure is the run's error, which main reports (with its
    // hint) at the end; the others are reported here, each once.
    let mut first_failure_pending = true;
    for (index, result) in results {
        match result {
            Ok(mut stats) => {
                let repeated = relay.repeated[index];
                stats.duplicates += repeated;
                stats.written = stats.written.saturating_sub(repeated);
                outcomes.push((index, Ok(stats)));
            }
            Err(error) => {
                if !std::mem::take(&mut first_failure_pending) {
                    crate::progress::eprint_line(&format!(
                        "leads: error: {}",
                        crate::secret::for_terminal(&error.message)
                    ));
                }
                outcomes.push((index, Err(error)));
            }
        }
    }
    Ok(outcomes)
}
