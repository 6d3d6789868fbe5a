//! The vendor registry, and the vendors' wire formats. Each vendor module
//! describes itself once (a `plan::VendorSpec`: names, key and base-URL
//! variables, auth, what each resource honours, hints, and its plans) and
//! otherwise only builds requests and turns response bodies into
//! common-model records. No I/O happens here, so every module is tested on
//! the payloads in `fixtures/`; the fetcher (`crate::fetch`) and the paging
//! driver (`crate::driver`) own the network.
//!
//! Adding a vendor: its module, a variant of `Vendor`, and a line in
//! `spec` below.

mod borrowed;
pub mod chatbase;
pub mod chatzuri;
pub mod neoagent;
pub mod plan;
pub mod robofy;
pub mod stream;

pub(crate) use borrowed::*;

pub use crate::model::Vendor;

/// The registry: each vendor's description.
pub fn spec(vendor: Vendor) -> &'static plan::VendorSpec {
    match vendor {
        Vendor::Chatzuri => &chatzuri::VENDOR,
        Vendor::Chatbase => &chatbase::VENDOR,
        Vendor::Neoagent => &neoagent::VENDOR,
        Vendor::Robofy => &robofy::VENDOR,
    }
}

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ErrorKind;
use crate::model::{Fields, Message, carries_data, clean_string, trim_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

/// How the key travels in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer KEY` (Chatzuri, Robofy).
    Bearer,
    /// `Authorization: KEY`, no scheme word (NeoAgent).
    Raw,
}

/// One HTTP request, described without doing it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub method: HttpMethod,
    /// Appended to the base URL; starts with `/`; path segments that come
    /// from the user are already percent-encoded.
    pub path: String,
    /// Query parameters in order; absent values are simply not here.
    pub query: Vec<(&'static str, String)>,
    pub json_body: Option<Value>,
    /// Short name of the endpoint for messages (`get-leads`, `LeadList`, ...).
    pub endpoint: &'static str,
}

impl RequestSpec {
    pub fn get(endpoint: &'static str, path: String) -> RequestSpec {
        RequestSpec {
            method: HttpMethod::Get,
            path,
            query: Vec::new(),
            json_body: None,
            endpoint,
        }
    }

    pub fn post_json(endpoint: &'static str, path: String, body: Value) -> RequestSpec {
        RequestSpec {
            method: HttpMethod::Post,
            path,
            query: Vec::new(),
            json_body: Some(body),
            endpoint,
        }
    }
}

/// What one response body held.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<R> {
    pub records: Vec<R>,
    /// How many records the vendor returned on this page, before any
    /// client-side filtering: "short page means the end" counts these.
    pub returned: usize,
    /// Robofy's cursor for the next page; `None` (missing, null or empty)
    /// means the end.
    pub next_token: Option<String>,
    /// How many records the whole listing holds, when the vendor says
    /// (Chatbase's `pagination.total`): for the progress indicator only,
    /// never to decide where the listing ends.
    pub total: Option<u64>,
}

/// Why a 2xx body could not be turned into a page.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON, or not the expected shape; says what was expected.
    Malformed(String),
    /// The vendor said no inside a success status (NeoAgent `Success:
    /// false`): `kind` is classified from the vendor's code.
    Refused {
        kind: ErrorKind,
        code: Option<i64>,
        message: String,
    },
}

/// How the records of one run are mapped: the agent as the user gave it,
/// and whether the vendor's original record is kept as `raw`.
#[derive(Debug, Clone)]
pub struct MapContext {
    /// The vendor the records are from (a vendor may read another's format).
    pub vendor: Vendor,
    pub agent_id: String,
    pub keep_raw: bool,
}

/// A JSON object's members as raw slices, in document order, duplicates
/// kept: looking a name up is then the same in every run (a hash map's
/// order is not), and the documented spelling can win over another casing.
#[derive(Debug, Default)]
pub struct ObjectEntries<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> ObjectEntries<'a> {
    /// The member spelled exactly `name`, the last if it is repeated (as a
    /// `serde_json::Value` object keeps it).
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, raw)| *raw)
    }

    /// The member spelled exactly `name`, else the first whose name matches
    /// it ignoring ASCII case.
    pub fn get_ci(&self, name: &str) -> Option<&'a RawValue> {
        self.position_ci(name).map(|i| self.0[i].1)
    }

    /// Where [`get_ci`](Self::get_ci) finds `name`.
    fn position_ci(&self, name: &str) -> Option<usize> {
        let mut other_case = None;
        for (i, (key, _)) in self.0.iter().enumerate() {
            if key == name {
                return Some(i);
            }
            if other_case.is_none() && key.eq_ignore_ascii_case(name) {
                other_case = Some(i);
            }
        }
        other_case
    }

    /// Merges repeated names as serde_json's `Map` does (the first place,
    /// the last value), so a record reads as it did when it was parsed into
    /// a `Map`. A dropped value must still be valid JSON text, as it had to
    /// be then.
    fn merge_repeated(&mut self) -> Result<(), serde_json::Error> {
        let mut i = 1;
        while i < self.0.len() {
            let (earlier, rest) = self.0.split_at_mut(i);
            let (key, value) = &rest[0];
            match earlier.iter_mut().find(|(k, _)| k == key) {
                Some(first) => {
                    serde_json::from_str::<Value>(first.1.get())?;
                    first.1 = value;
                    self.0.remove(i);
                }
                None => i += 1,
            }
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for ObjectEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Entries<'a> {
            type Value = ObjectEntries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                // Records have about ten members: one allocation.
                let mut entries = Vec::with_capacity(16);
                while let Some(BorrowedText(key)) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(ObjectEntries(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// A JSON string, borrowed from the input unless it had escapes (serde's
/// own `Cow<str>` always copies).
pub(crate) struct BorrowedText<'de>(pub Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for BorrowedText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = BorrowedText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// One record (an element of a vendor's list, as JSON text) read into
/// its members, repeated names merged as a `Map` merges them. Anything that
/// is not a JSON object, or holds a string that is not valid text (a lone
/// surrogate escape), is `Malformed` and names the item.
pub(crate) fn record_members<'a>(
    text: &'a str,
    what: &str,
    index: usize,
) -> Result<ObjectEntries<'a>, BodyError> {
    serde_json::from_str::<ObjectEntries>(text)
        .and_then(|mut entries| entries.merge_repeated().map(|()| entries))
        .map_err(|_| not_an_object(what, index))
}

/// The error for item `index` of a list that should hold objects.
pub(crate) fn not_an_object(what: &str, index: usize) -> BodyError {
    BodyError::Malformed(format!(
        "expected each {what} to be a JSON object; item {index} is not"
    ))
}

/// One member's value, read from its raw text without building a tree.
#[derive(Debug, Clone)]
pub(crate) enum RawMember<'a> {
    Null,
    /// A string, unescaped (borrowed unless it had escapes), untrimmed.
    Text(Cow<'a, str>),
    /// A number, boolean, array or object, as sent.
    Other(&'a RawValue),
}

impl<'a> RawMember<'a> {
    /// Fails only on a string that is not valid text (a lone surrogate),
    /// which a `Value` would not have taken either.
    pub(crate) fn read(raw: &'a RawValue) -> Result<RawMember<'a>, serde_json::Error> {
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            Some(b'n') => RawMember::Null,
            Some(b'"') => match text.get(1..text.len() - 1) {
                Some(inner) if !inner.contains('\\') => RawMember::Text(Cow::Borrowed(inner)),
                _ => RawMember::Text(Cow::Owned(serde_json::from_str(text)?)),
            },
            _ => RawMember::Other(raw),
        })
    }

    /// `carries_data` without building the value.
    pub(crate) fn carries_data(&self) -> bool {
        match self {
            RawMember::Null => false,
            RawMember::Text(text) => !trim_text(text).is_empty(),
            // `[]` and `{}`, with any whitespace inside, hold nothing.
            RawMember::Other(raw) => match raw.get().as_bytes() {
                [b'[' | b'{', inside @ ..] => inside
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| !matches!(b, b']' | b'}')),
                _ => true,
            },
        }
    }

    /// `clean_string` of the value: text trimmed, empty or null `None`.
    pub(crate) fn into_model_string(self) -> Result<Option<String>, serde_json::Error> {
        Ok(match self {
            RawMember::Null => None,
            RawMember::Text(text) => Some(trimmed_owned(text)).filter(|t| !t.is_empty()),
            // An integer is spelled as a `Value` would spell it; other
            // numbers are normalised by serde_json (`1E5` is `1e+5`), so
            // they, `true`, `false` and lists go through one.
            RawMember::Other(raw) if raw.get().bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
                Some(raw.get().to_owned())
            }
            RawMember::Other(raw) => clean_string(Some(&serde_json::from_str(raw.get())?)),
        })
    }

    /// The value for `fields`: a string trimmed, anything else as a `Value`
    /// reads it (exact numbers included).
    pub(crate) fn into_field_value(self) -> Result<Value, serde_json::Error> {
        Ok(match self {
            RawMember::Null => Value::Null,
            RawMember::Text(text) => Value::String(trimmed_owned(text)),
            RawMember::Other(raw) => serde_json::from_str(raw.get())?,
        })
    }

    /// What the value says as a timestamp (`Stamp::of`).
    pub(crate) fn stamp(&self) -> Result<Stamp, serde_json::Error> {
        Ok(match self {
            RawMember::Null => Stamp::Absent,
            RawMember::Text(text) => Stamp::of_text(text),
            RawMember::Other(raw) => Stamp::of(Some(&serde_json::from_str(raw.get())?)),
        })
    }
}

/// `text` trimmed, copied only when it is borrowed or trimming changed it.
fn trimmed_owned(text: Cow<'_, str>) -> String {
    match text {
        Cow::Owned(s) if trim_text(&s).len() == s.len() => s,
        other => trim_text(&other).to_owned(),
    }
}

/// [`Picker`] for a record read into raw members ([`record_members`]):
/// the same lookup (the exact spelling, else the first in another ASCII
/// case), the same "used" rule, and `rest` in document order; each value is
/// read once, when a rule asks for it.
pub(crate) struct MemberPicker<'r, 'a> {
    record: &'r ObjectEntries<'a>,
    /// Bit i: member i was mapped (members past 128 go to `used_far`).
    used: u128,
    used_far: Vec<usize>,
}

impl<'r, 'a> MemberPicker<'r, 'a> {
    pub(crate) fn new(record: &'r ObjectEntries<'a>) -> Self {
        MemberPicker {
            record,
            used: 0,
            used_far: Vec::new(),
        }
    }

    fn is_used(&self, i: usize) -> bool {
        match u32::try_from(i) {
            Ok(bit) if bit < 128 => self.used & (1 << bit) != 0,
            _ => self.used_far.contains(&i),
        }
    }

    fn mark(&mut self, i: usize) {
        match u32::try_from(i) {
            Ok(bit) if bit < 128 => self.used |= 1 << bit,
            _ => self.used_far.push(i),
        }
    }

    /// `name`'s raw value, without counting it as mapped.
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.record.get_ci(name)
    }

    /// As [`Picker::take`]: the first of `names` whose value carries data.
    pub(crate) fn take(
        &mut self,
        names: &[&str],
    ) -> Result<Option<RawMember<'a>>, serde_json::Error> {
        for name in names {
            if let Some(i) = self.record.position_ci(name)
                && !self.is_used(i)
            {
                self.mark(i);
                let value = RawMember::read(self.record.0[i].1)?;
                if value.carries_data() {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }

    /// `take`, cleaned into a model string.
    pub(crate) fn string(&mut self, names: &[&str]) -> Result<Option<String>, serde_json::Error> {
        match self.take(names)? {
            Some(value) => value.into_model_string(),
            None => Ok(None),
        }
    }

    /// As [`Picker::rest`]: the members not mapped so far that carry data,
    /// in document order, top-level strings trimmed.
    pub(crate) fn rest(&self) -> impl Iterator<Item = Result<(String, Value), serde_json::Error>> {
        self.record
            .0
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.is_used(*i))
            .filter_map(|(_, (key, raw))| match RawMember::read(raw) {
                Ok(value) if value.carries_data() => Some(
                    value
                        .into_field_value()
                        .map(|value| (key.clone().into_owned(), value)),
                ),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
    }
}

/// Whether a path segment would be read as `.` or `..` (URL parsers treat
/// `%2e` as a dot too), so it cannot be sent as an id in a path.
pub fn is_dot_segment(text: &str) -> bool {
    let lower = text.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

/// Percent-encodes one path segment that comes from the user.
pub fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// How much of a body an excerpt shows, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// The first [`EXCERPT_CHARS`] characters of `text`, which must already be
/// printable (see `secret::printable`): cutting first could leave part of a
/// key, or half an escape, behind.
pub fn excerpt(text: &str) -> String {
    let flat = text.trim();
    match flat.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat.to_owned(),
    }
}

/// The machine-readable code of a vendor error body (`{error: {code}}`).
pub fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.get("code")?.as_str()?.trim();
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then(|| code.to_owned())
}

/// The human message inside a vendor error body, if it has one:
/// Robofy `{message, error:{code, detail}}`, NeoAgent `Message`, or a
/// generic `error`/`message`/`detail`.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let error = value.get("error");
    let code = error.and_then(|e| text(e.get("code")));
    let detail = error
        .and_then(|e| text(e.get("detail")).or_else(|| text(e.get("message"))))
        .or_else(|| text(error))
        .or_else(|| text(value.get("Message")))
        .or_else(|| text(value.get("message")))
        .or_else(|| text(value.get("detail")));
    match (code, detail) {
        (Some(code), Some(detail)) => Some(format!("{code}: {detail}")),
        (Some(code), None) => Some(code),
        (None, detail) => detail,
    }
}

// ---------------------------------------------------------------------------
// Helpers the vendor mappers share. They live here so the three modules read
// keys, ids and timestamps the same way.

/// Parses a body as JSON; `expected` says what the caller wanted, so the
/// error reads on its own. A UTF-8 byte-order mark is tolerated because some
/// servers send one and it is not data.
pub(crate) fn parse_json(body: &[u8], expected: &str) -> Result<Value, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body)
        .map_err(|e| BodyError::Malformed(format!("body is not JSON ({e}); expected {expected}")))
}

/// Follows a path of object keys (exact spelling).
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// The key of `obj` that equals `name` ignoring ASCII case. Vendors mix
/// PascalCase and camelCase spellings of one key (NeoAgent `SessionID` /
/// `sessionId`), and a key read under any spelling is the same datum.
fn find_key<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<(&'a String, &'a Value)> {
    obj.get_key_value(name)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
}

/// Reads the keys of one vendor record and remembers which were mapped to a
/// model field, so that everything else that carries data ends up in
/// `fields`, in the vendor's key order.
pub(crate) struct Picker<'a> {
    obj: &'a Map<String, Value>,
    used: Vec<&'a str>,
}

impl<'a> Picker<'a> {
    pub(crate) fn new(obj: &'a Map<String, Value>) -> Self {
        Picker {
            obj,
            used: Vec::new(),
        }
    }

    /// The first of `names` (ASCII case-insensitive) whose value carries
    /// data; it counts as mapped. Keys found empty count as mapped too:
    /// they hold nothing `fields` would keep.
    pub(crate) fn take(&mut self, names: &[&str]) -> Option<&'a Value> {
        for name in names {
            if let Some((key, value)) = find_key(self.obj, name)
                && !self.used.contains(&key.as_str())
            {
                self.used.push(key);
                if carries_data(value) {
                    return Some(value);
                }
            }
        }
        None
    }

    /// `take`, cleaned into a model string.
    pub(crate) fn string(&mut self, names: &[&str]) -> Option<String> {
        clean_string(self.take(names))
    }

    /// The keys not mapped so far that carry data. Top-level strings are
    /// trimmed like every model string; anything nested is kept as sent
    /// (`raw` has the untouched original). A record's [`Fields`], or a
    /// message's extras as a `Map`.
    pub(crate) fn rest<T: FromIterator<(String, Value)>>(&self) -> T {
        self.obj
            .iter()
            .filter(|(k, v)| !self.used.contains(&k.as_str()) && carries_data(v))
            .map(|(k, v)| (k.clone(), trimmed(v)))
            .collect()
    }
}

/// A value for `fields`: a string trimmed, anything else unchanged.
pub(crate) fn trimmed(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(trim_text(s).to_owned()),
        other => other.clone(),
    }
}

/// What a vendor timestamp value turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stamp {
    Absent,
    At(DateTime<Utc>),
    /// Present but unreadable: the original text, for `fields.created_at_raw`.
    Unreadable(String),
}

impl Stamp {
    /// Strings go through `parse_vendor_timestamp`; a bare number is read as
    /// Unix time in seconds, milliseconds or microseconds by its magnitude
    /// (some chat backends send numbers for message times), and one that
    /// lands outside 1970-2200 is unreadable rather than a wild date.
    pub(crate) fn of(value: Option<&Value>) -> Stamp {
        let Some(value) = value.filter(|v| carries_data(v)) else {
            return Stamp::Absent;
        };
        let parsed = match value {
            Value::String(s) => return Stamp::of_text(s),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(n), _) => crate::time::parse_epoch_number(n),
                (None, Some(x)) => crate::time::parse_epoch_float(x),
                (None, None) => None,
            },
            _ => None,
        };
        match parsed {
            Some(t) => Stamp::At(t),
            None => Stamp::Unreadable(clean_string(Some(value)).unwrap_or_default()),
        }
    }

    /// A timestamp sent as text, by the rules of [`Stamp::of`] (blank is
    /// absent; unreadable keeps the trimmed text), without a `Value`.
    pub(crate) fn of_text(text: &str) -> Stamp {
        let text = trim_text(text);
        if text.is_empty() {
            return Stamp::Absent;
        }
        match crate::time::parse_vendor_timestamp(text) {
            Some(t) => Stamp::At(t),
            None => Stamp::Unreadable(text.to_owned()),
        }
    }

    /// The model value; an unreadable original goes into `fields` as
    /// `created_at_raw` (the engine warns about records that have one).
    pub(crate) fn apply(self, fields: &mut impl KeyedValues) -> Option<DateTime<Utc>> {
        match self {
            Stamp::Absent => None,
            Stamp::At(t) => Some(t),
            Stamp::Unreadable(raw) => {
                insert_unique(fields, "created_at_raw", Value::String(raw));
                None
            }
        }
    }
}

/// What `insert_unique` and `Stamp::apply` write into: a record's
/// [`Fields`], or a message's extras (a `Map`).
pub(crate) trait KeyedValues {
    fn contains_key(&self, key: &str) -> bool;
    fn insert(&mut self, key: String, value: Value);
}

impl KeyedValues for Fields {
    fn contains_key(&self, key: &str) -> bool {
        Fields::contains_key(self, key)
    }
    fn insert(&mut self, key: String, value: Value) {
        Fields::insert(self, key, value);
    }
}

impl KeyedValues for Map<String, Value> {
    fn contains_key(&self, key: &str) -> bool {
        Map::contains_key(self, key)
    }
    fn insert(&mut self, key: String, value: Value) {
        Map::insert(self, key, value);
    }
}

/// Inserts without overwriting: a key already taken gets `_2`, `_3`, ...
/// appended, so two vendor values under one name are both kept.
pub(crate) fn insert_unique(fields: &mut impl KeyedValues, key: &str, value: Value) {
    let key = free_key(fields, key);
    fields.insert(key, value);
}

/// `key`, or the first of `key_2`, `key_3`, ... not yet in `fields`.
pub(crate) fn free_key(fields: &impl KeyedValues, key: &str) -> String {
    if !fields.contains_key(key) {
        return key.to_owned();
    }
    let mut n = 2;
    loop {
        let candidate = format!("{key}_{n}");
        if !fields.contains_key(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// `prefix` + the first 20 hex digits of SHA-256 over `parts` joined by
/// U+001F (a control character that does not occur in the data). Every
/// synthetic id in the crate is built this way; only the parts differ.
pub(crate) fn synthetic_id(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update("\u{1f}".as_bytes());
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    // By table: `write!("{byte:02x}")` went through the formatting
    // machinery, a tenth of a NeoAgent lead's instructions.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 20);
    id.push_str(prefix);
    for byte in &digest[..10] {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

/// Compact JSON with object keys sorted at every level, so a hash over it
/// does not depend on the order in which the vendor printed the keys.
pub(crate) fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(obj) => {
                let mut keys: Vec<&String> = obj.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&obj[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// One chat message. `roles` maps a lower-cased vendor value to the model's
/// `user`/`assistant`; other values are kept lower-cased, and a message with
/// no role at all gets `unknown` (the model's role is not optional). Keys
/// that are not role, content or time go to `extras`.
pub(crate) fn map_message(
    value: &Value,
    role_keys: &[&str],
    content_keys: &[&str],
    time_keys: &[&str],
    roles: fn(&str) -> Option<&'static str>,
) -> (Message, Map<String, Value>) {
    let Value::Object(obj) = value else {
        // Not an object: the value itself is all there is to say.
        let message = Message {
            role: "unknown".to_owned(),
            content: clean_string(Some(value)),
            created_at: None,
        };
        return (message, Map::new());
    };
    let mut pick = Picker::new(obj);
    let role = pick
        .string(role_keys)
        .map(|r| {
            let lower = r.to_lowercase();
            roles(&lower).map(str::to_owned).unwrap_or(lower)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let content = pick.string(content_keys);
    let stamp = Stamp::of(pick.take(time_keys));
    let mut extras: Map<String, Value> = pick.rest();
    let created_at = stamp.apply(&mut extras);
    (
        Message {
            role,
            content,
            created_at,
        },
        extras,
    )
}

/// Keeps per-message extras (ids, scores, unreadable times) in the
/// conversation's `fields` as `message_fields`, one object per message in
/// message order, only when some message had any.
pub(crate) fn keep_message_extras(fields: &mut Fields, extras: Vec<Map<String, Value>>) {
    if extras.iter().any(|e| !e.is_empty()) {
        let list = extras.into_iter().map(Value::Object).collect();
        insert_unique(fields, "message_fields", Value::Array(list));
    }
}

/// Lists in a body must hold objects; says which item was not one.
pub(crate) fn objects<'a>(
    items: &'a [Value],
    what: &str,
) -> Result<Vec<&'a Map<String, Value>>, BodyError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item.as_object().ok_or_else(|| not_an_object(what, i)))
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, Utc};
    use serde_json::{Map, Value};

    use super::MapContext;

    pub fn ts(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .expect("test timestamp")
                .with_timezone(&Utc),
        )
    }

    pub fn ctx_for(vendor: super::Vendor, agent: &str, keep_raw: bool) -> MapContext {
        MapContext {
            vendor,
            agent_id: agent.to_owned(),
            keep_raw,
        }
    }

    /// A JSON object literal as a `Map`, or as a record's `Fields`.
    pub fn obj<T: From<Map<String, Value>>>(value: Value) -> T {
        match value {
            Value::Object(map) => map.into(),
            other => panic!("not an object: {other}"),
        }
    }

    /// An expected model string: a `String` or a `Text`, as the field is.
    pub fn s<T: for<'a> From<&'a str>>(text: &str) -> Option<T> {
        Some(T::from(text))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn synthetic_ids_hash_parts_joined_by_unit_separator() {
        // printf 'a\x1fb\x1f' | sha256sum
        assert_eq!(
            synthetic_id("x_", &["a", "b", ""]),
            "x_023b8059a924f728a215"
        );
        assert_ne!(
            synthetic_id("x_", &["ab", ""]),
            synthetic_id("x_", &["a", "b"])
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!([{"b": 1, "a": {"d": 2, "c": 3}}]);
        assert_eq!(canonical_json(&a), r#"[{"a":{"c":3,"d":2},"b":1}]"#);
    }

    #[test]
    fn picker_is_case_insensitive_and_keeps_the_rest_in_order() {
        let record =
            testing::obj(json!({"Zed": 1, "sessionId": 5, "Name": " ", "x": null, "a": " kept "}));
        let mut pick = Picker::new(&record);
        assert_eq!(pick.string(&["SessionID"]), Some("5".to_owned()));
        assert_eq!(pick.string(&["name"]), None);
        assert_eq!(Value::Object(pick.rest()), json!({"Zed": 1, "a": "kept"}));
        let fields: Fields = pick.rest();
        assert_eq!(Value::from(fields), json!({"Zed": 1, "a": "kept"}));
    }

    #[test]
    fn member_picker_reads_a_raw_record_as_picker_reads_its_map() {
        let text = r#"{"Zed":1,"sessionId":5,"Name":" ","x":null,"a":" kept ","Zed":[2],"e":[ ],"n":"\u0041 "}"#;
        let record = record_members(text, "record", 0).unwrap();
        let mut raw_pick = MemberPicker::new(&record);
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        let mut pick = Picker::new(&map);
        for names in [&["SessionID"][..], &["name", "a"], &["missing"]] {
            assert_eq!(
                raw_pick.string(names).unwrap(),
                pick.string(names),
                "{names:?}"
            );
        }
        let rest: Map<String, Value> = raw_pick.rest().map(Result::unwrap).collect();
        assert_eq!(rest, pick.rest::<Map<String, Value>>());
        assert_eq!(Value::Object(rest), json!({"Zed": [2], "n": "A"}));
    }

    #[test]
    fn insert_unique_never_overwrites() {
        let mut fields = Fields::new();
        insert_unique(&mut fields, "k", json!(1));
        insert_unique(&mut fields, "k", json!(2));
        insert_unique(&mut fields, "k", json!(3));
        assert_eq!(Value::from(fields), json!({"k": 1, "k_2": 2, "k_3": 3}));
        let mut extras = Map::new();
        insert_unique(&mut extras, "k", json!(1));
        insert_unique(&mut extras, "k", json!(2));
        assert_eq!(Value::Object(extras), json!({"k": 1, "k_2": 2}));
    }

    #[test]
    fn stamps_read_text_and_unix_time() {
        assert_eq!(
            Stamp::of(Some(&json!("2025-01-15 10:30:00"))),
            Stamp::At(testing::ts("2025-01-15T10:30:00Z").unwrap())
        );
        assert_eq!(
            Stamp::of(Some(&json!(1736937000))),
            Stamp::At(testing::ts("2025-01-15T10:30:00Z").unwrap())
        );
        assert_eq!(
            Stamp::of(Some(&json!(1736937000123_i64))),
            Stamp::At(testing::ts("2025-01-15T10:30:00.123Z").unwrap())
        );
        assert_eq!(
            Stamp::of(Some(&json!(1736937000123456_i64))),
            Stamp::At(testing::ts("2025-01-15T10:30:00.123456Z").unwrap())
        );
        assert_eq!(
            Stamp::of(Some(&json!(1736937000.5))),
            Stamp::At(testing::ts("2025-01-15T10:30:00.5Z").unwrap())
        );
        assert_eq!(
            Stamp::of(Some(&json!(32503680000_i64))),
            Stamp::Unreadable("32503680000".to_owned()),
            "seconds in the year 3000 are not a time"
        );
        assert_eq!(
            Stamp::of(Some(&json!(-5))),
            Stamp::Unreadable("-5".to_owned())
        );
        assert_eq!(
            Stamp::of(Some(&json!(" soon "))),
            Stamp::Unreadable("soon".to_owned())
        );
        assert_eq!(Stamp::of(Some(&json!(""))), Stamp::Absent);
        assert_eq!(Stamp::of(None), Stamp::Absent);
    }

    #[test]
    fn non_json_bodies_are_malformed() {
        for body in [&b""[..], b"<html>502</html>", b"{\"data\": ["] {
            assert!(matches!(
                parse_json(body, "x"),
                Err(BodyError::Malformed(_))
            ));
        }
        assert_eq!(parse_json(b"\xEF\xBB\xBF[]", "x"), Ok(json!([])));
    }
}
