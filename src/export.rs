//! Export plans: how each vendor's listing is walked, page after page, and
//! how pages become the ordered, filtered, de-duplicated stream of records
//! the writer sees.
//!
//! Three paging shapes cover the vendors (SPEC section 4):
//! - numbered pages (Chatzuri): up to `concurrency` pages in flight ahead of
//!   the writer, yielded in page order, ending on a short page;
//! - date windows (NeoAgent): a range split into overlapping windows fetched
//!   concurrently and yielded in window order;
//! - tokens (Robofy): strictly sequential, but the next request is sent
//!   before the current page is written, and every token seen is remembered
//!   so a cycle (A, B, A) is caught.
//!
//! Every fetch runs in its own task so network, parsing and writing overlap;
//! dropping a page source aborts whatever it still has in flight.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::fetch::Fetcher;
use crate::model::{Conversation, Lead, Record, Resource, Vendor};
use crate::time::DayRange;
use crate::vendors::{self, BodyError, MapContext, Page, RequestSpec, chatzuri, neoagent, robofy};

/// Client-side filters, re-applied to every record whatever the vendor did.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub session: Option<String>,
    /// Chatzuri conversation channels (`filteredSources`).
    pub channels: Vec<String>,
    pub limit: Option<u64>,
}

/// Where an incremental run left off for one source (SPEC section 7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bookmark {
    pub created_at: Option<DateTime<Utc>>,
    pub ids: Vec<String>,
}

/// One settled export of one resource from one source.
#[derive(Debug, Clone)]
pub struct Job {
    pub vendor: Vendor,
    pub agent: String,
    /// Robofy project id (leads only).
    pub project: Option<String>,
    pub resource: Resource,
    pub filters: Filters,
    pub page_size: u32,
    pub concurrency: usize,
    pub max_pages: u64,
    pub window_days: u32,
    pub keep_raw: bool,
    pub bookmark: Option<Bookmark>,
    /// `--incremental` into a database: the newest `created_at` stored for
    /// this vendor and agent. The request starts from it exactly as from a
    /// state bookmark, but nothing is filtered out: the table upserts
    /// whatever comes back.
    pub resume_from: Option<DateTime<Utc>>,
    /// "Today" for NeoAgent windows without `--until`.
    pub now: DateTime<Utc>,
}

impl Job {
    fn map_context(&self) -> MapContext {
        MapContext {
            agent_id: self.agent.clone(),
            keep_raw: self.keep_raw,
        }
    }

    /// The day range sent to vendors that filter by day: the client-side
    /// bounds widened to whole days, and for an incremental run starting one
    /// day before the bookmark. Chatzuri documents neither the zone of its
    /// dates nor whether `endDate` is inclusive, so it is asked for one more
    /// day on each side; the exact bounds are applied on the client anyway.
    /// (NeoAgent's dates are UTC; its open end is handled by the windows.)
    fn day_range(&self) -> DayRange {
        let margin = match self.vendor {
            Vendor::Chatzuri => Duration::days(1),
            Vendor::Neoagent | Vendor::Robofy => Duration::zero(),
        };
        // Saturating: the bounds may be the extremes chrono can hold.
        let earlier = |t: DateTime<Utc>, by: Duration| t.checked_sub_signed(by).unwrap_or(t);
        let since = self.filters.since.map(|t| earlier(t, margin));
        let mark = self
            .bookmark
            .as_ref()
            .and_then(|b| b.created_at)
            .or(self.resume_from);
        let since = match (since, mark) {
            (Some(since), Some(mark)) => Some(since.max(earlier(mark, Duration::days(1)))),
            (None, Some(mark)) => Some(earlier(mark, Duration::days(1))),
            (since, None) => since,
        };
        let until = self
            .filters
            .until
            .map(|t| t.checked_add_signed(margin).unwrap_or(t));
        DayRange::covering(since, until)
    }

    fn accepts<R: Record>(&self, record: &R) -> bool {
        let created = record.created_at();
        if self.filters.since.is_some() || self.filters.until.is_some() {
            let Some(created) = created else { return false };
            if self.filters.since.is_some_and(|since| created < since)
                || self.filters.until.is_some_and(|until| created > until)
            {
                return false;
            }
        }
        if let Some(session) = &self.filters.session
            && record.session_id() != Some(session.as_str())
        {
            return false;
        }
        if let Some(mark) = &self.bookmark
            && let (Some(mark_time), Some(created)) = (mark.created_at, created)
            && (created < mark_time
                || (created == mark_time && mark.ids.iter().any(|id| id == record.id())))
        {
            return false;
        }
        true
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub written: u64,
    pub pages: u64,
    pub duplicates: u64,
    pub filtered: u64,
    pub unparsed_times: u64,
    /// Records written that are dated more than a day after the run's
    /// clock, and so kept out of `newest`.
    pub future_dated: u64,
    /// The newest `created_at` written and the ids that share it: the next
    /// bookmark of an incremental run.
    pub newest: Option<Bookmark>,
}

/// The run's compact set of ids already written: 8 bytes a record, keyed by
/// vendor, agent and id so several sources can share it. (A 64-bit hash;
/// the chance of two different ids colliding among a million is about 1 in
/// 36 million.)
#[derive(Debug, Default)]
pub struct SeenIds(HashSet<u64, BuildHasherDefault<AlreadyHashed>>);

/// The set's keys are SipHash values already; hashing them again would only
/// cost time.
#[derive(Debug, Default)]
pub struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl SeenIds {
    pub fn insert(&mut self, vendor: Vendor, agent: &str, id: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        (vendor, agent, id).hash(&mut hasher);
        self.0.insert(hasher.finish())
    }
}

/// What receives the records, in order. An `Err` stops the run.
pub type Sink<'a, R> = &'a mut dyn FnMut(&R) -> Result<()>;

/// Exports leads of one source into `sink`.
pub async fn export_leads(
    job: &Job,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: Sink<'_, Lead>,
) -> Result<RunStats> {
    let ctx = job.map_context();
    let days = job.day_range();
    match job.vendor {
        Vendor::Chatzuri => {
            let (agent, size) = (job.agent.clone(), job.page_size);
            let request = move |page: u64| {
                chatzuri::leads_request(
                    &agent,
                    u32::try_from(page).unwrap_or(u32::MAX),
                    size,
                    &days,
                )
            };
            let parse = move |body: &[u8]| chatzuri::parse_leads(body, &ctx);
            let mut pages = NumberedPages::new(job, fetcher, request, parse, None);
            drain(job, &mut pages, seen, sink).await
        }
        Vendor::Neoagent => {
            let session = match &job.filters.session {
                Some(text) => Some(text.parse::<i64>().map_err(|_| {
                    Error::usage(format!(
                        "--session {text}: NeoAgent session ids are numbers"
                    ))
                })?),
                None => None,
            };
            let agent = job.agent.clone();
            let request = move |window: &DayRange| neoagent::leads_request(&agent, window, session);
            let parse = move |body: &[u8]| neoagent::parse_leads(body, &ctx);
            let mut pages =
                WindowPages::new(job, fetcher, neoagent_windows(job, days)?, request, parse);
            drain(job, &mut pages, seen, sink).await
        }
        Vendor::Robofy => {
            let project = job.project.clone().ok_or_else(|| {
                Error::usage("Robofy leads need a project: --project ID or --agent PROJECT/CHATBOT")
            })?;
            let (agent, session) = (job.agent.clone(), job.filters.session.clone());
            let parse_session = session.clone();
            let request = move |token: Option<&str>| {
                robofy::leads_request(&project, &agent, token, session.as_deref())
            };
            let parse =
                move |body: &[u8]| robofy::parse_leads(body, &ctx, parse_session.as_deref());
            let mut pages = TokenPages::new(job, fetcher, request, parse);
            drain(job, &mut pages, seen, sink).await
        }
    }
}

/// Exports conversations of one source into `sink`.
pub async fn export_conversations(
    job: &Job,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: Sink<'_, Conversation>,
) -> Result<RunStats> {
    let ctx = job.map_context();
    let days = job.day_range();
    match job.vendor {
        Vendor::Chatzuri => {
            let (agent, size, channels) = (
                job.agent.clone(),
                job.page_size,
                job.filters.channels.clone(),
            );
            let request = move |page: u64| {
                chatzuri::conversations_request(
                    &agent,
                    u32::try_from(page).unwrap_or(u32::MAX),
                    size,
                    &days,
                    &channels,
                )
            };
            let parse = move |body: &[u8]| chatzuri::parse_conversations(body, &ctx);
            let mut pages =
                NumberedPages::new(job, fetcher, request, parse, Some(chatzuri::as_post));
            drain(job, &mut pages, seen, sink).await
        }
        Vendor::Neoagent => {
            let agent = job.agent.clone();
            let request = move |window: &DayRange| neoagent::conversations_request(&agent, window);
            let parse = move |body: &[u8]| neoagent::parse_conversations(body, &ctx);
            let mut pages =
                WindowPages::new(job, fetcher, neoagent_windows(job, days)?, request, parse);
            drain(job, &mut pages, seen, sink).await
        }
        Vendor::Robofy => {
            let mut pages = RobofySessions::new(job, fetcher, ctx);
            drain(job, &mut pages, seen, sink).await
        }
    }
}

async fn drain<R: Record, S: PageSource<R>>(
    job: &Job,
    source: &mut S,
    seen: &mut SeenIds,
    sink: Sink<'_, R>,
) -> Result<RunStats> {
    let mut stats = RunStats::default();
    loop {
        let wanted = job
            .filters
            .limit
            .map(|limit| limit.saturating_sub(stats.written));
        if wanted == Some(0) {
            break;
        }
        let Some(page) = source.next(wanted).await? else {
            break;
        };
        stats.pages += 1;
        for record in page.records {
            if record.created_at().is_none() && record.fields().contains_key("created_at_raw") {
                if stats.unparsed_times == 0 {
                    tracing::warn!(
                        "{} sent a created_at that is not a timestamp (record {}); written as null, the original is in fields.created_at_raw",
                        job.vendor.display_name(),
                        record.id()
                    );
                }
                stats.unparsed_times += 1;
            }
            if !job.accepts(&record) {
                stats.filtered += 1;
                continue;
            }
            if !seen.insert(record.vendor(), record.agent_id(), record.id()) {
                stats.duplicates += 1;
                continue;
            }
            sink(&record)?;
            stats.written += 1;
            // A record from the future (a typo'd year, a timestamp in the
            // wrong unit) would become the bookmark, and every later run
            // would skip everything older than it: such records are written
            // but never move the bookmark.
            if record
                .created_at()
                .is_some_and(|t| t > job.now + FUTURE_TOLERANCE)
            {
                stats.future_dated += 1;
            } else {
                note_newest(&mut stats.newest, &record);
            }
            if job
                .filters
                .limit
                .is_some_and(|limit| stats.written >= limit)
            {
                return Ok(stats);
            }
        }
    }
    Ok(stats)
}

/// How far past the run's clock a record may be dated and still count for
/// the bookmark: vendor clocks and zones are off by hours, not days.
pub const FUTURE_TOLERANCE: Duration = Duration::days(1);

fn note_newest<R: Record>(newest: &mut Option<Bookmark>, record: &R) {
    let Some(created) = record.created_at() else {
        return;
    };
    match newest {
        Some(mark) if mark.created_at == Some(created) => mark.ids.push(record.id().to_owned()),
        Some(mark) if mark.created_at.is_some_and(|t| t > created) => {}
        _ => {
            *newest = Some(Bookmark {
                created_at: Some(created),
                ids: vec![record.id().to_owned()],
            })
        }
    }
}

/// The NeoAgent request plan: without `--since` one request for everything
/// (bounded above by `--until` if given); with it, windows of `window_days`
/// that each start on the day the previous one ended, so a vendor that
/// treats `endTime` as exclusive loses nothing. For the same reason the
/// last `endTime` is the day after the last day wanted (today, without
/// `--until`).
///
/// Windows are only cut up to today: a far `--until` (`9999-12-31`) is the
/// end of the last window, not thousands of windows of days to come.
pub fn neoagent_windows(job: &Job, days: DayRange) -> Result<Vec<DayRange>> {
    let after = |day: NaiveDate| day.succ_opt().unwrap_or(day).min(crate::time::LAST_DAY);
    let Some(start) = days.start else {
        return Ok(vec![DayRange {
            start: None,
            end: days.end.map(after),
        }]);
    };
    let today = job.now.date_naive();
    let end = days.end.unwrap_or(today);
    let mut windows = split_days(start, end.min(today.max(start)), job.window_days);
    if windows.len() as u64 > job.max_pages {
        return Err(Error::vendor(format!(
            "the date range {}..{} needs {} windows of {} days for NeoAgent agent {}, more than --max-pages {}; nothing was sent",
            crate::time::format_day(start),
            crate::time::format_day(end),
            windows.len(),
            job.window_days,
            job.agent,
            job.max_pages
        ))
        .with_hint("raise --window or --max-pages, or narrow --since/--until"));
    }
    if let Some(last) = windows.last_mut() {
        last.end = last.end.map(|e| after(e.max(end)));
    }
    Ok(windows)
}

pub fn split_days(start: NaiveDate, end: NaiveDate, window_days: u32) -> Vec<DayRange> {
    let step = Duration::days(i64::from(window_days.max(1)));
    let mut windows = Vec::new();
    let mut from = start;
    loop {
        let to = from.checked_add_signed(step).unwrap_or(end).min(end);
        windows.push(DayRange {
            start: Some(from),
            end: Some(to.max(from)),
        });
        if to >= end {
            return windows;
        }
        from = to;
    }
}

/// A listing, page by page, in output order.
trait PageSource<R> {
    /// The next page; `wanted` is how many more records the run can still
    /// write (`--limit`), so a source does not fetch pages it cannot need.
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<R>>>;
}

type Parser<R> = Arc<dyn Fn(&[u8]) -> std::result::Result<Page<R>, BodyError> + Send + Sync>;
type TokenRequest = Arc<dyn Fn(Option<&str>) -> RequestSpec + Send + Sync>;

/// Fetches one page in its own task: send, then parse on the worker.
fn spawn_page<R: Send + 'static>(
    fetcher: Arc<Fetcher>,
    spec: RequestSpec,
    what: String,
    parse: Parser<R>,
) -> JoinHandle<Result<Page<R>>> {
    tokio::spawn(async move {
        let body = fetcher.fetch(&spec, &what).await?;
        parse(&body).map_err(|e| body_error(&fetcher, &spec, &what, e, &body))
    })
}

async fn join<T>(handle: JoinHandle<Result<T>>) -> Result<T> {
    handle
        .await
        .map_err(|e| Error::internal(format!("a fetch task failed: {e}")))?
}

/// A body that is not what the vendor documents: name vendor, endpoint and
/// page, with an excerpt; or the vendor's own refusal inside a 2xx.
pub fn body_error(
    fetcher: &Fetcher,
    spec: &RequestSpec,
    what: &str,
    error: BodyError,
    body: &[u8],
) -> Error {
    let vendor = fetcher.vendor().display_name();
    let agent = fetcher.agent();
    match error {
        BodyError::Malformed(expected) => Error::vendor(format!(
            "{vendor} sent an unexpected body for {} {what} of agent {agent}: expected {}; got: {}",
            spec.endpoint,
            fetcher.printable(&expected),
            fetcher.excerpt(body)
        ))
        .with_hint("run again later; if it persists, report it with the output of -vv"),
        BodyError::Refused {
            kind,
            code,
            message,
        } => {
            let code = code.map(|c| format!("Code {c}: ")).unwrap_or_default();
            let hint = match kind {
                ErrorKind::Auth => format!(
                    "check the key in {} (or --api-key-file)",
                    fetcher.vendor().key_env()
                ),
                ErrorKind::NotFound => "check --agent".to_owned(),
                _ => "the vendor reported a failure; run again later".to_owned(),
            };
            let message = vendors::excerpt(&fetcher.printable(&message));
            Error::new(
                kind,
                format!(
                    "{vendor} refused {} {what} for agent {agent} ({code}{message})",
                    spec.endpoint
                ),
            )
            .with_hint(hint)
        }
    }
}

/// Chatzuri: `page`/`size`, several pages in flight, yielded in order.
struct NumberedPages<R> {
    fetcher: Arc<Fetcher>,
    request: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync>,
    parse: Parser<R>,
    /// The POST form to try once when the GET answers 405.
    post_fallback: Option<fn(&RequestSpec) -> RequestSpec>,
    use_post: Arc<AtomicBool>,
    page_size: u64,
    concurrency: usize,
    max_pages: u64,
    next_to_request: u64,
    last_yielded: u64,
    ended: bool,
    in_flight: VecDeque<(u64, JoinHandle<Result<Page<R>>>)>,
    previous_page_ids: Option<Vec<String>>,
    /// Page 1's ids as first fetched, to see at the end whether the head of
    /// the listing moved while later pages were in flight.
    /// A set: a vendor that ignores `size` can make page 1 huge, and a
    /// pairwise comparison would then be quadratic.
    first_page_ids: Option<HashSet<String>>,
    /// Whether the end-of-listing check of page 1 was done (or is moot).
    head_checked: bool,
}

impl<R: Record> NumberedPages<R> {
    fn new(
        job: &Job,
        fetcher: Arc<Fetcher>,
        request: impl Fn(u64) -> RequestSpec + Send + Sync + 'static,
        parse: impl Fn(&[u8]) -> std::result::Result<Page<R>, BodyError> + Send + Sync + 'static,
        post_fallback: Option<fn(&RequestSpec) -> RequestSpec>,
    ) -> Self {
        NumberedPages {
            fetcher,
            request: Arc::new(request),
            parse: Arc::new(parse),
            post_fallback,
            use_post: Arc::new(AtomicBool::new(false)),
            page_size: u64::from(job.page_size.max(1)),
            concurrency: job.concurrency.max(1),
            max_pages: job.max_pages,
            next_to_request: 1,
            last_yielded: 0,
            ended: false,
            in_flight: VecDeque::new(),
            previous_page_ids: None,
            first_page_ids: None,
            head_checked: job.concurrency <= 1 || job.filters.limit.is_some(),
        }
    }

    /// Called when the listing ended. Pages in flight together are answered
    /// in any order: if a record was inserted at the head of a newest-first
    /// listing after page k+1 was answered but before page k was, the record
    /// pushed from page k onto page k+1 was never seen. Page 1 is therefore
    /// fetched alone before the others, and once more at the end: if its ids
    /// are unchanged, nothing moved while the other pages were in flight. If
    /// they changed, the listing is walked again one page at a time, where a
    /// shift can only repeat a record (dropped as a duplicate), never hide
    /// one. The price is one request and two round trips per run.
    async fn check_head(&mut self) -> Result<()> {
        self.head_checked = true;
        if self.last_yielded <= 1 {
            return Ok(());
        }
        let page = join(self.spawn(1)).await?;
        let first = self.first_page_ids.take().unwrap_or_default();
        let moved = page.records.iter().any(|r| !first.contains(r.id()));
        if moved {
            tracing::info!(
                "{} listing changed while it was paged; walking it again one page at a time so no shifted record is missed",
                self.fetcher.vendor().display_name()
            );
            self.concurrency = 1;
            self.next_to_request = 1;
            self.last_yielded = 0;
            self.ended = false;
            self.previous_page_ids = None;
        }
        Ok(())
    }

    fn spawn(&self, page: u64) -> JoinHandle<Result<Page<R>>> {
        let (fetcher, parse, fallback, use_post) = (
            self.fetcher.clone(),
            self.parse.clone(),
            self.post_fallback,
            self.use_post.clone(),
        );
        let get = (self.request)(page);
        let what = format!("page {page}");
        tokio::spawn(async move {
            let post = fallback.map(|to_post| to_post(&get));
            let spec = match &post {
                Some(post) if use_post.load(Ordering::Relaxed) => post.clone(),
                _ => get,
            };
            let body = match (fetcher.fetch(&spec, &what).await, post) {
                (Err(e), Some(post)) if e.status == Some(405) && spec != post => {
                    tracing::info!(
                        "{} answered 405 to GET {}; sending it as POST",
                        fetcher.vendor().display_name(),
                        spec.endpoint
                    );
                    let body = fetcher.fetch(&post, &what).await?;
                    use_post.store(true, Ordering::Relaxed);
                    return parse(&body).map_err(|e| body_error(&fetcher, &post, &what, e, &body));
                }
                (result, _) => result?,
            };
            parse(&body).map_err(|e| body_error(&fetcher, &spec, &what, e, &body))
        })
    }
}

impl<R> Drop for NumberedPages<R> {
    fn drop(&mut self) {
        for (_, handle) in &self.in_flight {
            handle.abort();
        }
    }
}

impl<R: Record> PageSource<R> for NumberedPages<R> {
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<R>>> {
        if self.ended && self.in_flight.is_empty() && !self.head_checked && wanted.is_none() {
            self.check_head().await?;
        }
        if !self.ended {
            let needed_up_to = match wanted {
                Some(wanted) => self.last_yielded + wanted.div_ceil(self.page_size).max(1),
                None => u64::MAX,
            };
            let mut last = needed_up_to.min(self.max_pages);
            if !self.head_checked && self.last_yielded == 0 {
                // Page 1 alone first: the end-of-listing check compares
                // against it, so every other page must be answered after it.
                last = 1;
            }
            while self.in_flight.len() < self.concurrency && self.next_to_request <= last {
                let page = self.next_to_request;
                self.in_flight.push_back((page, self.spawn(page)));
                self.next_to_request += 1;
            }
        }
        let Some((number, handle)) = self.in_flight.pop_front() else {
            if !self.ended && self.last_yielded >= self.max_pages {
                return Err(max_pages_error(&self.fetcher, self.max_pages));
            }
            return Ok(None);
        };
        let page = join(handle).await?;
        self.last_yielded = number;
        if number == 1 && !self.head_checked {
            self.first_page_ids = Some(page.records.iter().map(|r| r.id().to_owned()).collect());
        }
        if (page.returned as u64) < self.page_size {
            self.ended = true;
            for (_, rest) in self.in_flight.drain(..) {
                rest.abort();
            }
        } else {
            // A server that ignores `page` would hand out page 1 forever.
            let ids: Vec<String> = page.records.iter().map(|r| r.id().to_owned()).collect();
            if !ids.is_empty() && self.previous_page_ids.as_ref() == Some(&ids) {
                return Err(Error::vendor(format!(
                    "{} returned the same records for page {} as for page {} of agent {}: it seems to ignore paging",
                    self.fetcher.vendor().display_name(),
                    number,
                    number - 1,
                    self.fetcher.agent()
                )));
            }
            self.previous_page_ids = Some(ids);
            if number >= self.max_pages {
                return Err(max_pages_error(&self.fetcher, self.max_pages));
            }
        }
        Ok(Some(page))
    }
}

fn max_pages_error(fetcher: &Fetcher, max_pages: u64) -> Error {
    Error::vendor(format!(
        "stopped after {max_pages} pages of {} agent {}: the listing did not end (--max-pages)",
        fetcher.vendor().display_name(),
        fetcher.agent()
    ))
    .with_hint(
        "raise --max-pages if the listing really is that long, or narrow it with --since/--until",
    )
}

/// NeoAgent: one request per date window, several in flight, in window order.
struct WindowPages<R> {
    fetcher: Arc<Fetcher>,
    request: Box<dyn Fn(&DayRange) -> RequestSpec + Send + Sync>,
    parse: Parser<R>,
    windows: VecDeque<DayRange>,
    concurrency: usize,
    /// Bodies only: a window's records are parsed when the writer reaches
    /// it, so windows fetched ahead cost their body, not body and records.
    in_flight: VecDeque<(RequestSpec, String, JoinHandle<Result<Bytes>>)>,
}

impl<R: Record> WindowPages<R> {
    fn new(
        job: &Job,
        fetcher: Arc<Fetcher>,
        windows: Vec<DayRange>,
        request: impl Fn(&DayRange) -> RequestSpec + Send + Sync + 'static,
        parse: impl Fn(&[u8]) -> std::result::Result<Page<R>, BodyError> + Send + Sync + 'static,
    ) -> Self {
        WindowPages {
            fetcher,
            request: Box::new(request),
            parse: Arc::new(parse),
            windows: windows.into(),
            concurrency: job.concurrency.max(1),
            in_flight: VecDeque::new(),
        }
    }
}

impl<R> Drop for WindowPages<R> {
    fn drop(&mut self) {
        for (_, _, handle) in &self.in_flight {
            handle.abort();
        }
    }
}

impl<R: Record> PageSource<R> for WindowPages<R> {
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<R>>> {
        // With a limit, one window at a time: any window may hold enough.
        let room = if wanted.is_some() {
            1
        } else {
            self.concurrency
        };
        while self.in_flight.len() < room {
            let Some(window) = self.windows.pop_front() else {
                break;
            };
            let what = match (window.start_text(), window.end_text()) {
                (Some(start), Some(end)) => format!("window {start}..{end}"),
                (None, Some(end)) => format!("window ..{end}"),
                _ => "the whole range".to_owned(),
            };
            let spec = (self.request)(&window);
            let fetcher = self.fetcher.clone();
            let (task_spec, task_what) = (spec.clone(), what.clone());
            let handle = tokio::spawn(async move { fetcher.fetch(&task_spec, &task_what).await });
            self.in_flight.push_back((spec, what, handle));
        }
        let Some((spec, what, handle)) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let body = join(handle).await?;
        (self.parse)(&body)
            .map(Some)
            .map_err(|e| body_error(&self.fetcher, &spec, &what, e, &body))
    }
}

/// Robofy: `nextPageToken` paging, sequential by nature; the next request
/// is sent before the current page is handed over.
struct TokenPages<R> {
    fetcher: Arc<Fetcher>,
    request: TokenRequest,
    parse: Parser<R>,
    max_pages: u64,
    pages: u64,
    seen_tokens: HashSet<String>,
    pending: Option<JoinHandle<Result<Page<R>>>>,
    /// A token whose page was not requested yet (the limit was reached, or
    /// prefetching is off).
    deferred: Option<String>,
    started: bool,
    /// Send the next page's request before handing over this one. Off for
    /// the Robofy inbox listing, whose requests share `--concurrency` with
    /// the message requests.
    prefetch: bool,
}

impl<R: Send + 'static> TokenPages<R> {
    fn new(
        job: &Job,
        fetcher: Arc<Fetcher>,
        request: impl Fn(Option<&str>) -> RequestSpec + Send + Sync + 'static,
        parse: impl Fn(&[u8]) -> std::result::Result<Page<R>, BodyError> + Send + Sync + 'static,
    ) -> Self {
        TokenPages {
            fetcher,
            request: Arc::new(request),
            parse: Arc::new(parse),
            max_pages: job.max_pages,
            pages: 0,
            seen_tokens: HashSet::new(),
            pending: None,
            deferred: None,
            started: false,
            prefetch: true,
        }
    }

    fn spawn(&mut self, token: Option<&str>) {
        let spec = (self.request)(token);
        let what = format!("page {}", self.pages + 1);
        self.pending = Some(spawn_page(
            self.fetcher.clone(),
            spec,
            what,
            self.parse.clone(),
        ));
    }

    async fn next_page(&mut self, wanted: Option<u64>) -> Result<Option<Page<R>>> {
        if self.pending.is_none() {
            if !self.started {
                self.started = true;
                self.spawn(None);
            } else if let Some(token) = self.deferred.take() {
                self.spawn(Some(&token));
            } else {
                return Ok(None);
            }
        }
        let Some(handle) = self.pending.take() else {
            return Ok(None);
        };
        let page = join(handle).await?;
        self.pages += 1;
        if let Some(token) = &page.next_token {
            if !self.seen_tokens.insert(token.clone()) {
                return Err(Error::vendor(format!(
                    "{} pagination loop for agent {}: page {} handed out a token already used ({}); stopped",
                    self.fetcher.vendor().display_name(),
                    self.fetcher.agent(),
                    self.pages,
                    self.fetcher.excerpt(token.as_bytes())
                ))
                .with_hint("the vendor's paging is broken; nothing was written twice. Run again later"));
            }
            if self.pages >= self.max_pages {
                return Err(max_pages_error(&self.fetcher, self.max_pages));
            }
            if !self.prefetch || wanted.is_some_and(|w| page.returned as u64 >= w) {
                self.deferred = Some(token.clone());
            } else {
                let token = token.clone();
                self.spawn(Some(&token));
            }
        }
        Ok(Some(page))
    }
}

impl<R> Drop for TokenPages<R> {
    fn drop(&mut self) {
        if let Some(handle) = &self.pending {
            handle.abort();
        }
    }
}

impl<R: Record> PageSource<R> for TokenPages<R> {
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<R>>> {
        self.next_page(wanted).await
    }
}

/// Robofy conversations: the inbox's sessions (token paging), then each
/// session's messages, `concurrency` sessions at a time, in listing order.
struct RobofySessions {
    fetcher: Arc<Fetcher>,
    ctx: Arc<MapContext>,
    agent: String,
    listing: Option<TokenPages<robofy::SessionSummary>>,
    queue: VecDeque<robofy::SessionSummary>,
    concurrency: usize,
    max_pages: u64,
    in_flight: VecDeque<JoinHandle<Result<Conversation>>>,
}

impl RobofySessions {
    fn new(job: &Job, fetcher: Arc<Fetcher>, ctx: MapContext) -> Self {
        let agent = job.agent.clone();
        let (listing, queue) = match &job.filters.session {
            // One session asked for: no need to list the inbox.
            Some(session) => (
                None,
                VecDeque::from([robofy::SessionSummary {
                    id: session.clone(),
                    item: serde_json::Map::new(),
                }]),
            ),
            None => {
                let list_agent = agent.clone();
                let mut listing = TokenPages::new(
                    job,
                    fetcher.clone(),
                    move |token| robofy::sessions_request(&list_agent, token),
                    robofy::parse_sessions,
                );
                // The listing is only asked for its next page while fewer
                // than `concurrency` message requests are in flight, so
                // requests in flight never exceed `--concurrency`.
                listing.prefetch = false;
                (Some(listing), VecDeque::new())
            }
        };
        RobofySessions {
            fetcher,
            ctx: Arc::new(ctx),
            agent,
            listing,
            queue,
            concurrency: job.concurrency.max(1),
            max_pages: job.max_pages,
            in_flight: VecDeque::new(),
        }
    }

    fn spawn(&self, summary: robofy::SessionSummary) -> JoinHandle<Result<Conversation>> {
        let (fetcher, ctx, agent, max_pages) = (
            self.fetcher.clone(),
            self.ctx.clone(),
            self.agent.clone(),
            self.max_pages,
        );
        tokio::spawn(async move {
            let mut messages: Vec<Value> = Vec::new();
            let mut token: Option<String> = None;
            let mut seen = HashSet::new();
            for page in 1.. {
                let spec = robofy::messages_request(&agent, &summary.id, token.as_deref());
                let what = format!("session {} page {page}", summary.id);
                let body = fetcher.fetch(&spec, &what).await?;
                let parsed = robofy::parse_messages(&body)
                    .map_err(|e| body_error(&fetcher, &spec, &what, e, &body))?;
                messages.extend(parsed.records);
                match parsed.next_token {
                    Some(_) if page >= max_pages => {
                        return Err(max_pages_error(&fetcher, max_pages));
                    }
                    Some(next) if seen.insert(next.clone()) => token = Some(next),
                    Some(_) => {
                        return Err(Error::vendor(format!(
                            "Robofy pagination loop in the messages of session {} of agent {agent}",
                            summary.id
                        )));
                    }
                    None => break,
                }
            }
            Ok(robofy::conversation(&summary, messages, &ctx))
        })
    }
}

impl Drop for RobofySessions {
    fn drop(&mut self) {
        for handle in &self.in_flight {
            handle.abort();
        }
    }
}

impl PageSource<Conversation> for RobofySessions {
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<Conversation>>> {
        let room = wanted.map_or(self.concurrency, |w| {
            (w as usize).clamp(1, self.concurrency)
        });
        while self.in_flight.len() < room {
            if self.queue.is_empty() {
                let Some(listing) = self.listing.as_mut() else {
                    break;
                };
                match listing.next_page(None).await? {
                    Some(page) => self.queue.extend(page.records),
                    None => {
                        self.listing = None;
                        break;
                    }
                }
                continue;
            }
            if let Some(summary) = self.queue.pop_front() {
                let handle = self.spawn(summary);
                self.in_flight.push_back(handle);
            }
        }
        match self.in_flight.pop_front() {
            Some(handle) => {
                let conversation = join(handle).await?;
                Ok(Some(Page {
                    records: vec![conversation],
                    returned: 1,
                    next_token: None,
                }))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_overlap_by_one_day_and_cover_the_range() {
        let windows = split_days(day("2025-01-01"), day("2025-03-01"), 30);
        let spans: Vec<(String, String)> = windows
            .iter()
            .map(|w| (w.start_text().unwrap(), w.end_text().unwrap()))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("2025-01-01".into(), "2025-01-31".into()),
                ("2025-01-31".into(), "2025-03-01".into()),
            ]
        );
        assert_eq!(
            split_days(day("2025-01-01"), day("2025-01-01"), 30).len(),
            1
        );
        assert_eq!(split_days(day("2025-01-01"), day("2025-01-05"), 1).len(), 4);
    }

    #[test]
    fn seen_ids_are_per_vendor_and_agent() {
        let mut seen = SeenIds::default();
        assert!(seen.insert(Vendor::Chatzuri, "a", "1"));
        assert!(!seen.insert(Vendor::Chatzuri, "a", "1"));
        assert!(seen.insert(Vendor::Chatzuri, "b", "1"));
        assert!(seen.insert(Vendor::Robofy, "a", "1"));
    }
}
