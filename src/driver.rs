//! The paging driver: walks any listing a vendor describes
//! (`vendors::plan::Listing`) and owns every fetch of an export. It has one
//! implementation of what all listings share: requests in flight ahead of
//! the writer (each a task, so waiting on the network overlaps parsing and
//! writing),
//! output order, `--max-pages`, loop detection, `--limit`, and
//! cancellation: every task is held in an `AbortOnDropHandle`, so dropping
//! a walk (a failure elsewhere, Ctrl-C) aborts whatever it has in flight.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio_util::task::AbortOnDropHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::export::{Bookmark, FUTURE_TOLERANCE, Job, RunStats, SeenIds, Sink};
use crate::fetch::Fetcher;
use crate::model::{Record, Text};
use crate::pipe::{self, Piece, PipeReader, PipeWriter};
use crate::vendors::plan::{
    Children, Incremental, Items, Listing, Numbered, PageParse, Parents, Parse, Streamed, Tokens,
};
use crate::vendors::{self, BodyError, HttpMethod, Page, RequestSpec};

/// Walks `listing` to its end (or `--limit`), handing each record that
/// passes the filters, the bookmark and the de-duplication to `sink`.
pub async fn walk<R: Record>(
    job: &Job,
    bookmark: Option<&Bookmark>,
    listing: Listing<R>,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: Sink<'_, R>,
) -> Result<RunStats> {
    let mut walk = Walk::new(listing, job, &fetcher);
    let mut stats = RunStats::default();
    let mut id_hashes = Vec::new();
    loop {
        let wanted = job
            .filters
            .limit
            .map(|limit| limit.saturating_sub(stats.written));
        if wanted == Some(0) {
            break;
        }
        let Some(Batch { page, new_body }) = walk.next(wanted).await? else {
            break;
        };
        if new_body {
            stats.pages += 1;
        }
        if let Some(total) = page.total {
            fetcher
                .stats
                .expected
                .store(total, std::sync::atomic::Ordering::Relaxed);
        }
        seen.hash_ahead(
            page.records
                .iter()
                .map(|r| (r.vendor(), r.agent_id(), r.id())),
            &mut id_hashes,
        );
        debug_assert_eq!(id_hashes.len(), page.records.len());
        // By reference: moving each record out of the page cost a copy of
        // the whole record (a few hundred bytes) per record.
        for (record, &id_hash) in page.records.iter().zip(&id_hashes) {
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
            if !job.accepts(record, bookmark) {
                stats.filtered += 1;
                continue;
            }
            if !seen.insert_hashed(id_hash) {
                stats.duplicates += 1;
                continue;
            }
            sink(record)?;
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
                note_newest(&mut stats.newest, record);
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

/// Keeps the newest `created_at` written and the ids that share it. In an
/// ascending listing every record is the newest so far: the bookmark's one
/// id is then overwritten in its own buffer, so no record allocates here.
fn note_newest<R: Record>(newest: &mut Option<Bookmark>, record: &R) {
    let Some(created) = record.created_at() else {
        return;
    };
    let mark = newest.get_or_insert_with(Bookmark::default);
    match mark.created_at {
        Some(t) if t > created => {}
        Some(t) if t == created => mark.ids.push(record.id().to_owned()),
        _ => {
            mark.created_at = Some(created);
            mark.ids.truncate(1);
            match mark.ids.first_mut() {
                Some(id) => {
                    id.clear();
                    id.push_str(record.id());
                }
                None => mark.ids.push(record.id().to_owned()),
            }
        }
    }
}

/// Records a walk hands over: a whole page, or, for a body parsed as it
/// arrives, the records of its latest part.
struct Batch<R> {
    page: Page<R>,
    /// Whether these are the first records of a body (what `pages` counts).
    new_body: bool,
}

impl<R> Batch<R> {
    fn whole(page: Page<R>) -> Self {
        Batch {
            page,
            new_body: true,
        }
    }
}

/// What every walk shares: the source's fetcher and the run's bounds.
#[derive(Clone)]
struct Context {
    fetcher: Arc<Fetcher>,
    concurrency: usize,
    max_pages: u64,
    /// What each body in flight may hold ahead of the walk.
    share: usize,
}

type Task<T> = AbortOnDropHandle<Result<T>>;

/// Lets the requests just spawned be sent before the walk goes on. The
/// runtime has one thread, and mapping a page and writing it (to stdout,
/// a blocking write) never yield: without this, a request spawned ahead
/// would leave only once the walk next waits for a body, so the server
/// would build the next page while the client sits idle, not while it
/// maps this one.
async fn let_requests_leave() {
    tokio::task::yield_now().await;
}

fn spawn<T: Send + 'static>(future: impl Future<Output = Result<T>> + Send + 'static) -> Task<T> {
    AbortOnDropHandle::new(tokio::spawn(future))
}

async fn join<T>(task: Task<T>) -> Result<T> {
    task.await
        .map_err(|e| Error::internal(format!("a fetch task failed: {e}")))?
}

/// The POST form a listing switches to for good after a 405.
#[derive(Clone)]
struct PostFallback {
    to_post: fn(&RequestSpec) -> RequestSpec,
    in_use: Arc<AtomicBool>,
}

/// A request in flight: the task that sends it (and returns the request as
/// finally sent, for messages) and the pipe its body comes through.
struct Pending {
    task: Task<RequestSpec>,
    body: PipeReader,
    what: String,
}

/// Sends one request (as POST if the listing switched) in a task of its
/// own; its body waits in a pipe of `context.share` bytes.
fn send(context: &Context, get: RequestSpec, what: String, post: Option<PostFallback>) -> Pending {
    let (mut writer, reader) = pipe::pipe(context.share);
    let fetcher = context.fetcher.clone();
    let task_what = what.clone();
    let task =
        spawn(async move { fetch(&fetcher, get, &task_what, post.as_ref(), &mut writer).await });
    Pending {
        task,
        body: reader,
        what,
    }
}

impl Pending {
    /// The whole body, with the request as sent.
    /// `spare` is the buffer of an earlier body of the same walk, reused:
    /// allocating a new one for every large body would leave the last one's
    /// pages resident while the next is read.
    async fn whole(mut self, spare: &mut Option<BytesMut>) -> Result<(RequestSpec, Bytes, String)> {
        // One chunk is kept as it came; more are copied into one buffer
        // sized from the announced length (never a list of chunks and
        // their concatenation at once: twice the body).
        let mut first: Option<Bytes> = None;
        let mut body = spare.take().unwrap_or_default();
        body.clear();
        let mut announced = 0usize;
        while let Some(piece) = self.body.next().await {
            match piece {
                Piece::Length(length) => {
                    announced = usize::try_from(length)
                        .unwrap_or(usize::MAX)
                        .min(crate::fetch::MAX_BODY_BYTES);
                }
                Piece::Chunk(bytes, _) => match first.take() {
                    None if body.is_empty() => first = Some(bytes),
                    held => {
                        let wanted = announced.max(bytes.len() * 2);
                        if body.is_empty() && body.capacity() < wanted {
                            // The earlier body's buffer is too small: let it
                            // go before the new one is taken, never both at
                            // once (growing it in place would copy it into a
                            // buffer twice its size).
                            body = BytesMut::new();
                            body.reserve(wanted);
                        }
                        if let Some(held) = held {
                            body.extend_from_slice(&held);
                        }
                        body.extend_from_slice(&bytes);
                    }
                },
                Piece::Restart => {
                    first = None;
                    body.clear();
                }
            }
        }
        let spec = join(self.task).await?;
        let body = match first {
            Some(bytes) => {
                *spare = Some(body);
                bytes
            }
            None => body.freeze(),
        };
        Ok((spec, body, self.what))
    }

    /// The whole body, parsed.
    async fn parsed<T>(
        self,
        parse: &Parse<T>,
        fetcher: &Fetcher,
        spare: &mut Option<BytesMut>,
    ) -> Result<Page<T>> {
        let (spec, body, what) = self.whole(spare).await?;
        let page = parse(&body).map_err(|e| body_error(fetcher, &spec, &what, e, &body));
        keep_buffer(body, spare);
        page
    }
}

/// Takes a parsed body's buffer back for the next body, if nothing else
/// holds it.
fn keep_buffer(body: Bytes, spare: &mut Option<BytesMut>) {
    if let Ok(buffer) = body.try_into_mut()
        && spare
            .as_ref()
            .is_none_or(|s| s.capacity() < buffer.capacity())
    {
        *spare = Some(buffer);
    }
}

/// The one place a listing's request is sent: a 405 is answered by
/// resending the same parameters as POST when the vendor describes such a
/// form, which every later page then uses.
async fn fetch(
    fetcher: &Fetcher,
    get: RequestSpec,
    what: &str,
    post: Option<&PostFallback>,
    pipe: &mut PipeWriter,
) -> Result<RequestSpec> {
    let Some(post) = post else {
        fetcher.fetch_into(&get, what, pipe).await?;
        return Ok(get);
    };
    // The POST form is built only when it is sent: most vendors' pages never
    // need it.
    if post.in_use.load(Ordering::Relaxed) {
        let as_post = (post.to_post)(&get);
        fetcher.fetch_into(&as_post, what, pipe).await?;
        return Ok(as_post);
    }
    match fetcher.fetch_into(&get, what, pipe).await {
        Ok(()) => Ok(get),
        Err(e) if e.status == Some(405) && get.method == HttpMethod::Get => {
            tracing::info!(
                "{} answered 405 to GET {}; sending it as POST",
                fetcher.vendor().display_name(),
                get.endpoint
            );
            let as_post = (post.to_post)(&get);
            fetcher.fetch_into(&as_post, what, pipe).await?;
            post.in_use.store(true, Ordering::Relaxed);
            Ok(as_post)
        }
        Err(e) => Err(e),
    }
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

/// A listing being walked.
enum Walk<R> {
    Numbered(NumberedWalk<R>),
    Requests(RequestsWalk<R>),
    Tokens(TokenWalk<R>),
    FanOut(FanOutWalk<R>),
    Fallback(Box<FallbackWalk<R>>),
}

impl<R: Record> Walk<R> {
    fn new(listing: Listing<R>, job: &Job, fetcher: &Arc<Fetcher>) -> Walk<R> {
        let concurrency = job.concurrency.max(1);
        let context = Context {
            fetcher: fetcher.clone(),
            concurrency,
            max_pages: job.max_pages,
            share: pipe::share(concurrency),
        };
        match listing {
            Listing::Numbered(numbered) => {
                Walk::Numbered(NumberedWalk::new(numbered, context, job))
            }
            Listing::Requests { requests, parse } => Walk::Requests(RequestsWalk {
                context,
                parse,
                requests: requests.into(),
                in_flight: VecDeque::new(),
                current: None,
            }),
            Listing::Tokens(tokens) => Walk::Tokens(TokenWalk::new(tokens, context, true)),
            Listing::FanOut { parents } => Walk::FanOut(FanOutWalk::new(parents, context)),
            Listing::Fallback {
                first,
                when,
                warning,
                then,
            } => Walk::Fallback(Box::new(FallbackWalk {
                current: Walk::new(*first, job, fetcher),
                fallback: Some((when, warning, *then)),
                job: job.clone(),
                fetcher: fetcher.clone(),
                yielded: false,
            })),
        }
    }

    /// The next page; `wanted` is how many more records the run can still
    /// write (`--limit`), so a walk does not fetch pages it cannot need.
    fn next(&mut self, wanted: Option<u64>) -> BoxFuture<'_, Result<Option<Batch<R>>>> {
        let whole = |page: Result<Option<Page<R>>>| page.map(|page| page.map(Batch::whole));
        match self {
            Walk::Numbered(walk) => Box::pin(walk.next(wanted)),
            Walk::Requests(walk) => Box::pin(walk.next(wanted)),
            Walk::Tokens(walk) => Box::pin(async move { whole(walk.next(wanted).await) }),
            Walk::FanOut(walk) => Box::pin(async move { whole(walk.next(wanted).await) }),
            Walk::Fallback(walk) => Box::pin(walk.next(wanted)),
        }
    }
}

/// Numbered pages, up to `concurrency` in flight, yielded in page order.
struct NumberedWalk<R> {
    context: Context,
    request: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync>,
    parse: PageParse<R>,
    post: Option<PostFallback>,
    page_size: u64,
    concurrency: usize,
    next_to_request: u64,
    last_yielded: u64,
    ended: bool,
    in_flight: VecDeque<(u64, Pending)>,
    previous_page_ids: Option<Vec<Text>>,
    /// Page 1's ids as first fetched, to see at the end whether the head of
    /// the listing moved while later pages were in flight. A set: a vendor
    /// that ignores `size` can make page 1 huge, and a pairwise comparison
    /// would then be quadratic.
    first_page_ids: Option<HashSet<Text>>,
    /// Whether the end-of-listing check of page 1 was done (or is moot).
    head_checked: bool,
    spare: Option<BytesMut>,
    /// The page whose items are being handed over (`PageParse::Items`).
    open: Option<OpenPage>,
}

/// A page of `PageParse::Items` whose records are handed over a batch at a
/// time, each item mapped only when its batch is taken.
struct OpenPage {
    number: u64,
    full: bool,
    spec: RequestSpec,
    what: String,
    body: Bytes,
    items: std::vec::IntoIter<std::ops::Range<usize>>,
    /// The ids handed over so far, for the checks made once it is done.
    ids: Vec<Text>,
}

/// A page's ids, for the paging checks. As model strings: an id of up to 24
/// bytes is kept inline, so a page's ids cost no allocation each (a `String`
/// each was one more malloc and free per record of every export).
fn page_ids<R: Record>(records: &[R]) -> Vec<Text> {
    records.iter().map(|r| Text::from(r.id())).collect()
}

/// What one batch of an open page maps at most (at least one item): the
/// records of a batch are held together, so this bounds them by bytes.
const BATCH_BYTES: usize = 1 << 20;

impl OpenPage {
    /// The next records, or `None` once every item was handed over.
    fn take<R: Record>(
        &mut self,
        items: &Items<R>,
        wanted: Option<u64>,
        fetcher: &Fetcher,
    ) -> Result<Option<Vec<R>>> {
        let most = wanted.map_or(usize::MAX, |w| usize::try_from(w).unwrap_or(usize::MAX));
        let mut records = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES && records.len() < most.max(1) {
            let Some(range) = self.items.next() else {
                break;
            };
            bytes += range.len();
            let record = (items.map)(&self.body[range])
                .map_err(|e| body_error(fetcher, &self.spec, &self.what, e, &self.body))?;
            self.ids.push(Text::from(record.id()));
            records.push(record);
        }
        Ok((!records.is_empty()).then_some(records))
    }
}

impl<R: Record> NumberedWalk<R> {
    fn new(numbered: Numbered<R>, context: Context, job: &Job) -> Self {
        NumberedWalk {
            request: numbered.request,
            parse: numbered.parse,
            post: numbered.on_405.map(|to_post| PostFallback {
                to_post,
                in_use: Arc::new(AtomicBool::new(false)),
            }),
            page_size: numbered.page_size,
            concurrency: context.concurrency,
            next_to_request: 1,
            last_yielded: 0,
            ended: false,
            in_flight: VecDeque::new(),
            previous_page_ids: None,
            first_page_ids: None,
            head_checked: !numbered.head_moves
                || context.concurrency <= 1
                || job.filters.limit.is_some(),
            spare: None,
            open: None,
            context,
        }
    }

    fn spawn(&self, page: u64) -> Pending {
        send(
            &self.context,
            (self.request)(page),
            format!("page {page}"),
            self.post.clone(),
        )
    }

    /// The ids of a page, in order (its records are dropped as mapped).
    async fn ids_of(&mut self, pending: Pending) -> Result<Vec<Text>> {
        let fetcher = &self.context.fetcher;
        match &self.parse {
            PageParse::Whole(parse) => {
                let page = pending.parsed(parse, fetcher, &mut self.spare).await?;
                Ok(page_ids(&page.records))
            }
            PageParse::Items(items) => {
                let (spec, body, what) = pending.whole(&mut self.spare).await?;
                let ids = (items.split)(&body)
                    .and_then(|ranges| {
                        ranges
                            .into_iter()
                            .map(|range| (items.map)(&body[range]).map(|r| Text::from(r.id())))
                            .collect()
                    })
                    .map_err(|e| body_error(fetcher, &spec, &what, e, &body))?;
                keep_buffer(body, &mut self.spare);
                Ok(ids)
            }
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
        let first_again = self.spawn(1);
        let ids = self.ids_of(first_again).await?;
        let first = self.first_page_ids.take().unwrap_or_default();
        let moved = ids.iter().any(|id| !first.contains(id));
        if moved {
            tracing::info!(
                "{} listing changed while it was paged; walking it again one page at a time so no shifted record is missed",
                self.context.fetcher.vendor().display_name()
            );
            self.concurrency = 1;
            self.next_to_request = 1;
            self.last_yielded = 0;
            self.ended = false;
            self.previous_page_ids = None;
        }
        Ok(())
    }

    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Batch<R>>> {
        let open_batch = self.next_of_open_page(wanted)?;
        if open_batch.is_some() && wanted.is_some() {
            // Under --limit, the next page is asked for only once this one
            // is used up: it may hold all that is still wanted.
            return Ok(open_batch);
        }
        let max_pages = self.context.max_pages;
        if open_batch.is_none()
            && self.ended
            && self.in_flight.is_empty()
            && !self.head_checked
            && wanted.is_none()
        {
            self.check_head().await?;
        }
        if !self.ended {
            let needed_up_to = match wanted {
                Some(wanted) => self.last_yielded + wanted.div_ceil(self.page_size).max(1),
                None => u64::MAX,
            };
            let mut last = needed_up_to.min(max_pages);
            if !self.head_checked && self.last_yielded == 0 {
                // Page 1 alone first: the end-of-listing check compares
                // against it, so every other page must be answered after it.
                last = 1;
            }
            let before = self.in_flight.len();
            while self.in_flight.len() < self.concurrency && self.next_to_request <= last {
                let page = self.next_to_request;
                self.in_flight.push_back((page, self.spawn(page)));
                self.next_to_request += 1;
            }
            if self.in_flight.len() > before {
                let_requests_leave().await;
            }
        }
        if open_batch.is_some() {
            return Ok(open_batch);
        }
        let Some((number, pending)) = self.in_flight.pop_front() else {
            if !self.ended && self.last_yielded >= max_pages {
                return Err(max_pages_error(&self.context.fetcher, max_pages));
            }
            return Ok(None);
        };
        let fetcher = self.context.fetcher.clone();
        let items = match &self.parse {
            PageParse::Whole(parse) => {
                let page = pending.parsed(parse, &fetcher, &mut self.spare).await?;
                let ids = page_ids(&page.records);
                let full = self.note_page(number, page.returned);
                self.check_ids(number, full, ids)?;
                self.check_max_pages(number, full)?;
                return Ok(Some(Batch::whole(page)));
            }
            PageParse::Items(items) => items.clone(),
        };
        let (spec, body, what) = pending.whole(&mut self.spare).await?;
        let ranges =
            (items.split)(&body).map_err(|e| body_error(&fetcher, &spec, &what, e, &body))?;
        let full = self.note_page(number, ranges.len());
        self.check_max_pages(number, full)?;
        let mut open = OpenPage {
            number,
            full,
            spec,
            what,
            body,
            items: ranges.into_iter(),
            ids: Vec::new(),
        };
        let records = open.take(&items, wanted, &fetcher)?.unwrap_or_default();
        self.open = Some(open);
        Ok(Some(batch(records, true)))
    }

    /// The next batch of the open page; once it is all handed over, the
    /// checks of its end are made and `None` says to go on to the next.
    fn next_of_open_page(&mut self, wanted: Option<u64>) -> Result<Option<Batch<R>>> {
        let (Some(open), PageParse::Items(items)) = (self.open.as_mut(), &self.parse) else {
            return Ok(None);
        };
        if let Some(records) = open.take(items, wanted, &self.context.fetcher)? {
            return Ok(Some(batch(records, false)));
        }
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        keep_buffer(open.body, &mut self.spare);
        self.check_ids(open.number, open.full, open.ids)?;
        Ok(None)
    }

    /// Notes a page reached; whether it was full (a short page ends the
    /// listing).
    fn note_page(&mut self, number: u64, returned: usize) -> bool {
        self.last_yielded = number;
        let full = returned as u64 >= self.page_size;
        if !full {
            self.ended = true;
            self.in_flight.clear();
        }
        full
    }

    fn check_max_pages(&self, number: u64, full: bool) -> Result<()> {
        if full && number >= self.context.max_pages {
            return Err(max_pages_error(
                &self.context.fetcher,
                self.context.max_pages,
            ));
        }
        Ok(())
    }

    /// The checks that need a page's ids: page 1's for the end-of-listing
    /// check, and a full page repeating the one before it (a server that
    /// ignores `page` would hand out page 1 forever). A page of `Items` is
    /// checked after it was handed over; its records then repeat the page
    /// before's, so they were all dropped as duplicates.
    fn check_ids(&mut self, number: u64, full: bool, ids: Vec<Text>) -> Result<()> {
        if number == 1 && !self.head_checked {
            self.first_page_ids = Some(ids.iter().cloned().collect());
        }
        if !full {
            return Ok(());
        }
        if !ids.is_empty() && self.previous_page_ids.as_ref() == Some(&ids) {
            let fetcher = &self.context.fetcher;
            return Err(Error::vendor(format!(
                "{} returned the same records for page {} as for page {} of agent {}: it seems to ignore paging",
                fetcher.vendor().display_name(),
                number,
                number - 1,
                fetcher.agent()
            )));
        }
        self.previous_page_ids = Some(ids);
        Ok(())
    }
}

/// A fixed list of requests, several in flight, in list order. Each body
/// is parsed as it arrives once the walk reaches it, and handed over a
/// part at a time; the bodies behind it wait in their pipes, so what is
/// held is bounded by the read-ahead budget, not by the size of a window.
struct RequestsWalk<R> {
    context: Context,
    parse: Streamed<R>,
    requests: VecDeque<(String, RequestSpec)>,
    in_flight: VecDeque<(RequestSpec, Pending)>,
    current: Option<Reading<R>>,
}

/// The body being parsed.
struct Reading<R> {
    spec: RequestSpec,
    pending: Pending,
    parser: Box<dyn Incremental<R>>,
    /// The start of the body, for the excerpt of an error.
    head: Vec<u8>,
    /// Whether a batch of this body was handed over.
    yielded: bool,
}

/// How much of a body's start is kept for error excerpts.
const EXCERPT_HEAD_BYTES: usize = 64 * 1024;

impl<R: Record> RequestsWalk<R> {
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Batch<R>>> {
        // With a limit, one request at a time: any one may hold enough.
        let room = if wanted.is_some() {
            1
        } else {
            self.context.concurrency
        };
        loop {
            let before = self.in_flight.len();
            while self.in_flight.len() + usize::from(self.current.is_some()) < room {
                let Some((what, spec)) = self.requests.pop_front() else {
                    break;
                };
                let pending = send(&self.context, spec.clone(), what, None);
                self.in_flight.push_back((spec, pending));
            }
            if self.in_flight.len() > before {
                let_requests_leave().await;
            }
            if self.current.is_none() {
                let Some((spec, pending)) = self.in_flight.pop_front() else {
                    return Ok(None);
                };
                self.current = Some(Reading {
                    spec,
                    pending,
                    parser: (self.parse)(),
                    head: Vec::new(),
                    yielded: false,
                });
            }
            let Some(reading) = self.current.as_mut() else {
                return Ok(None);
            };
            let mut records = Vec::new();
            let ended = match reading.pending.body.next().await {
                Some(Piece::Chunk(bytes, _)) => {
                    if reading.head.len() < EXCERPT_HEAD_BYTES {
                        let room = EXCERPT_HEAD_BYTES - reading.head.len();
                        reading
                            .head
                            .extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                    let fed = reading.parser.feed(&bytes, &mut records);
                    fed.map_err(|e| reading.error(&self.context.fetcher, e))?;
                    false
                }
                Some(Piece::Length(_)) => false,
                Some(Piece::Restart) => {
                    // The attempt broke off mid-body and is being sent
                    // again: its records come again, and those already
                    // handed over are dropped as duplicates by id.
                    reading.parser = (self.parse)();
                    reading.head.clear();
                    false
                }
                None => true,
            };
            if ended {
                let Some(Reading {
                    pending: Pending { task, what, .. },
                    mut parser,
                    head,
                    yielded,
                    ..
                }) = self.current.take()
                else {
                    return Ok(None);
                };
                let spec = join(task).await?;
                parser
                    .finish(&mut records)
                    .map_err(|e| body_error(&self.context.fetcher, &spec, &what, e, &head))?;
                if !records.is_empty() || !yielded {
                    return Ok(Some(batch(records, !yielded)));
                }
                continue;
            }
            if !records.is_empty() {
                let new_body = !std::mem::replace(&mut reading.yielded, true);
                return Ok(Some(batch(records, new_body)));
            }
        }
    }
}

impl<R> Reading<R> {
    fn error(&self, fetcher: &Fetcher, error: BodyError) -> Error {
        body_error(fetcher, &self.spec, &self.pending.what, error, &self.head)
    }
}

fn batch<R>(records: Vec<R>, new_body: bool) -> Batch<R> {
    Batch {
        page: Page {
            returned: records.len(),
            records,
            next_token: None,
            total: None,
        },
        new_body,
    }
}

/// A token chain: sequential by nature; the next request is sent before
/// the current page is handed over (`prefetch`), and every token seen is
/// remembered so a cycle (A, B, A) is caught.
struct TokenWalk<T> {
    context: Context,
    tokens: Tokens<T>,
    pages: u64,
    seen_tokens: HashSet<String>,
    pending: Option<Pending>,
    /// A token whose page was not requested yet (the limit was reached, or
    /// prefetching is off).
    deferred: Option<String>,
    started: bool,
    /// Off where the chain shares `--concurrency` with other requests (the
    /// parents of a fan-out).
    prefetch: bool,
    spare: Option<BytesMut>,
}

impl<T: Send + 'static> TokenWalk<T> {
    fn new(tokens: Tokens<T>, context: Context, prefetch: bool) -> Self {
        TokenWalk {
            context,
            tokens,
            pages: 0,
            seen_tokens: HashSet::new(),
            pending: None,
            deferred: None,
            started: false,
            prefetch,
            spare: None,
        }
    }

    fn spawn(&mut self, token: Option<&str>) {
        let spec = (self.tokens.request)(token);
        let what = format!("{} {}", self.tokens.what, self.pages + 1);
        self.pending = Some(send(&self.context, spec, what, None));
    }

    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<T>>> {
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
        let Some(pending) = self.pending.take() else {
            return Ok(None);
        };
        let (spec, body, what) = pending.whole(&mut self.spare).await?;
        self.pages += 1;
        // A token found by a scan of the body lets the next request leave
        // before this page is parsed; the parse must then find the same.
        let peeked = match self.tokens.peek {
            Some(peek) if self.prefetch && wanted.is_none() => peek(&body),
            _ => None,
        };
        let sent_early = match &peeked {
            Some(Some(token))
                if !self.seen_tokens.contains(token) && self.pages < self.context.max_pages =>
            {
                self.spawn(Some(token));
                let_requests_leave().await;
                true
            }
            _ => false,
        };
        let fetcher = &self.context.fetcher;
        let page =
            (self.tokens.parse)(&body).map_err(|e| body_error(fetcher, &spec, &what, e, &body));
        keep_buffer(body, &mut self.spare);
        let page = page?;
        if let Some(peeked) = peeked
            && peeked != page.next_token
        {
            return Err(Error::internal(format!(
                "the scan of {what} found another next-page token than its parse"
            )));
        }
        if let Some(token) = &page.next_token {
            if !self.seen_tokens.insert(token.clone()) {
                return Err(Error::vendor(format!(
                    "{} pagination loop for agent {}: {} {} handed out a token already used ({}); stopped",
                    fetcher.vendor().display_name(),
                    fetcher.agent(),
                    self.tokens.what,
                    self.pages,
                    fetcher.excerpt(token.as_bytes())
                ))
                .with_hint("the vendor's paging is broken; nothing was written twice. Run again later"));
            }
            if self.pages >= self.context.max_pages {
                return Err(max_pages_error(fetcher, self.context.max_pages));
            }
            if sent_early {
                // Already on its way.
            } else if !self.prefetch || wanted.is_some_and(|w| page.returned as u64 >= w) {
                self.deferred = Some(token.clone());
            } else {
                let token = token.clone();
                self.spawn(Some(&token));
                let_requests_leave().await;
            }
        }
        Ok(Some(page))
    }
}

/// Parents by tokens (or given), then each parent's children, up to
/// `concurrency` parents at a time, each assembled into one record, in
/// parent order.
struct FanOutWalk<R> {
    context: Context,
    listing: Option<TokenWalk<Children<R>>>,
    queue: VecDeque<Children<R>>,
    in_flight: VecDeque<Task<R>>,
}

impl<R: Send + 'static> FanOutWalk<R> {
    fn new(parents: Parents<R>, context: Context) -> Self {
        let (listing, queue) = match parents {
            // The listing is only asked for its next page while fewer than
            // `concurrency` child requests are in flight, so requests in
            // flight never exceed `--concurrency`.
            Parents::Listed(tokens) => (
                Some(TokenWalk::new(tokens, context.clone(), false)),
                VecDeque::new(),
            ),
            Parents::Given(children) => (None, children.into()),
        };
        FanOutWalk {
            context,
            listing,
            queue,
            in_flight: VecDeque::new(),
        }
    }

    fn spawn(&self, children: Children<R>) -> Task<R> {
        let context = self.context.clone();
        spawn(async move {
            let mut tokens = children.listing;
            tokens.what = format!("{} {}", children.what, tokens.what);
            let mut walk = TokenWalk::new(tokens, context, true);
            let mut items = Vec::new();
            while let Some(page) = walk.next(None).await? {
                items.extend(page.records);
            }
            Ok((children.assemble)(items))
        })
    }

    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Page<R>>> {
        let concurrency = self.context.concurrency;
        let room = wanted.map_or(concurrency, |w| {
            usize::try_from(w)
                .unwrap_or(usize::MAX)
                .clamp(1, concurrency)
        });
        while self.in_flight.len() < room {
            if let Some(children) = self.queue.pop_front() {
                let task = self.spawn(children);
                self.in_flight.push_back(task);
                continue;
            }
            let Some(listing) = self.listing.as_mut() else {
                break;
            };
            match listing.next(None).await? {
                Some(page) => self.queue.extend(page.records),
                None => {
                    self.listing = None;
                    break;
                }
            }
        }
        match self.in_flight.pop_front() {
            Some(task) => Ok(Some(Page {
                records: vec![join(task).await?],
                returned: 1,
                next_token: None,
                total: None,
            })),
            None => Ok(None),
        }
    }
}

/// When to switch, the warning to print, and the listing to switch to.
type Fallback<R> = (fn(&Error) -> bool, String, Listing<R>);

/// One listing, or another when the first fails a known way before it
/// yielded anything (a plan without access to the newer API).
struct FallbackWalk<R> {
    current: Walk<R>,
    fallback: Option<Fallback<R>>,
    job: Job,
    fetcher: Arc<Fetcher>,
    yielded: bool,
}

impl<R: Record> FallbackWalk<R> {
    async fn next(&mut self, wanted: Option<u64>) -> Result<Option<Batch<R>>> {
        match self.current.next(wanted).await {
            Err(e)
                if !self.yielded && self.fallback.as_ref().is_some_and(|(when, ..)| when(&e)) =>
            {
                let Some((_, warning, then)) = self.fallback.take() else {
                    return Err(e);
                };
                tracing::warn!("{warning}");
                self.current = Walk::new(then, &self.job, &self.fetcher);
                self.current.next(wanted).await
            }
            result => {
                self.yielded = true;
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A walk's next body, larger than the buffer kept from the one
    /// before, gets a buffer of its own length: growing the kept one in
    /// place (`BytesMut::reserve`) copied it into a buffer twice its
    /// capacity, 40 MB of the 100 KB-message export's peak.
    #[tokio::test]
    async fn a_larger_body_replaces_the_kept_buffer_instead_of_doubling_it() {
        const LENGTH: usize = 1 << 20;
        let (mut writer, reader) = pipe::pipe(LENGTH * 2);
        let task = spawn(async move {
            writer.announce(LENGTH as u64);
            for _ in 0..4 {
                assert!(writer.send(Bytes::from(vec![b'x'; LENGTH / 4])).await);
            }
            Ok(RequestSpec::get("test", "/test".to_owned()))
        });
        let pending = Pending {
            task,
            body: reader,
            what: "page 2".to_owned(),
        };
        let mut spare = Some(BytesMut::with_capacity(LENGTH * 9 / 10));
        let (_, body, _) = pending.whole(&mut spare).await.expect("the body");
        assert_eq!(body.len(), LENGTH);
        keep_buffer(body, &mut spare);
        let capacity = spare.map_or(0, |buffer| buffer.capacity());
        assert!(
            (LENGTH..LENGTH * 3 / 2).contains(&capacity),
            "a body of {LENGTH} bytes was read into a buffer of {capacity}"
        );
    }
}
