//! The common model every vendor is mapped into (docs/SPEC.md section 2). Field order
//! here is the order of keys in JSON output and of columns in CSV.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// RFC 3339 in UTC with `Z`; fractional seconds only when there are any
/// (3, 6 or 9 digits).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn serialize_timestamp<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_timestamp(t)),
        None => s.serialize_none(),
    }
}

/// Records are also read back, from the spool files of a multi-source run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: String,
    pub vendor: Vendor,
    pub agent_id: String,
    /// `lead` or `appointment` (borrowed: no allocation per record for the
    /// two usual values).
    pub kind: Cow<'static, str>,
    #[serde(
        serialize_with = "serialize_timestamp",
        deserialize_with = "deserialize_timestamp"
    )]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user`, `assistant`, or the vendor's value lower-cased.
    pub role: String,
    pub content: Option<String>,
    #[serde(
        serialize_with = "serialize_timestamp",
        deserialize_with = "deserialize_timestamp"
    )]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub vendor: Vendor,
    pub agent_id: String,
    #[serde(
        serialize_with = "serialize_timestamp",
        deserialize_with = "deserialize_timestamp"
    )]
    pub created_at: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub customer: Option<String>,
    pub session_id: Option<String>,
    pub page_url: Option<String>,
    pub messages: Vec<Message>,
    pub fields: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

fn deserialize_timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom),
    }
}

/// What the export pipeline needs to know about a record, whatever its kind.
pub trait Record: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    const RESOURCE: Resource;
    /// The CSV header row (docs/SPEC.md section 3).
    const CSV_HEADER: &'static [&'static str];

    fn id(&self) -> &str;
    fn created_at(&self) -> Option<DateTime<Utc>>;
    fn session_id(&self) -> Option<&str>;
    fn vendor(&self) -> Vendor;
    fn agent_id(&self) -> &str;
    fn fields(&self) -> &Map<String, Value>;
    /// Appends the record as one compact JSON object: what serde writes,
    /// byte for byte (the default is serde).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }

    /// The CSV rows of this record, cells in `CSV_HEADER` order, before the
    /// formula guard. A lead is one row; a conversation one row per message
    /// (one row with empty message cells when it has none, so it is not lost).
    fn csv_rows(&self) -> Vec<Vec<String>>;
}

fn cell(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn time_cell(value: &Option<DateTime<Utc>>) -> String {
    value.as_ref().map(format_timestamp).unwrap_or_default()
}

impl Record for Lead {
    const RESOURCE: Resource = Resource::Leads;
    const CSV_HEADER: &'static [&'static str] = &[
        "id",
        "vendor",
        "agent_id",
        "kind",
        "created_at",
        "name",
        "email",
        "phone",
        "source",
        "page_url",
        "ip_address",
        "session_id",
        "message",
        "fields",
    ];

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

    /// Hand-written because it is the hot path of every lead export (serde's
    /// generic string escaping was a quarter of the client's instructions);
    /// `lead_json_is_what_serde_writes` holds it to serde's bytes.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        push_json_str(out, &self.id)?;
        out.extend_from_slice(b",\"vendor\":\"");
        out.extend_from_slice(self.vendor.as_str().as_bytes());
        out.extend_from_slice(b"\",\"agent_id\":");
        push_json_str(out, &self.agent_id)?;
        out.extend_from_slice(b",\"kind\":");
        push_json_str(out, &self.kind)?;
        out.extend_from_slice(b",\"created_at\":");
        match &self.created_at {
            Some(t) => push_json_str(out, &format_timestamp(t))?,
            None => out.extend_from_slice(b"null"),
        }
        for (key, value) in [
            (&b",\"name\":"[..], &self.name),
            (b",\"email\":", &self.email),
            (b",\"phone\":", &self.phone),
            (b",\"source\":", &self.source),
            (b",\"page_url\":", &self.page_url),
            (b",\"ip_address\":", &self.ip_address),
            (b",\"session_id\":", &self.session_id),
            (b",\"message\":", &self.message),
        ] {
            out.extend_from_slice(key);
            match value {
                Some(text) => push_json_str(out, text)?,
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b",\"fields\":");
        push_json_map(out, &self.fields)?;
        if let Some(raw) = &self.raw {
            out.extend_from_slice(b",\"raw\":");
            serde_json::to_writer(&mut *out, raw)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn csv_rows(&self) -> Vec<Vec<String>> {
        vec![vec![
            self.id.clone(),
            self.vendor.as_str().to_owned(),
            self.agent_id.clone(),
            self.kind.clone().into_owned(),
            time_cell(&self.created_at),
            cell(&self.name),
            cell(&self.email),
            cell(&self.phone),
            cell(&self.source),
            cell(&self.page_url),
            cell(&self.ip_address),
            cell(&self.session_id),
            cell(&self.message),
            Value::Object(self.fields.clone()).to_string(),
        ]]
    }
}

impl Record for Conversation {
    const RESOURCE: Resource = Resource::Conversations;
    const CSV_HEADER: &'static [&'static str] = &[
        "conversation_id",
        "vendor",
        "agent_id",
        "conversation_created_at",
        "source",
        "customer",
        "session_id",
        "message_index",
        "role",
        "content",
        "message_created_at",
    ];

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

    fn csv_rows(&self) -> Vec<Vec<String>> {
        let prefix = [
            self.id.clone(),
            self.vendor.as_str().to_owned(),
            self.agent_id.clone(),
            time_cell(&self.created_at),
            cell(&self.source),
            cell(&self.customer),
            cell(&self.session_id),
        ];
        if self.messages.is_empty() {
            let mut row = prefix.to_vec();
            row.extend([String::new(), String::new(), String::new(), String::new()]);
            return vec![row];
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(index, message)| {
                let mut row = prefix.to_vec();
                row.extend([
                    index.to_string(),
                    message.role.clone(),
                    cell(&message.content),
                    time_cell(&message.created_at),
                ]);
                row
            })
            .collect()
    }
}

/// Appends `text` as a JSON string. Most strings need no escaping (serde
/// escapes only `"`, `\\` and control characters), and those are copied
/// whole; the rest go through serde.
fn push_json_str(out: &mut Vec<u8>, text: &str) -> serde_json::Result<()> {
    if needs_json_escape(text.as_bytes()) {
        return serde_json::to_writer(out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether any byte is a control character, `"` or `\\`: eight bytes at a
/// time (the classic "has a zero byte" and "has a byte below n" word tricks,
/// both exact), then the tail one by one.
fn needs_json_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
        if below_space
            || has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A `fields` map as serde writes it (compact, in order), with the string
/// values and keys through the fast path.
fn push_json_map(out: &mut Vec<u8>, map: &Map<String, Value>) -> serde_json::Result<()> {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, key)?;
        out.push(b':');
        match value {
            Value::String(text) => push_json_str(out, text)?,
            other => serde_json::to_writer(&mut *out, other)?,
        }
    }
    out.push(b'}');
    Ok(())
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

    #[test]
    fn timestamps_keep_fraction_only_when_present() {
        let whole = Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap();
        assert_eq!(format_timestamp(&whole), "2025-01-15T10:30:00Z");
        let micro = whole + chrono::Duration::microseconds(512_302);
        assert_eq!(format_timestamp(&micro), "2025-01-15T10:30:00.512302Z");
    }

    #[test]
    fn serialized_timestamps_match_format_timestamp() {
        let base = Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap();
        for nanos in [
            0,
            1,
            500_000_000,
            512_302_000,
            512_302_001,
            999_999_999,
            120_000_000,
            7_000,
        ] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            let mut lead = Lead::new(Vendor::Chatzuri, "a", "1".into());
            lead.created_at = Some(t);
            let json = serde_json::to_value(&lead).unwrap();
            assert_eq!(json["created_at"], format_timestamp(&t), "{nanos}");
        }
    }

    #[test]
    fn the_escape_scan_agrees_with_the_plain_one_on_every_byte_and_position() {
        let plain = |bytes: &[u8]| bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for byte in 0..=255u8 {
            for len in [1usize, 7, 8, 9, 16, 17] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        needs_json_escape(&bytes),
                        plain(&bytes),
                        "byte {byte} at {at} of {len}"
                    );
                }
            }
        }
        assert!(!needs_json_escape(b""));
    }

    #[test]
    fn lead_json_is_what_serde_writes() {
        let awkward = [
            "plain",
            "",
            "José 王小明 🎉",
            "quote \" and backslash \\",
            "line\nbreak\r\ttab \u{1} \u{1f} \u{7f}",
            "=HYPERLINK(\"x\")",
            "\u{2028}\u{2029}",
        ];
        for (i, text) in awkward.iter().enumerate() {
            let mut lead = Lead::new(Vendor::Robofy, text, (*text).to_owned());
            lead.kind = "appointment".into();
            lead.created_at = (i % 2 == 0).then(chrono::Utc::now);
            lead.name = Some((*text).to_owned());
            lead.email = (i % 3 == 0).then(|| (*text).to_owned());
            lead.message = Some(format!("{text}{text}"));
            lead.fields.insert((*text).to_owned(), Value::from(*text));
            lead.fields.insert("n".to_owned(), Value::from(i));
            if i % 2 == 1 {
                lead.raw = Some(serde_json::json!({"k": text, "list": [1, null, true]}));
            }
            let mut fast = Vec::new();
            lead.write_json(&mut fast).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(&lead).unwrap(),
                "{text:?}"
            );
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

    #[test]
    fn conversation_without_messages_still_has_a_csv_row() {
        let c = Conversation::new(Vendor::Robofy, "bot", "s1".into());
        let rows = c.csv_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), Conversation::CSV_HEADER.len());
    }
}
