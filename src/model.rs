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

/// The bytes of [`format_timestamp`] for the years 0 to 9999, written by
/// hand: this is on the hot path of every export (chrono's formatter goes
/// through `fmt` machinery and an allocation). `None` for other years,
/// which chrono spells with a sign.
pub fn timestamp_bytes(t: &DateTime<Utc>) -> Option<[u8; 27]> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    // A leap second shows as second 60, as chrono shows it.
    let (second, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, second);
    put(20, 6, nanos / 1000);
    Some(out)
}

#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct Lead {
    pub id: String,
    pub vendor: Vendor,
    pub agent_id: String,
    /// `lead` or `appointment` (borrowed: no allocation per record for the
    /// two usual values).
    pub kind: Cow<'static, str>,
    pub created_at: Option<DateTime<Utc>>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub source: Option<String>,
    pub page_url: Option<String>,
    pub ip_address: Option<String>,
    pub session_id: Option<String>,
    pub message: Option<String>,
    pub fields: Map<String, Value>,
    pub raw: Option<Value>,
}

impl Lead {
    /// A lead with every optional field empty; vendor mappers fill it in.
    pub fn new(vendor: Vendor, agent_id: &str, id: String) -> Lead {
        Lead {
            id,
            vendor,
            agent_id: agent_id.to_owned(),
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
            fields: Map::new(),
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
    pub fields: Map<String, Value>,
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
            fields: Map::new(),
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
    fn fields(&self) -> &Map<String, Value>;
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
        fn fields(&self) -> &Map<String, Value> {
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

/// Vendor values become model values the same way everywhere: strings are
/// trimmed, and absent, `null` or empty values are `None`.
pub fn clean_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => {
            let s = s.trim();
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
        Value::String(s) => !s.trim().is_empty(),
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
