//! One export, settled: the job (which source, which resource, which
//! bounds), the client-side filters and bookmark every record passes, the
//! run's counters and its set of ids already written. The vendor's plan
//! for a job comes from the registry (`crate::vendors`); the driver
//! (`crate::driver`) walks it.

use std::hash::BuildHasher;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::error::Result;
use crate::fetch::Fetcher;
use crate::model::{Conversation, Lead, Record, Resource, Vendor};
use crate::time::DayRange;
use crate::vendors::MapContext;
use crate::vendors::plan::{ResourceSpec, SessionFilter, VendorSpec};

/// Client-side filters, re-applied to every record whatever the vendor did.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub session: Option<String>,
    /// `--source`, as the vendor spells each value.
    pub channels: Vec<String>,
    pub limit: Option<u64>,
}

/// Where an incremental run left off for one source (docs/SPEC.md section 7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bookmark {
    pub created_at: Option<DateTime<Utc>>,
    pub ids: Vec<String>,
}

/// One settled export of one resource from one source. Immutable once
/// settled: the bookmark and the endpoint are inputs of the run.
#[derive(Debug, Clone)]
pub struct Job {
    pub vendor: Vendor,
    pub agent: String,
    /// The project the agent belongs to, for vendors that have projects.
    pub project: Option<String>,
    pub resource: Resource,
    pub filters: Filters,
    pub page_size: u32,
    pub concurrency: usize,
    pub max_pages: u64,
    pub window_days: u32,
    pub keep_raw: bool,
    /// "Today" for listings without `--until`.
    pub now: DateTime<Utc>,
}

impl Job {
    pub fn map_context(&self) -> MapContext {
        MapContext {
            vendor: self.vendor,
            agent_id: self.agent.clone(),
            keep_raw: self.keep_raw,
        }
    }

    /// The earliest instant wanted: `--since`, or for an incremental run a
    /// day before the bookmark if that is later.
    pub fn start(&self, bookmark: Option<&Bookmark>) -> Option<DateTime<Utc>> {
        later(self.filters.since, resume_from(bookmark))
    }

    /// The day range sent to a vendor that filters by day: the bounds
    /// widened to whole days, and by `margin` on each side where the vendor
    /// documents neither its zone nor whether the end is inclusive (the
    /// exact bounds are applied on the client anyway).
    pub fn days(&self, bookmark: Option<&Bookmark>, margin: Duration) -> DayRange {
        // Saturating: the bounds may be the extremes chrono can hold.
        let since = self
            .filters
            .since
            .map(|t| t.checked_sub_signed(margin).unwrap_or(t));
        let since = later(since, resume_from(bookmark));
        let until = self
            .filters
            .until
            .map(|t| t.checked_add_signed(margin).unwrap_or(t));
        DayRange::covering(since, until)
    }

    pub(crate) fn accepts<R: Record>(&self, record: &R, bookmark: Option<&Bookmark>) -> bool {
        let created = record.created_at();
        if self.filters.since.is_some() || self.filters.until.is_some() {
            let Some(created) = created else { return false };
            if self.filters.since.is_some_and(|since| created < since)
                || self.filters.until.is_some_and(|until| created > until)
            {
                return false;
            }
        }
        if let Some(session) = &self.filters.session {
            let matched = match self.vendor.spec().resource(self.resource).session {
                SessionFilter::RecordId => record.id(),
                _ => record.session_id().unwrap_or_default(),
            };
            if matched != session {
                return false;
            }
        }
        if let Some(mark) = bookmark
            && let (Some(mark_time), Some(created)) = (mark.created_at, created)
            && (created < mark_time
                || (created == mark_time && mark.ids.iter().any(|id| id == record.id())))
        {
            return false;
        }
        true
    }
}

/// Where an incremental run starts: a little before its bookmark.
fn resume_from(bookmark: Option<&Bookmark>) -> Option<DateTime<Utc>> {
    bookmark
        .and_then(|b| b.created_at)
        .map(|t| t.checked_sub_signed(BOOKMARK_OVERLAP).unwrap_or(t))
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
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
/// vendor, agent and id so several sources can share it. A record's key is
/// a 64-bit hash of the three, computed in place (no `String` is built per
/// record); two different ids collide among a million with a chance of
/// about 1 in 36 million.
///
/// The hash is foldhash's `quality` variant, not std's SipHash: the ids
/// come from the vendor the user asked for, not from an attacker choosing
/// collisions, so a keyed cryptographic hash buys nothing, and SipHash was
/// 480 instructions of a Chatzuri lead's 12.8k (issue 14). The `quality`
/// variant mixes the result once more than `fast`, which matters here
/// because the hash itself is the identity. Its seed is drawn per set, so
/// no id list can be built in advance to collide.
pub struct SeenIds {
    /// Open addressing with linear probing over the hashes themselves: 0
    /// marks an empty slot, and the length is a power of two kept at most
    /// three quarters full (a new id's probe reads about 2 to 8 slots,
    /// 16-68 bytes, from half to three quarters full; 1M ids take 16 MB,
    /// 3M 32 MB). A std `HashSet` keeps a control byte apart from each
    /// key, so every insert into a set too big for the cache missed twice
    /// (control, then key); here the probe starts at the key's own slot,
    /// usually one cache line (issue 14: the set was 9% of a 1M-lead
    /// Chatzuri export).
    slots: Vec<u64>,
    len: usize,
    hasher: foldhash::quality::RandomState,
}

/// At most this many ids are reserved up front, whatever `--limit` says: a
/// limit far above what the listing holds must not cost memory.
const MOST_RESERVED: usize = 1 << 20;

/// The smallest table, so a run of a few records allocates once.
const FEWEST_SLOTS: usize = 64;

impl Default for SeenIds {
    fn default() -> SeenIds {
        SeenIds::with_capacity(0)
    }
}

impl std::fmt::Debug for SeenIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenIds").field("len", &self.len).finish()
    }
}

impl SeenIds {
    /// A set with room for `expected` ids (up to [`MOST_RESERVED`]), so a
    /// run of known size never grows on the way.
    pub fn with_capacity(expected: u64) -> SeenIds {
        let expected = usize::try_from(expected).unwrap_or(usize::MAX);
        let slots = if expected == 0 {
            0
        } else {
            slots_for(expected.min(MOST_RESERVED))
        };
        SeenIds {
            slots: vec![0; slots],
            len: 0,
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    fn hash(&self, vendor: Vendor, agent: &str, id: &str) -> u64 {
        // 0 marks an empty slot, so the one hash that is 0 shares 1's slot
        // value: a collision as likely as any other pair's.
        self.hasher.hash_one((vendor, agent, id)).max(1)
    }

    /// The hashes of a page's ids into `hashes`, for [`insert_hashed`]
    /// (so an id is hashed once, not again to insert it), with the slot
    /// where each would go read ahead of the inserts. The slots are
    /// random lines of a table larger than the caches (256 KiB for 20,000
    /// ids); read one per record, between a record's other work, each is a
    /// miss on its own (5% of the latency-bound export's CPU, three times
    /// its share of the instructions), while a page's reads in a row
    /// overlap. On x86_64 the read is a prefetch, which no later
    /// instruction waits for (a load kept with `black_box` stalled the
    /// loop on each miss: 1.7% of that export's CPU).
    ///
    /// [`insert_hashed`]: SeenIds::insert_hashed
    pub fn hash_ahead<'a>(
        &self,
        keys: impl Iterator<Item = (Vendor, &'a str, &'a str)>,
        hashes: &mut Vec<u64>,
    ) {
        hashes.clear();
        let mask = self.slots.len().wrapping_sub(1);
        for (vendor, agent, id) in keys {
            let hash = self.hash(vendor, agent, id);
            if let Some(slot) = self.slots.get(hash as usize & mask) {
                read_ahead(slot);
            }
            hashes.push(hash);
        }
    }

    /// Whether the id is new to the run (and now remembered).
    pub fn insert(&mut self, vendor: Vendor, agent: &str, id: &str) -> bool {
        self.insert_hashed(self.hash(vendor, agent, id))
    }

    /// [`insert`](SeenIds::insert) of an id that [`hash_ahead`](SeenIds::hash_ahead)
    /// of this same set hashed.
    pub fn insert_hashed(&mut self, hash: u64) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let inserted = place(&mut self.slots, hash);
        self.len += usize::from(inserted);
        inserted
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn grow(&mut self) {
        let size = slots_for(self.len + 1).max(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        for hash in old.into_iter().filter(|&hash| hash != 0) {
            place(&mut self.slots, hash);
        }
    }
}

/// Brings `slot`'s cache line in without waiting for it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn read_ahead(slot: &u64) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: SSE is part of x86_64, and a prefetch reads nothing the
    // program sees (it cannot fault); `slot` is a live reference anyway.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(slot).cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn read_ahead(slot: &u64) {
    std::hint::black_box(*slot);
}

/// The table length for `count` ids: a power of two they fill to at most
/// three quarters.
fn slots_for(count: usize) -> usize {
    (count.saturating_mul(4) / 3 + 1)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX / 2 + 1)
        .max(FEWEST_SLOTS)
}

/// Puts a nonzero `hash` into a table with at least one empty slot;
/// whether it was not there before.
fn place(slots: &mut [u64], hash: u64) -> bool {
    let mask = slots.len() - 1;
    // foldhash's `quality` output is mixed in every bit, so its low bits
    // serve as the slot.
    let mut index = hash as usize & mask;
    loop {
        match slots[index] {
            0 => {
                slots[index] = hash;
                return true;
            }
            seen if seen == hash => return false,
            _ => index = (index + 1) & mask,
        }
    }
}

/// What receives the records, in order. An `Err` stops the run.
pub type Sink<'a, R> = &'a mut dyn FnMut(&R) -> Result<()>;

/// Exports one resource of one source into `sink`: the vendor's plan for
/// the job, walked by the driver.
pub async fn export<R: Exportable>(
    job: &Job,
    bookmark: Option<&Bookmark>,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: Sink<'_, R>,
) -> Result<RunStats> {
    walk_plan(job, bookmark, bookmark, fetcher, seen, sink).await
}

/// Exports as [`export`] does, from where a database's table leaves off
/// (`--incremental`): `start` (the newest `created_at` stored) sets where
/// the listing starts exactly as a state bookmark does, with the same
/// overlap, but no record is dropped for it: the table upserts whatever
/// comes back.
pub async fn export_from_table<R: Exportable>(
    job: &Job,
    start: Option<&Bookmark>,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: Sink<'_, R>,
) -> Result<RunStats> {
    walk_plan(job, start, None, fetcher, seen, sink).await
}

/// The vendor's plan for the job, starting from `plan_from`, walked by the
/// driver, which drops what `drop_before` says was written before.
async fn walk_plan<R: Exportable>(
    job: &Job,
    plan_from: Option<&Bookmark>,
    drop_before: Option<&Bookmark>,
    fetcher: Arc<Fetcher>,
    seen: &mut SeenIds,
    sink: Sink<'_, R>,
) -> Result<RunStats> {
    let listing = (R::resource_spec(job.vendor.spec()).plan)(job, plan_from)?;
    crate::driver::walk(job, drop_before, listing, fetcher, seen, sink).await
}

/// The two record kinds, each served by its own part of a vendor.
pub trait Exportable: Record + crate::db::Stored {
    fn resource_spec(vendor: &'static VendorSpec) -> &'static ResourceSpec<Self>;
}

impl Exportable for Lead {
    fn resource_spec(vendor: &'static VendorSpec) -> &'static ResourceSpec<Self> {
        &vendor.leads
    }
}

impl Exportable for Conversation {
    fn resource_spec(vendor: &'static VendorSpec) -> &'static ResourceSpec<Self> {
        &vendor.conversations
    }
}

/// How far past the run's clock a record may be dated and still count for
/// the bookmark: vendor clocks and zones are off by hours, not days.
pub const FUTURE_TOLERANCE: Duration = Duration::days(1);

/// How far before the bookmark an incremental run starts, so a record the
/// vendor files a little late (or under a day boundary in another zone) is
/// still fetched; what was written before is dropped by the bookmark's ids.
pub const BOOKMARK_OVERLAP: Duration = Duration::days(1);

/// Cuts `start..=end` into windows of `window_days` that each start on the
/// day the previous one ended.
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
        assert_eq!(seen.len(), 3);
    }

    /// The parts of the key are kept apart: moving characters from the
    /// agent into the id (or the other way) is another key.
    #[test]
    fn seen_ids_do_not_run_agent_and_id_together() {
        let mut seen = SeenIds::default();
        assert!(seen.insert(Vendor::Chatzuri, "ab", "c"));
        assert!(seen.insert(Vendor::Chatzuri, "a", "bc"));
        assert!(seen.insert(Vendor::Chatzuri, "", "abc"));
        assert!(seen.insert(Vendor::Chatzuri, "abc", ""));
        assert!(!seen.insert(Vendor::Chatzuri, "a", "bc"));
    }

    /// Every hash is kept and the table never fills: hashes that start at
    /// the same slot probe past each other (wrapping at the end), and each
    /// id placed is found again after every growth.
    #[test]
    fn seen_id_table_finds_every_hash_again_across_growth() {
        let mut slots = vec![0u64; FEWEST_SLOTS];
        // Hashes that all start at the fourth slot from the end probe past
        // each other and wrap around to the start.
        let home = FEWEST_SLOTS as u64 - 4;
        let crowded: Vec<u64> = (1..=31u64)
            .map(|n| n * FEWEST_SLOTS as u64 + home)
            .collect();
        for &hash in &crowded {
            assert!(place(&mut slots, hash));
        }
        assert_eq!(slots[FEWEST_SLOTS - 1], crowded[3]);
        assert_eq!(slots[0], crowded[4]);
        assert!(crowded.iter().all(|&hash| !place(&mut slots, hash)));
        let mut seen = SeenIds::default();
        for n in 0..10_000u32 {
            assert!(seen.insert(Vendor::Robofy, "demo", &n.to_string()));
            assert!(seen.slots.len() * 3 >= seen.len() * 4);
        }
        assert!((0..10_000u32).all(|n| !seen.insert(Vendor::Robofy, "demo", &n.to_string())));
        assert!(seen.insert(Vendor::Chatbase, "demo", "1"));
        assert_eq!(seen.len(), 10_001);
    }

    /// A million distinct ids, as one large run has them, are all new (no
    /// two collide), and each is found again; the presized set and the
    /// default one agree.
    /// Ids hashed a page ahead and inserted by their hashes get the
    /// answers plain inserts get, before the first insert and after the
    /// table grew, and the vendor stays part of an id.
    #[test]
    fn hashed_ahead_ids_get_the_answers_of_insert() {
        let ids: Vec<String> = (0..300).map(|i| format!("id-{}", i % 200)).collect();
        let keys = || ids.iter().map(|id| (Vendor::Chatzuri, "bot", id.as_str()));
        let mut seen = SeenIds::default();
        let mut hashes = Vec::new();
        // Page by page, as the driver does, the table growing on the way.
        let mut answers = Vec::new();
        for page in ids.chunks(37) {
            seen.hash_ahead(
                page.iter().map(|id| (Vendor::Chatzuri, "bot", id.as_str())),
                &mut hashes,
            );
            assert_eq!(hashes.len(), page.len());
            answers.extend(hashes.iter().map(|&hash| seen.insert_hashed(hash)));
        }
        let mut plain = SeenIds::default();
        let expected: Vec<bool> = keys().map(|(v, a, id)| plain.insert(v, a, id)).collect();
        assert_eq!(answers, expected);
        assert_eq!(
            (seen.len(), answers.iter().filter(|&&new| new).count()),
            (200, 200)
        );
        assert!(keys().all(|(vendor, agent, id)| !seen.insert(vendor, agent, id)));
        seen.hash_ahead(
            std::iter::once((Vendor::Robofy, "bot", "id-1")),
            &mut hashes,
        );
        assert!(
            seen.insert_hashed(hashes[0]),
            "another vendor's id is another id"
        );
    }

    #[test]
    fn seen_ids_tell_a_million_ids_apart() {
        let mut presized = SeenIds::with_capacity(1_000_000);
        let mut grown = SeenIds::default();
        let ids: Vec<String> = (0..1_000_000u32)
            .map(|n| (10_000 + n).to_string())
            .collect();
        for id in &ids {
            assert!(presized.insert(Vendor::Chatzuri, "demo", id), "{id}");
            assert!(grown.insert(Vendor::Chatzuri, "demo", id), "{id}");
        }
        assert_eq!(presized.len(), 1_000_000);
        assert!(
            ids.iter()
                .step_by(997)
                .all(|id| !presized.insert(Vendor::Chatzuri, "demo", id))
        );
        assert_eq!(grown.len(), 1_000_000);
        assert!(
            ids.iter()
                .step_by(991)
                .all(|id| !grown.insert(Vendor::Chatzuri, "demo", id))
        );
        assert_eq!(grown.len(), 1_000_000);
        // A limit far above any listing reserves no more than the cap.
        assert!(SeenIds::with_capacity(u64::MAX).slots.len() <= 2 * MOST_RESERVED);
        // A million ids fit the presized table without growing it.
        assert_eq!(presized.slots.len(), 1 << 21);
    }
}
