//! The common model every vendor is mapped into (docs/SPEC.md section 2). The model
//! holds data and does not format itself: `output::fields` has the field
//! tables that decide key order, columns and cells.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// The platforms `leads` knows; what each one is lives in its module,
/// found through `crate::vendors::spec`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Chatzuri,
    Neoagent,
    Robofy,
    Chatbase,
}

impl Vendor {
    /// Every vendor, in registry order.
    pub fn all() -> &'static [Vendor] {
        <Vendor as clap::ValueEnum>::value_variants()
    }

    pub fn spec(self) -> &'static crate::vendors::plan::VendorSpec {
        crate::vendors::spec(self)
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Human spelling for messages.
    pub fn display_name(self) -> &'static str {
        self.spec().display_name
    }

    pub fn default_base_url(self) -> &'static str {
        self.spec().default_base_url
    }

    pub fn key_env(self) -> &'static str {
        self.spec().key_env
    }

    pub fn base_url_env(self) -> &'static str {
        self.spec().base_url_env
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two kinds of record `leads` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Leads,
    Conversations,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Leads => "leads",
            Resource::Conversations => "conversations",
        }
    }
}

/// RFC 3339 in UTC with `Z` and always exactly six fraction digits
/// (`2025-01-15T10:30:00.000000Z`), so that text order is time order: every
/// timestamp the tool writes is spelled this way.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    match timestamp_bytes(t) {
        Some(bytes) => bytes.iter().map(|&b| char::from(b)).collect(),
        None => t.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// "00" to "99", two bytes each.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The bytes of [`format_timestamp`] for the years 0 to 9999, written by
/// hand: this is on the hot path of every export (chrono's formatter goes
/// through `fmt` machinery and an allocation). `None` for other years,
/// which chrono spells with a sign.
pub fn timestamp_bytes(t: &DateTime<Utc>) -> Option<[u8; 27]> {
    use chrono::{Datelike, Timelike};
    // The accessors of `DateTime<Utc>` each convert to local time first.
    let t = t.naive_utc();
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    // A leap second shows as second 60, as chrono shows it.
    let (second, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    // Two digits at a time from a table: half the divisions.
    let mut pair = |at: usize, value: u32| {
        let value = value as usize % 100 * 2;
        out[at..at + 2].copy_from_slice(&DIGIT_PAIRS[value..value + 2]);
    };
    let micros = nanos / 1000;
    pair(0, year / 100);
    pair(2, year);
    pair(5, t.month());
    pair(8, t.day());
    pair(11, t.hour());
    pair(14, t.minute());
    pair(17, second);
    pair(20, micros / 10_000);
    pair(22, micros / 100);
    pair(24, micros);
    Some(out)
}

/// A record's `fields`: the vendor's other keys and their values, in the
/// order they were first inserted. A small vector, not a hash map: a record
/// has a handful of custom fields, and building and dropping an `IndexMap`
/// for each record (a hash table beside the entries) was a tenth of a lead's
/// cost (issue 14). The methods are those of `serde_json::Map` (with its
/// `preserve_order`) and behave as they do: `insert` of a key already there
/// replaces the value in place and keeps the key's first position, `remove`
/// is `swap_remove`, `shift_remove` keeps the order of the rest. Lookups
/// scan the entries, which is faster than hashing for the sizes vendors send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(Text, Value)>);

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    pub fn with_capacity(capacity: usize) -> Fields {
        Fields(Vec::with_capacity(capacity))
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }

    /// Inserts `value` under `key`; a key already present keeps its place
    /// and gets the new value, and the old one is returned.
    pub fn insert(&mut self, key: impl Into<Text>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.position(&key) {
            Some(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Appends an entry whose key the caller knows is not present yet (a
    /// parser that already checked it): no scan.
    pub(crate) fn push_new(&mut self, key: Text, value: Value) {
        debug_assert!(!self.contains_key(&key), "{key} is already in fields");
        self.0.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_key_value(&self, key: &str) -> Option<(&str, &Value)> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// As `serde_json::Map::remove` with `preserve_order`: the last entry
    /// takes the removed one's place.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.swap_remove(key)
    }

    pub fn swap_remove(&mut self, key: &str) -> Option<Value> {
        let at = self.position(key)?;
        Some(self.0.swap_remove(at).1)
    }

    /// Removes `key`, keeping the order of the others.
    pub fn shift_remove(&mut self, key: &str) -> Option<Value> {
        let at = self.position(key)?;
        Some(self.0.remove(at).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &Value)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&str, &mut Value)> + ExactSizeIterator {
        self.0.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// The entries as a JSON object, in order.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

impl FromIterator<(String, Value)> for Fields {
    /// Duplicate keys as `insert`: the first position, the last value.
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(items: I) -> Fields {
        let mut fields = Fields::new();
        fields.extend(items);
        fields
    }
}

impl Extend<(String, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, items: I) {
        for (key, value) in items {
            self.insert(key, value);
        }
    }
}

impl IntoIterator for Fields {
    type Item = (String, Value);
    type IntoIter =
        std::iter::Map<std::vec::IntoIter<(Text, Value)>, fn((Text, Value)) -> (String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().map(|(k, v)| (k.into_string(), v))
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Text, Value)>,
        fn(&'a (Text, Value)) -> (&'a str, &'a Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Value;
    /// As `serde_json::Map`'s: panics when `key` is absent.
    fn index(&self, key: &str) -> &Value {
        self.get(key)
            .unwrap_or_else(|| panic!("no entry {key:?} in fields"))
    }
}

impl From<Map<String, Value>> for Fields {
    fn from(map: Map<String, Value>) -> Fields {
        // A map's keys are unique already.
        Fields(map.into_iter().map(|(k, v)| (Text::from(k), v)).collect())
    }
}

impl From<Fields> for Map<String, Value> {
    fn from(fields: Fields) -> Map<String, Value> {
        fields.into_iter().collect()
    }
}

impl From<Fields> for Value {
    fn from(fields: Fields) -> Value {
        Value::Object(fields.into())
    }
}

/// The schema of a JSON object, as `Map<String, Value>` has it.
impl schemars::JsonSchema for Fields {
    fn inline_schema() -> bool {
        <Map<String, Value> as schemars::JsonSchema>::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        <Map<String, Value> as schemars::JsonSchema>::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        <Map<String, Value> as schemars::JsonSchema>::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <Map<String, Value> as schemars::JsonSchema>::json_schema(generator)
    }
}

/// Written as the JSON object it stands for.
impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// A model string: stored inline up to 24 bytes (most ids, names,
/// emails and phone numbers), so a record's strings do not each cost an
/// allocation and a free.
pub type Text = compact_str::CompactString;

#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct Lead {
    #[schemars(with = "String")]
    pub id: Text,
    pub vendor: Vendor,
    #[schemars(with = "String")]
    pub agent_id: Text,
    /// `lead` or `appointment` (borrowed: no allocation per record for the
    /// two usual values).
    pub kind: Cow<'static, str>,
    pub created_at: Option<DateTime<Utc>>,
    #[schemars(with = "Option<String>")]
    pub name: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub email: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub phone: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub source: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub page_url: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub ip_address: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub session_id: Option<Text>,
    #[schemars(with = "Option<String>")]
    pub message: Option<Text>,
    pub fields: Fields,
    pub raw: Option<Value>,
}

impl Lead {
    /// A lead with every optional field empty; vendor mappers fill it in.
    pub fn new(vendor: Vendor, agent_id: &str, id: impl Into<Text>) -> Lead {
        Lead {
            id: id.into(),
            vendor,
            agent_id: Text::new(agent_id),
            kind: Cow::Borrowed("lead"),
            created_at: None,
            name: None,
            email: None,
            phone: None,
            source: None,
            page_url: None,
            ip_address: None,
            session_id: None,
            message: None,
            fields: Fields::new(),
            raw: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct Message {
    /// `user`, `assistant`, or the vendor's value lower-cased.
    pub role: String,
    pub content: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct Conversation {
    pub id: String,
    pub vendor: Vendor,
    pub agent_id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub customer: Option<String>,
    pub session_id: Option<String>,
    pub page_url: Option<String>,
    pub messages: Vec<Message>,
    pub fields: Fields,
    pub raw: Option<Value>,
}

impl Conversation {
    pub fn new(vendor: Vendor, agent_id: &str, id: String) -> Conversation {
        Conversation {
            id,
            vendor,
            agent_id: agent_id.to_owned(),
            created_at: None,
            source: None,
            customer: None,
            session_id: None,
            page_url: None,
            messages: Vec::new(),
            fields: Fields::new(),
            raw: None,
        }
    }
}

/// What the export pipeline needs to know about a record, whatever its kind.
pub trait Record: Sized + Send + Sync + 'static {
    const RESOURCE: Resource;

    fn id(&self) -> &str;
    fn created_at(&self) -> Option<DateTime<Utc>>;
    fn session_id(&self) -> Option<&str>;
    fn vendor(&self) -> Vendor;
    fn agent_id(&self) -> &str;
    fn fields(&self) -> &Fields;
}

macro_rules! record_accessors {
    () => {
        fn id(&self) -> &str {
            &self.id
        }
        fn created_at(&self) -> Option<DateTime<Utc>> {
            self.created_at
        }
        fn session_id(&self) -> Option<&str> {
            self.session_id.as_deref()
        }
        fn vendor(&self) -> Vendor {
            self.vendor
        }
        fn agent_id(&self) -> &str {
            &self.agent_id
        }
        fn fields(&self) -> &Fields {
            &self.fields
        }
    };
}

impl Record for Lead {
    const RESOURCE: Resource = Resource::Leads;
    record_accessors!();
}

impl Record for Conversation {
    const RESOURCE: Resource = Resource::Conversations;
    record_accessors!();
}

/// `str::trim`, with a shortcut for the usual text, which starts and ends
/// with a visible ASCII character and so has nothing to trim: the full
/// trim looks for Unicode white space at both ends of every string of every
/// record (issue 14).
#[inline]
pub fn trim_text(text: &str) -> &str {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// A model string from vendor text: trimmed, and copied only when
/// trimming changed it or it was borrowed.
pub fn trimmed_string(text: Cow<'_, str>) -> String {
    match text {
        Cow::Owned(owned) if trim_text(&owned).len() == owned.len() => owned,
        other => trim_text(&other).to_owned(),
    }
}

/// Vendor values become model values the same way everywhere: strings are
/// trimmed, and absent, `null` or empty values are `None`.
pub fn clean_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => {
            let s = trim_text(s);
            (!s.is_empty()).then(|| s.to_owned())
        }
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// Whether a vendor value carries data worth keeping in `fields`.
pub fn carries_data(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !trim_text(s).is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Issue 13: `...07Z` sorted after `...07.5Z`; every timestamp now has
    /// exactly six fraction digits (nanoseconds are cut, not rounded, so a
    /// timestamp never moves into the next second).
    #[test]
    fn timestamps_always_have_six_fraction_digits() {
        let base = Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap();
        for (nanos, expected) in [
            (0, "2025-01-15T10:30:00.000000Z"),
            (1, "2025-01-15T10:30:00.000000Z"),
            (7_000, "2025-01-15T10:30:00.000007Z"),
            (120_000_000, "2025-01-15T10:30:00.120000Z"),
            (500_000_000, "2025-01-15T10:30:00.500000Z"),
            (512_302_000, "2025-01-15T10:30:00.512302Z"),
            (512_302_001, "2025-01-15T10:30:00.512302Z"),
            (999_999_999, "2025-01-15T10:30:00.999999Z"),
        ] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(format_timestamp(&t), expected, "{nanos}");
        }
        // The hand-written spelling is chrono's, over the whole range.
        for seconds in [
            -62_167_219_200, // 0000-01-01
            -1,
            0,
            951_782_400, // 2000-02-29
            1_736_937_000,
            253_402_300_799, // 9999-12-31T23:59:59
        ] {
            for nanos in [0, 1_000, 999_999_999, 123_456_789, 1_500_000_000] {
                let Some(t) = DateTime::<Utc>::from_timestamp(seconds, nanos) else {
                    continue;
                };
                assert_eq!(
                    format_timestamp(&t),
                    t.to_rfc3339_opts(SecondsFormat::Micros, true),
                    "{seconds} {nanos}"
                );
            }
        }
        // And at a few thousand times spread over the range, every digit
        // pair taking many values.
        let (first, last) = (-62_167_219_200i64, 253_402_300_799i64);
        for step in 0..5_000i64 {
            let seconds = first + (last - first) / 5_000 * step + step * 7_919;
            let nanos = u32::try_from(step * 199_999 % 1_000_000_000).unwrap();
            let t = DateTime::<Utc>::from_timestamp(seconds.min(last), nanos).unwrap();
            assert_eq!(
                format_timestamp(&t),
                t.to_rfc3339_opts(SecondsFormat::Micros, true),
                "{seconds} {nanos}"
            );
        }
        let far = DateTime::<Utc>::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(timestamp_bytes(&far), None);
        assert_eq!(format_timestamp(&far), "+10000-01-01T00:00:00.000000Z");
        let mut spelled: Vec<String> = [500_000_000, 0, 7_000]
            .iter()
            .map(|n| format_timestamp(&(base + chrono::Duration::nanoseconds(*n))))
            .collect();
        spelled.sort();
        assert_eq!(spelled[0], "2025-01-15T10:30:00.000000Z");
        assert_eq!(spelled[2], "2025-01-15T10:30:00.500000Z");
    }

    /// `Fields` behaves as the `serde_json::Map` (with `preserve_order`) it
    /// replaced: the same insertion order and duplicate-key rule, checked
    /// against the map itself on one sequence of operations.
    #[test]
    fn fields_keep_the_order_and_duplicate_rule_of_the_map_they_replace() {
        let ops: [(&str, Value); 6] = [
            ("b", Value::from(1)),
            ("a", Value::from("x")),
            ("c", Value::Null),
            ("a", Value::from("second")),
            ("d", Value::from(true)),
            ("b", Value::from(2)),
        ];
        let mut fields = Fields::new();
        let mut map = Map::new();
        for (key, value) in ops.iter().cloned() {
            assert_eq!(
                fields.insert(key.to_owned(), value.clone()),
                map.insert(key.to_owned(), value)
            );
        }
        let keys: Vec<&str> = fields.keys().collect();
        assert_eq!(keys, ["b", "a", "c", "d"], "first position, last value");
        assert_eq!(fields.get("a"), Some(&Value::from("second")));
        assert_eq!(fields["b"], Value::from(2));
        assert_eq!(fields.to_map(), map);
        assert_eq!(Value::from(fields.clone()), Value::Object(map.clone()));
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        assert_eq!(fields.len(), 4);
        assert!(fields.contains_key("c") && !fields.contains_key("C"));
        assert_eq!(fields.get("zz"), None);

        // Collecting keeps the first position and the last value too.
        let collected: Fields = ops
            .iter()
            .cloned()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(collected, fields);
        assert_eq!(Fields::from(map.clone()), fields);

        // `remove` is the map's swap_remove; `shift_remove` keeps the order.
        let mut swapped = fields.clone();
        assert_eq!(swapped.remove("b"), map.clone().remove("b"));
        let keys: Vec<&str> = swapped.keys().collect();
        assert_eq!(keys, ["d", "a", "c"]);
        let mut shifted = fields.clone();
        assert_eq!(shifted.shift_remove("b"), Some(Value::from(2)));
        let keys: Vec<&str> = shifted.keys().collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(shifted.shift_remove("b"), None);

        let empty = Fields::default();
        assert!(empty.is_empty() && empty.iter().next().is_none());
    }

    #[test]
    fn the_trim_shortcut_is_str_trim() {
        for text in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "ab",
            "a b",
            "\u{a0}a",
            "a\u{a0}",
            "\u{3000}x\u{3000}",
            "\u{2028}",
            "x\u{85}",
            "\ta\n",
            "é",
            "é ",
            " é",
            "~!",
            "\u{7f}a",
            "a\u{7f}",
            "محمد علي",
            "Zoë",
            "\u{feff}a",
        ] {
            assert_eq!(trim_text(text), text.trim(), "{text:?}");
            for owned in [Cow::Owned(text.to_owned()), Cow::Borrowed(text)] {
                assert_eq!(trimmed_string(owned), text.trim(), "{text:?}");
            }
        }
    }

    #[test]
    fn clean_string_maps_empty_to_none_and_trims() {
        assert_eq!(
            clean_string(Some(&Value::from("  a b "))),
            Some("a b".into())
        );
        assert_eq!(clean_string(Some(&Value::from(""))), None);
        assert_eq!(clean_string(Some(&Value::Null)), None);
        assert_eq!(clean_string(None), None);
        assert_eq!(
            clean_string(Some(&Value::from(31305))),
            Some("31305".into())
        );
    }
}
