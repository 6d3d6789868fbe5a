//! The vocabulary between the vendor modules and the paging driver: a vendor
//! describes itself once (`VendorSpec`) and, for each run, the listing to
//! walk (`Listing`), with pure functions that build each request and parse
//! each body. The driver (`crate::driver`) does every fetch.

use std::ops::Range;
use std::sync::Arc;

use serde_json::Value;

use super::{AuthScheme, BodyError, Page, RequestSpec};
use crate::error::{Error, Result};
use crate::export::{Bookmark, Job};
use crate::model::{Conversation, Lead, Resource};

/// Everything `leads` knows about one vendor apart from its wire format.
/// `leads vendors`, the usage checks, help, hints and completions read it.
pub struct VendorSpec {
    /// The `--vendor` value, lower case (also in output and state keys).
    pub name: &'static str,
    /// The vendor's own spelling, for messages.
    pub display_name: &'static str,
    pub default_base_url: &'static str,
    pub key_env: &'static str,
    pub base_url_env: &'static str,
    pub auth: AuthScheme,
    /// The prefix of ids made up for records that came without one.
    pub id_prefix: &'static str,
    /// What the vendor calls the id `--agent` takes, and where to find it.
    pub agent_hint: &'static str,
    /// The hint of a 404.
    pub not_found_hint: &'static str,
    /// A better hint for an HTTP error whose body carries this vendor code.
    pub code_hint: fn(&str) -> Option<&'static str>,
    /// The hint when a body is larger than the fetcher accepts.
    pub too_large_hint: &'static str,
    /// Whether the vendor nests agents in projects (`--project`, or
    /// `--agent PROJECT/AGENT`), and for which resource a project is needed.
    pub projects: Option<Projects>,
    /// A line `leads vendors` prints under the table, if any.
    pub note: Option<&'static str>,
    pub leads: ResourceSpec<Lead>,
    pub conversations: ResourceSpec<Conversation>,
}

impl VendorSpec {
    /// The static description of one resource, without its plan.
    pub fn resource(&self, resource: Resource) -> ResourceInfo {
        match resource {
            Resource::Leads => self.leads.info(),
            Resource::Conversations => self.conversations.info(),
        }
    }
}

/// `code_hint` of a vendor whose error codes say nothing a status does not.
pub fn no_code_hints(_code: &str) -> Option<&'static str> {
    None
}

#[derive(Debug, Clone, Copy)]
pub struct Projects {
    pub required_for: Resource,
    /// Where the user finds the project id.
    pub hint: &'static str,
}

/// How one vendor serves one resource.
pub struct ResourceSpec<R> {
    /// The endpoint, as `leads vendors` shows it.
    pub endpoint: &'static str,
    /// How it pages, in a few words.
    pub paging: &'static str,
    pub dates: DateFilter,
    pub session: SessionFilter,
    /// The values `--source` accepts (matched ignoring case, sent as
    /// written here); `None`: the vendor cannot filter by source.
    pub sources: Option<&'static [&'static str]>,
    /// `--page-size`: `None` when the vendor's pages have no size.
    pub page_size: Option<PageSize>,
    /// The listing for one settled job, from the bookmark if there is one.
    pub plan: fn(&Job, Option<&Bookmark>) -> Result<Listing<R>>,
}

/// What `leads vendors` and the usage checks read of a resource.
#[derive(Debug, Clone, Copy)]
pub struct ResourceInfo {
    pub endpoint: &'static str,
    pub paging: &'static str,
    pub dates: DateFilter,
    pub session: SessionFilter,
    pub sources: Option<&'static [&'static str]>,
    pub page_size: Option<PageSize>,
}

impl<R> ResourceSpec<R> {
    fn info(&self) -> ResourceInfo {
        ResourceInfo {
            endpoint: self.endpoint,
            paging: self.paging,
            dates: self.dates,
            session: self.session,
            sources: self.sources,
            page_size: self.page_size,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub default: u32,
    pub max: u32,
}

/// How `--since`/`--until` reach the vendor (they are always re-applied
/// exactly on the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFilter {
    /// Sent as whole days.
    ServerDays,
    /// Sent as exact instants.
    ServerExact,
    /// Not sent: the vendor cannot filter by date.
    ClientOnly,
}

/// What `--session` means for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFilter {
    /// The vendor has no sessions: `--session` is a usage error.
    Unsupported,
    /// Matched on the record's `session_id`; `server` when the vendor is
    /// asked for it too, `numeric` when its session ids are numbers.
    SessionId { server: bool, numeric: bool },
    /// The conversation is the session: matched on the record's `id`, and
    /// sent to the vendor.
    RecordId,
}

/// A body parser: pure, run on a worker task.
pub type Parse<T> = Arc<dyn Fn(&[u8]) -> std::result::Result<Page<T>, BodyError> + Send + Sync>;

impl<R> Clone for Items<R> {
    fn clone(&self) -> Self {
        Items {
            split: self.split,
            map: self.map.clone(),
        }
    }
}

/// How a numbered page's body becomes records.
pub enum PageParse<R> {
    /// All of them at once.
    Whole(Parse<R>),
    /// One item at a time, when the walk reaches it.
    Items(Items<R>),
}

/// A page body split into its items before any is mapped, each item mapped
/// when the walk reaches it: a page of conversations with large messages
/// then costs its body and one conversation, not its body and all of its
/// records.
pub struct Items<R> {
    /// Where the page's items are in the body. Every way a body can be
    /// wrong is found here, before any of its records is handed over.
    pub split: SplitItems,
    /// One item, from its bytes.
    pub map: MapItem<R>,
}

/// Where a body's items are (`Items::split`).
pub type SplitItems = fn(&[u8]) -> std::result::Result<Vec<Range<usize>>, BodyError>;

/// One item of a body, mapped (`Items::map`).
pub type MapItem<R> = Arc<dyn Fn(&[u8]) -> std::result::Result<R, BodyError> + Send + Sync>;

/// A parser fed one body as it arrives, for answers that do not page (one
/// NeoAgent window can hold a whole date range): records are mapped as
/// their bytes arrive, so memory does not grow with the body.
pub trait Incremental<R>: Send {
    /// The next part of the body; records completed by it go to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<R>) -> std::result::Result<(), BodyError>;
    /// The body ended: the rest of the records, or why the body as a
    /// whole is not what the vendor documents.
    fn finish(&mut self, out: &mut Vec<R>) -> std::result::Result<(), BodyError>;
}

/// A new incremental parser, one per body.
pub type Streamed<R> = Arc<dyn Fn() -> Box<dyn Incremental<R>> + Send + Sync>;

/// The next page's token read from a body before it is parsed, so the
/// next request leaves sooner: `Some(token or None for the end)` when the
/// scan is sure, `None` when only the full parse can tell.
pub type PeekToken = fn(&[u8]) -> Option<Option<String>>;

/// The request for a token (`None`: the first page).
pub type TokenRequest = Arc<dyn Fn(Option<&str>) -> RequestSpec + Send + Sync>;

/// One listing to walk, in output order.
pub enum Listing<R> {
    /// Pages 1, 2, 3...: several in flight, yielded in page order, ending
    /// on a page shorter than `page_size`.
    Numbered(Numbered<R>),
    /// A fixed list of requests (date windows), several in flight, each
    /// body parsed as it arrives once the writer reaches it.
    Requests {
        requests: Vec<(String, RequestSpec)>,
        parse: Streamed<R>,
    },
    /// A token or cursor chain: strictly sequential.
    Tokens(Tokens<R>),
    /// Parents listed by tokens (or given), then each parent's children,
    /// several parents at a time, each assembled into one record.
    FanOut { parents: Parents<R> },
    /// Walk `first`; if its first page fails with an error `when` accepts,
    /// warn once and walk `then` instead.
    Fallback {
        first: Box<Listing<R>>,
        when: fn(&Error) -> bool,
        warning: String,
        then: Box<Listing<R>>,
    },
}

pub struct Numbered<R> {
    pub request: Arc<dyn Fn(u64) -> RequestSpec + Send + Sync>,
    pub parse: PageParse<R>,
    pub page_size: u64,
    /// The listing is newest first, so a record added at its head while
    /// pages are in flight shifts the others: page 1 is fetched alone
    /// first and once more at the end to see whether that happened.
    pub head_moves: bool,
    /// The request to send instead when the server answers 405 (a vendor
    /// revision that takes POST); once used, used for every page.
    pub on_405: Option<fn(&RequestSpec) -> RequestSpec>,
}

pub struct Tokens<T> {
    /// The request for a token (`None`: the first page).
    pub request: TokenRequest,
    pub parse: Parse<T>,
    /// How a page is named in messages: `page N` or `session S page N`.
    pub what: String,
    pub peek: Option<PeekToken>,
}

pub enum Parents<R> {
    Listed(Tokens<Children<R>>),
    Given(Vec<Children<R>>),
}

/// One parent: its children's listing, and how they become one record.
pub struct Children<R> {
    /// The parent in messages (`session S`).
    pub what: String,
    pub listing: Tokens<Value>,
    pub assemble: Box<dyn FnOnce(Vec<Value>) -> R + Send>,
}

impl<R> Numbered<R> {
    pub fn new(
        request: impl Fn(u64) -> RequestSpec + Send + Sync + 'static,
        parse: impl Fn(&[u8]) -> std::result::Result<Page<R>, BodyError> + Send + Sync + 'static,
        page_size: u32,
    ) -> Numbered<R> {
        Numbered::with(request, PageParse::Whole(Arc::new(parse)), page_size)
    }

    /// Pages whose items are mapped one at a time (`Items`).
    pub fn of_items(
        request: impl Fn(u64) -> RequestSpec + Send + Sync + 'static,
        split: SplitItems,
        map: impl Fn(&[u8]) -> std::result::Result<R, BodyError> + Send + Sync + 'static,
        page_size: u32,
    ) -> Numbered<R> {
        let items = Items {
            split,
            map: Arc::new(map),
        };
        Numbered::with(request, PageParse::Items(items), page_size)
    }

    fn with(
        request: impl Fn(u64) -> RequestSpec + Send + Sync + 'static,
        parse: PageParse<R>,
        page_size: u32,
    ) -> Numbered<R> {
        Numbered {
            request: Arc::new(request),
            parse,
            page_size: u64::from(page_size.max(1)),
            head_moves: false,
            on_405: None,
        }
    }
}

impl<T> Tokens<T> {
    pub fn new(
        request: impl Fn(Option<&str>) -> RequestSpec + Send + Sync + 'static,
        parse: impl Fn(&[u8]) -> std::result::Result<Page<T>, BodyError> + Send + Sync + 'static,
    ) -> Tokens<T> {
        Tokens {
            request: Arc::new(request),
            parse: Arc::new(parse),
            what: "page".to_owned(),
            peek: None,
        }
    }
}
