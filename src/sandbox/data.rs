//! The sandbox's deterministic data: every lead and conversation is a pure
//! function of `(vendor, seed, index, total)`, computed on demand in O(1)
//! with no storage, so a million-record sandbox costs no memory and the tests
//! can use the same functions as the oracle for what the client must output.
//!
//! # What the oracle holds
//!
//! [`GeneratedLead`] and [`GeneratedConversation`] hold the values the
//! common model must end up with (trimmed, `None` where the vendor sends an
//! empty or null value); [`GeneratedLead::write_wire`] and friends render the
//! vendor's wire JSON, which may differ in form:
//!
//! | oracle field | Chatzuri `get-leads` | NeoAgent `LeadList` | Robofy `leads` |
//! |---|---|---|---|
//! | `id` | `id`, a JSON number (`10001 + index`) | none on the wire (`None`) | `id` (`lead_…`) |
//! | `created_at` | `created_at`, RFC 3339 `Z`, whole seconds | `CreateTime`, the same instant written at `-08:00` with 6-digit microseconds | `created_at`, `YYYY-MM-DD HH:MM:SS`, UTC, no zone |
//! | `kind` | always `lead` | `Type` `Lead`/`Appointment` | always `lead` |
//! | `name`, `email`, `phone` | `name`, `email`, `phone` (absent: `""` or `null`) | `Name`, `Email`, `PhoneNumber` (absent: `""`) | `lead_data` entries whose `maps_to` is set |
//! | `message` | — | `Content` | — |
//! | `session_id` | — | `SessionID` (a JSON number, stringified here) | not on the row: only reachable with the `sessionId` filter |
//! | `page_url` | — | `URI` | `page_url` |
//! | `source`, `ip_address` | — | — | `source`, `ip_address` |
//! | `owner_user_id` | `chatbot_owner_user_id` (also `chatbot_id` = the agent) | — | — |
//! | `count` | — | `Count` | — |
//! | `lead_data` | — | — | `lead_data` in wire order; entries with `maps_to == None` are the custom fields |
//!
//! When `padded` is set, the wire `name` and `email` carry extra leading and
//! trailing spaces that the client must trim.
//!
//! Conversations: `id` is Chatzuri's `id`, NeoAgent's `SessionID` and
//! Robofy's `session_id`; message roles are written `user`/`assistant`
//! (Chatzuri), `User`/`AI` (NeoAgent) and `inbound`/`outbound` (Robofy);
//! only Robofy messages carry a `created_at`.
//!
//! Times are spread evenly over 2025-01-01 .. 2025-07-01 UTC, ascending with
//! the index (equal at worst, once rounded to whole seconds), which is what
//! lets the server answer date filters with a binary search.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use serde_json::Value;

use super::SimVendor;
use super::chatbase::AbsentAs;

/// 2025-01-01T00:00:00Z.
pub const WINDOW_START: i64 = 1_735_689_600;
/// 2025-07-01T00:00:00Z (exclusive).
pub const WINDOW_END: i64 = 1_751_328_000;

const MICROS: i64 = 1_000_000;
/// NeoAgent's LeadList writes times in the chatbot's zone; the demo chatbot
/// is in Pacific Standard Time, like the vendor's own examples.
const NEOAGENT_OFFSET_SECS: i64 = -8 * 3600;
/// First NeoAgent `SessionID`; looks like the vendor's examples (31305).
pub const NEOAGENT_SESSION_BASE: u64 = 31_000;
/// First Chatzuri lead id.
pub const CHATZURI_ID_BASE: u64 = 10_001;

// ---------------------------------------------------------------- hashing

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Copy)]
enum Purpose {
    Lead = 1,
    LeadTime = 2,
    Conversation = 3,
    ConversationTime = 4,
    Session = 5,
    Owner = 6,
    Rotation = 7,
}

fn vendor_salt(vendor: SimVendor) -> u64 {
    match vendor {
        SimVendor::Chatzuri => 0x1000,
        SimVendor::Neoagent => 0x2000,
        SimVendor::Robofy => 0x3000,
        SimVendor::Chatbase => 0x4000,
    }
}

fn hash(seed: u64, vendor: SimVendor, purpose: Purpose, index: u64) -> u64 {
    let salt = vendor_salt(vendor) | purpose as u64;
    mix(mix(seed ^ mix(salt)) ^ index)
}

// ---------------------------------------------------------------- time

/// Whether a vendor's timestamps carry microseconds or whole seconds.
fn has_micros(vendor: SimVendor) -> bool {
    vendor == SimVendor::Neoagent
}

fn spread_us(seed: u64, vendor: SimVendor, purpose: Purpose, index: usize, total: usize) -> i64 {
    let total = total.max(1) as u128;
    let span = ((WINDOW_END - WINDOW_START) * MICROS) as u128;
    let base = span * index as u128 / total;
    // Jitter stays inside the record's own slot, so order is kept.
    let width = (span / total).max(1);
    let jitter = hash(seed, vendor, purpose, index as u64) as u128 % width;
    let us = WINDOW_START * MICROS + (base + jitter) as i64;
    if has_micros(vendor) {
        us
    } else {
        us - us.rem_euclid(MICROS)
    }
}

/// The lead's `created_at` in microseconds since the epoch, exactly as the
/// wire shows it (whole seconds except for NeoAgent).
pub fn lead_time_us(vendor: SimVendor, seed: u64, index: usize, total: usize) -> i64 {
    spread_us(seed, vendor, Purpose::LeadTime, index, total)
}

/// The conversation's `created_at` in microseconds, as on the wire.
pub fn conversation_time_us(vendor: SimVendor, seed: u64, index: usize, total: usize) -> i64 {
    spread_us(seed, vendor, Purpose::ConversationTime, index, total)
}

/// The first index in `0..total` whose time is at or after `at_us`; times
/// ascend with the index, so this is a binary search.
pub fn first_index_at_or_after(total: usize, at_us: i64, time_of: impl Fn(usize) -> i64) -> usize {
    let (mut lo, mut hi) = (0usize, total);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if time_of(mid) < at_us {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    lo
}

fn to_datetime(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

#[derive(Clone, Copy)]
enum TimeStyle {
    /// `2025-01-15T10:30:00Z`
    RfcSeconds,
    /// `2025-01-15T10:30:00.512302Z`
    RfcMicros,
    /// `2025-01-15T02:30:00.512302-08:00`
    PacificMicros,
    /// `2025-01-15 10:30:00`
    Naive,
}

fn push_digits(buf: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut v = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&digits[..width]);
}

fn write_time(buf: &mut Vec<u8>, us: i64, style: TimeStyle) {
    let offset_us = match style {
        TimeStyle::PacificMicros => NEOAGENT_OFFSET_SECS * MICROS,
        _ => 0,
    };
    let local = to_datetime(us + offset_us);
    buf.push(b'"');
    push_digits(buf, local.year().max(0) as u32, 4);
    buf.push(b'-');
    push_digits(buf, local.month(), 2);
    buf.push(b'-');
    push_digits(buf, local.day(), 2);
    buf.push(if matches!(style, TimeStyle::Naive) {
        b' '
    } else {
        b'T'
    });
    push_digits(buf, local.hour(), 2);
    buf.push(b':');
    push_digits(buf, local.minute(), 2);
    buf.push(b':');
    push_digits(buf, local.second(), 2);
    match style {
        TimeStyle::RfcSeconds => buf.push(b'Z'),
        TimeStyle::RfcMicros => {
            buf.push(b'.');
            push_digits(buf, us.rem_euclid(MICROS) as u32, 6);
            buf.push(b'Z');
        }
        TimeStyle::PacificMicros => {
            buf.push(b'.');
            push_digits(buf, us.rem_euclid(MICROS) as u32, 6);
            buf.extend_from_slice(b"-08:00");
        }
        TimeStyle::Naive => {}
    }
    buf.push(b'"');
}

// ---------------------------------------------------------------- JSON

/// Appends `text` as a JSON string literal (RFC 8259 escaping; non-ASCII
/// passes through as UTF-8).
pub fn push_json_str(buf: &mut Vec<u8>, text: &str) {
    buf.push(b'"');
    push_escaped(buf, text);
    buf.push(b'"');
}

/// The inside of a JSON string literal, without the quotes, escaped as
/// serde_json escapes it.
fn push_escaped(buf: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    if !crate::output::json::needs_escape(bytes) {
        buf.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\x08' => b"\\b",
            b'\x0c' => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[(b >> 4) as usize]);
            buf.push(HEX[(b & 0xf) as usize]);
        } else {
            buf.extend_from_slice(escape);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

fn push_u64(buf: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

fn push_opt(buf: &mut Vec<u8>, value: Option<&str>, absent: Absent, padded: bool) {
    match (value, absent) {
        (Some(v), _) if padded => {
            buf.extend_from_slice(b"\"  ");
            push_escaped(buf, v);
            buf.extend_from_slice(b" \"");
        }
        (Some(v), _) => push_json_str(buf, v),
        (None, Absent::Empty) => buf.extend_from_slice(b"\"\""),
        (None, Absent::Null) => buf.extend_from_slice(b"null"),
    }
}

/// How a vendor writes a value it does not have.
#[derive(Clone, Copy)]
enum Absent {
    Empty,
    Null,
}

// ---------------------------------------------------------------- pools

struct Person {
    name: &'static str,
    handle: &'static str,
}

const PEOPLE: &[Person] = &[
    Person {
        name: "José Ñúñez",
        handle: "jose.nunez",
    },
    Person {
        name: "Zoë Müller",
        handle: "zoe.mueller",
    },
    Person {
        name: "王小明",
        handle: "xiaoming.wang",
    },
    Person {
        name: "Smith, John",
        handle: "john.smith",
    },
    Person {
        name: "Jean \"JJ\" Dupont",
        handle: "jj.dupont",
    },
    Person {
        name: "Siobhán Ní Bhriain",
        handle: "siobhan",
    },
    Person {
        name: "Ольга Смирнова",
        handle: "olga.smirnova",
    },
    Person {
        name: "田中 太郎",
        handle: "taro.tanaka",
    },
    Person {
        name: "Nguyễn Thị Hoa",
        handle: "hoa.nguyen",
    },
    Person {
        name: "محمد علي",
        handle: "m.ali",
    },
    Person {
        name: "Björn Ålund",
        handle: "bjorn.alund",
    },
    Person {
        name: "@maria_g",
        handle: "maria.g",
    },
    Person {
        name: "=1+2",
        handle: "formula",
    },
    Person {
        name: "-Anna-",
        handle: "anna",
    },
    Person {
        name: "Renée O'Connor",
        handle: "renee.oconnor",
    },
    Person {
        name: "李雷 🦄",
        handle: "li.lei",
    },
    Person {
        name: "Søren Kierkegård",
        handle: "soren.k",
    },
    Person {
        name: "Priya Natarajan",
        handle: "priya.n",
    },
    Person {
        name: "김민준",
        handle: "minjun.kim",
    },
    Person {
        name: "Bob",
        handle: "bob",
    },
];

const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "ex-ample.co.uk",
    "correo.example.es",
];

const PHONES: &[&str] = &[
    "+1 415 555 0100",
    "+44 20 7946 0958",
    "(415) 555-0199",
    "+49 30 901820",
    "+81-3-1234-5678",
    "0044 20 7946 0000",
    "555-0100 ext. 12",
    "+39 06 6982 1234",
];

const LEAD_MESSAGES: &[&str] = &[
    "Hi, I'd like a quote for 3 seats, please.",
    "Can you call me back?\nBest time: after 5pm",
    "=HYPERLINK(\"http://example.com/x\",\"Click me\")",
    "He said \"it's urgent\", so please hurry",
    "- item one\n- item two",
    "+1 for the annual plan",
    "@support need help with my order",
    "请尽快联系我，谢谢！",
    "Looking for pricing 💸🚀",
    "Línea 1, línea 2\r\nlínea 3",
    "Name\tQty\tPrice",
    "",
    "Très bien — merci beaucoup !",
    "Order #4521, qty 2, total $1,299.00",
    "test",
    "Please share anything",
];

const APPOINTMENT_MESSAGES: &[&str] = &[
    "Appointment requested for 2025-02-03 10:00 (PST)",
    "Demo call, Tuesday 3pm, \"bring the team\"",
    "予約：金曜日 14:00",
    "Reschedule to next week,\nmornings only",
    "=cmd|' /C calc'!A0",
];

const URIS: &[&str] = &[
    "www.example.com",
    "https://shop.example/pricing?utm_source=chat&ref=a,b",
    "https://例え.jp/お問い合わせ",
    "",
    "https://example.com/blog/post-1#contact",
];

const ROBOFY_SOURCES: &[&str] = &["chatbot", "widget", "whatsapp", ""];
const IP_ADDRESSES: &[&str] = &["203.0.113.7", "198.51.100.23", "2001:db8::42", ""];

const COMPANIES: &[&str] = &[
    "@acme",
    "Acme, Inc.",
    "Müller & Söhne GmbH",
    "株式会社テスト",
    "\"Quoted\" Ltd",
    "-minus corp",
    "=SUM(A1:A2)",
];
const BUDGETS: &[&str] = &["5000", "12,500", "-1", "+20%", "1e6", ""];
const REFERRALS: &[&str] = &["Google", "A friend", "LinkedIn", "Other: a podcast 🎧"];

/// Chatzuri `filteredSources` names; conversations cycle through a
/// seed-rotated pattern of them so a filtered page is computable in O(1).
pub const CHATZURI_SOURCES: &[&str] = &[
    "API",
    "Chatzuri site",
    "Instagram",
    "Messenger",
    "Slack",
    "Unspecified",
    "WhatsApp",
    "Widget or Iframe",
];
const SOURCE_PATTERN: [usize; 16] = [7, 7, 6, 0, 7, 1, 2, 7, 3, 6, 4, 7, 5, 0, 7, 6];

const USER_LINES: &[&str] = &[
    "Hi! Do you ship to Canada?",
    "How much is the pro plan, per seat?",
    "My order #4521 hasn't arrived, can you check?",
    "ok",
    "Can I pay by invoice, \"net 30\"?",
    "Wie lange dauert die Lieferung?",
    "这个产品有保修吗？",
    "Thanks!! 🙏",
    "I need:\n1. a quote\n2. a call back",
    "=HYPERLINK(\"http://evil.example\",\"x\")",
    "@agent please escalate",
    "¿Tienen descuento para ONGs?",
    "Line one\r\nline two, with a comma",
    "-1 star if nobody answers",
];

const ASSISTANT_LINES: &[&str] = &[
    "Hello! How can I help you today?",
    "Yes, we ship worldwide; delivery takes 3–5 business days.",
    "The pro plan is $29 per seat per month, billed annually.",
    "Sure, could you share your email so a colleague can follow up?",
    "I've checked: your order left our warehouse on Monday 📦",
    "Die Lieferung dauert 2–4 Werktage.",
    "是的，所有产品都有两年保修。",
    "Here is a summary:\n- plan: pro\n- seats: 3\n- total: $87/month",
    "You're welcome! Anything else?",
    "Invoices are possible for annual plans (\"net 30\").",
    "¡Sí! Ofrecemos un 20 % de descuento.",
];

const CUSTOMER_KINDS: u8 = 4;

// ---------------------------------------------------------------- leads

/// One `lead_data` entry of a Robofy lead, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadField {
    pub field_name: &'static str,
    pub field_type: &'static str,
    pub field_value: String,
    /// The model field this entry fills (`name`, `email`, `phone`) by the
    /// mapping rules of vendor-apis.md §4.1; `None` for a custom field.
    pub maps_to: Option<&'static str>,
}

/// A generated lead: the values the common model must hold, plus what is
/// needed to render the vendor's wire record (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedLead {
    pub vendor: SimVendor,
    pub index: usize,
    /// The vendor's id as a string; `None` for NeoAgent, which sends none.
    pub id: Option<String>,
    /// `lead` or `appointment`.
    pub kind: &'static str,
    /// The UTC instant (NeoAgent's wire text is the same instant at -08:00).
    pub created_at: DateTime<Utc>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// NeoAgent `Content`.
    pub message: Option<String>,
    /// NeoAgent `SessionID` (stringified); Robofy session the lead was
    /// captured in (not on the row; the `sessionId` filter finds it).
    pub session_id: Option<String>,
    pub page_url: Option<String>,
    /// Robofy `source`.
    pub source: Option<String>,
    /// Robofy `ip_address`.
    pub ip_address: Option<String>,
    /// Chatzuri `chatbot_owner_user_id`.
    pub owner_user_id: Option<String>,
    /// NeoAgent `Count`: records captured in the same session.
    pub count: Option<u32>,
    /// Robofy `lead_data`, complete and in wire order.
    pub lead_data: Vec<LeadField>,
    /// Wire `name`/`email` carry surrounding spaces.
    pub padded: bool,
    /// Chatzuri writes absent values as `null` rather than `""`.
    pub null_for_absent: bool,
    /// How Chatbase writes this lead's absent values: `""`, `null`, or no
    /// key at all (an absent `account_id` is always left out).
    chatbase_absent: AbsentAs,
    created_us: i64,
}

fn opt(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn pick<'a>(rng: &mut fastrand::Rng, pool: &[&'a str]) -> &'a str {
    pool[rng.usize(..pool.len())]
}

fn percent(rng: &mut fastrand::Rng, p: u8) -> bool {
    rng.u8(..100) < p
}

/// The Robofy session id of a session slot: UUID-shaped, with the slot in
/// its last group so the server can map it back without storage.
pub fn robofy_session_id(seed: u64, slot: usize) -> String {
    slot_uuid(SimVendor::Robofy, seed, slot)
}

/// A UUID-shaped id with `slot` in its last group, so the server can map
/// it back without storage.
fn slot_uuid(vendor: SimVendor, seed: u64, slot: usize) -> String {
    let h = hash(seed, vendor, Purpose::Session, slot as u64);
    let g = mix(h);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        8 + (g >> 62),
        (g >> 32) & 0xfff,
        slot as u64 & 0xffff_ffff_ffff
    )
}

/// The slot of a Robofy session id made by [`robofy_session_id`].
pub fn robofy_session_slot(seed: u64, text: &str) -> Option<usize> {
    uuid_slot(SimVendor::Robofy, seed, text)
}

fn uuid_slot(vendor: SimVendor, seed: u64, text: &str) -> Option<usize> {
    let last = text.rsplit('-').next()?;
    if last.len() != 12 {
        return None;
    }
    let slot = usize::try_from(u64::from_str_radix(last, 16).ok()?).ok()?;
    (slot_uuid(vendor, seed, slot) == text).then_some(slot)
}

/// The id of Chatbase conversation `index` (UUID-shaped, as the vendor's).
pub fn chatbase_conversation_id(seed: u64, index: usize) -> String {
    slot_uuid(SimVendor::Chatbase, seed, index)
}

/// The index of a Chatbase conversation id made by
/// [`chatbase_conversation_id`].
pub fn chatbase_conversation_index(seed: u64, text: &str) -> Option<usize> {
    uuid_slot(SimVendor::Chatbase, seed, text)
}

/// The Chatbase `account_id` of the demo workspace.
pub fn chatbase_account(seed: u64) -> String {
    format!(
        "acc_{:08x}",
        hash(seed, SimVendor::Chatbase, Purpose::Owner, 0) >> 32
    )
}

/// The Chatzuri `chatbot_owner_user_id` of the demo agent.
pub fn chatzuri_owner(seed: u64) -> String {
    format!(
        "usr_{:016x}",
        hash(seed, SimVendor::Chatzuri, Purpose::Owner, 0)
    )
}

/// Generates lead `index` of `total` for `vendor` and `seed`.
pub fn lead(vendor: SimVendor, seed: u64, index: usize, total: usize) -> GeneratedLead {
    let mut rng = fastrand::Rng::with_seed(hash(seed, vendor, Purpose::Lead, index as u64));
    let created_us = lead_time_us(vendor, seed, index, total);
    let person = &PEOPLE[rng.usize(..PEOPLE.len())];
    let name = (!percent(&mut rng, 6)).then(|| person.name.to_owned());
    let email = (!percent(&mut rng, 10))
        .then(|| format!("{}{}@{}", person.handle, index, pick(&mut rng, DOMAINS)));
    let phone = (!percent(&mut rng, 35)).then(|| pick(&mut rng, PHONES).to_owned());
    let padded = percent(&mut rng, 5) && (name.is_some() || email.is_some());
    let mut lead = GeneratedLead {
        vendor,
        index,
        id: None,
        kind: "lead",
        created_at: to_datetime(created_us),
        name,
        email,
        phone,
        message: None,
        session_id: None,
        page_url: None,
        source: None,
        ip_address: None,
        owner_user_id: None,
        count: None,
        lead_data: Vec::new(),
        padded,
        null_for_absent: false,
        chatbase_absent: AbsentAs::Empty,
        created_us,
    };
    match vendor {
        SimVendor::Chatzuri => {
            lead.id = Some((CHATZURI_ID_BASE + index as u64).to_string());
            lead.owner_user_id = Some(chatzuri_owner(seed));
            lead.null_for_absent = rng.bool();
        }
        SimVendor::Neoagent => {
            let appointment = percent(&mut rng, 25);
            lead.kind = if appointment { "appointment" } else { "lead" };
            let pool = if appointment {
                APPOINTMENT_MESSAGES
            } else {
                LEAD_MESSAGES
            };
            lead.message = opt(pick(&mut rng, pool));
            lead.session_id = Some((NEOAGENT_SESSION_BASE + (index / 2) as u64).to_string());
            lead.page_url = opt(pick(&mut rng, URIS));
            let pair_end = (index / 2) * 2 + 1;
            lead.count = Some(if pair_end < total { 2 } else { 1 });
        }
        SimVendor::Chatbase => {
            let h = hash(seed, vendor, Purpose::Session, index as u64);
            lead.id = Some(format!("lead_{:06x}{index:x}", h >> 40));
            lead.owner_user_id = (!percent(&mut rng, 10)).then(|| chatbase_account(seed));
            lead.chatbase_absent = match rng.u8(..3) {
                0 => AbsentAs::Empty,
                1 => AbsentAs::Null,
                _ => AbsentAs::Omitted,
            };
        }
        SimVendor::Robofy => {
            lead.id = Some(format!("lead_{}", 10_001 + index));
            lead.session_id = Some(robofy_session_id(seed, index / 2));
            lead.page_url = opt(pick(&mut rng, URIS));
            lead.source = opt(pick(&mut rng, ROBOFY_SOURCES));
            lead.ip_address = opt(pick(&mut rng, IP_ADDRESSES));
            lead.lead_data = robofy_lead_data(&mut rng, &lead);
        }
    }
    lead
}

fn robofy_lead_data(rng: &mut fastrand::Rng, lead: &GeneratedLead) -> Vec<LeadField> {
    let mut data = Vec::with_capacity(7);
    let company = percent(rng, 60).then(|| LeadField {
        field_name: "company",
        field_type: "text",
        field_value: pick(rng, COMPANIES).to_owned(),
        maps_to: None,
    });
    let company_first = percent(rng, 20);
    if company_first {
        data.extend(company.clone());
    }
    let name_label = ["name", "Full Name", "full_name"][rng.usize(..3)];
    push_mapped(rng, &mut data, &lead.name, (name_label, "text"), "name");
    let email_label = ["email", "E-mail", "Email Address"][rng.usize(..3)];
    push_mapped(rng, &mut data, &lead.email, (email_label, "email"), "email");
    let phone_label = [
        ("phone", "tel"),
        ("Mobile", "tel"),
        ("Telephone", "tel"),
        ("phone", "text"),
    ][rng.usize(..4)];
    push_mapped(rng, &mut data, &lead.phone, phone_label, "phone");
    if !company_first {
        data.extend(company);
    }
    if percent(rng, 50) {
        data.push(LeadField {
            field_name: "budget",
            field_type: "number",
            field_value: pick(rng, BUDGETS).to_owned(),
            maps_to: None,
        });
    }
    if percent(rng, 40) {
        data.push(LeadField {
            field_name: "notes",
            field_type: "textarea",
            field_value: pick(rng, LEAD_MESSAGES).to_owned(),
            maps_to: None,
        });
    }
    if percent(rng, 30) {
        data.push(LeadField {
            field_name: "How did you hear about us?",
            field_type: "select",
            field_value: pick(rng, REFERRALS).to_owned(),
            maps_to: None,
        });
    }
    if percent(rng, 20) {
        data.push(LeadField {
            field_name: "consent",
            field_type: "checkbox",
            field_value: "true".to_owned(),
            maps_to: None,
        });
    }
    data
}

/// An absent value is sometimes a missing entry, sometimes an empty one.
fn push_mapped(
    rng: &mut fastrand::Rng,
    data: &mut Vec<LeadField>,
    value: &Option<String>,
    (field_name, field_type): (&'static str, &'static str),
    maps_to: &'static str,
) {
    if value.is_some() || rng.bool() {
        data.push(LeadField {
            field_name,
            field_type,
            field_value: value.clone().unwrap_or_default(),
            maps_to: Some(maps_to),
        });
    }
}

impl GeneratedLead {
    /// Custom `lead_data` entries (Robofy) that carry a value: what the
    /// model keeps in `fields`.
    pub fn custom_fields(&self) -> impl Iterator<Item = &LeadField> {
        self.lead_data
            .iter()
            .filter(|f| f.maps_to.is_none() && !f.field_value.trim().is_empty())
    }

    /// How Chatbase writes this lead's absent `name`, `email`, `phone`.
    pub(crate) fn chatbase_absent(&self) -> AbsentAs {
        self.chatbase_absent
    }

    /// The NeoAgent `SessionID` as a number.
    pub fn neoagent_session(&self) -> Option<u64> {
        self.session_id.as_deref()?.parse().ok()
    }

    /// Appends the vendor's wire record (one element of its list).
    pub fn write_wire(&self, buf: &mut Vec<u8>) {
        match self.vendor {
            SimVendor::Chatzuri => self.write_chatzuri(buf),
            SimVendor::Neoagent => self.write_neoagent(buf),
            SimVendor::Robofy => self.write_robofy(buf),
            SimVendor::Chatbase => super::chatbase::write_lead(self, super::DEMO_AGENT, buf),
        }
    }

    /// The vendor's wire record as a JSON value.
    pub fn wire(&self) -> Value {
        let mut buf = Vec::new();
        self.write_wire(&mut buf);
        serde_json::from_slice(&buf).unwrap_or(Value::Null)
    }

    /// Chatzuri's lead, written by hand: it is the page of the 1M-lead
    /// benchmark, and serde (through [`ChatzuriLeadWire`], which stays the
    /// definition, equal by a test) costs about a third more server CPU
    /// there.
    fn write_chatzuri(&self, buf: &mut Vec<u8>) {
        let absent = self.chatzuri_absent();
        buf.extend_from_slice(b"{\"id\":");
        push_u64(buf, CHATZURI_ID_BASE + self.index as u64);
        buf.extend_from_slice(b",\"created_at\":");
        write_time(buf, self.created_us, TimeStyle::RfcSeconds);
        buf.extend_from_slice(b",\"chatbot_owner_user_id\":");
        push_opt(buf, self.owner_user_id.as_deref(), absent, false);
        buf.extend_from_slice(b",\"chatbot_id\":");
        push_json_str(buf, super::DEMO_AGENT);
        buf.extend_from_slice(b",\"phone\":");
        push_opt(buf, self.phone.as_deref(), absent, false);
        buf.extend_from_slice(b",\"email\":");
        push_opt(buf, self.email.as_deref(), absent, self.padded);
        buf.extend_from_slice(b",\"name\":");
        push_opt(buf, self.name.as_deref(), absent, self.padded);
        buf.push(b'}');
    }

    fn chatzuri_absent(&self) -> Absent {
        if self.null_for_absent {
            Absent::Null
        } else {
            Absent::Empty
        }
    }

    /// Chatzuri's lead through serde: what [`Self::write_chatzuri`] must
    /// equal.
    #[cfg(test)]
    fn write_chatzuri_serde(&self, buf: &mut Vec<u8>) {
        let absent = self.chatzuri_absent();
        let text = |value, padded| WireText::of(value, absent, padded);
        write_json(
            buf,
            &ChatzuriLeadWire {
                id: CHATZURI_ID_BASE + self.index as u64,
                created_at: WireTime(self.created_us, TimeStyle::RfcSeconds),
                chatbot_owner_user_id: text(&self.owner_user_id, false),
                chatbot_id: super::DEMO_AGENT,
                phone: text(&self.phone, false),
                email: text(&self.email, self.padded),
                name: text(&self.name, self.padded),
            },
        );
    }

    fn write_neoagent(&self, buf: &mut Vec<u8>) {
        let text = |value, padded| WireText::of(value, Absent::Empty, padded);
        write_json(
            buf,
            &NeoagentLeadWire {
                kind: if self.kind == "appointment" {
                    "Appointment"
                } else {
                    "Lead"
                },
                name: text(&self.name, self.padded),
                email: text(&self.email, self.padded),
                phone_number: text(&self.phone, false),
                create_time: WireTime(self.created_us, TimeStyle::PacificMicros),
                content: text(&self.message, false),
                session_id: self.neoagent_session().unwrap_or_default(),
                uri: text(&self.page_url, false),
                count: self.count.unwrap_or_default(),
            },
        );
    }

    /// Robofy's lead, written by hand for the same reason as
    /// [`Self::write_chatzuri`] (serde's string escaping was a third of the
    /// server's CPU on the Robofy benchmark); [`Self::write_robofy_serde`]
    /// stays the definition, equal by a test.
    fn write_robofy(&self, buf: &mut Vec<u8>) {
        let text = |buf: &mut Vec<u8>, value: &Option<String>| {
            push_opt(buf, value.as_deref(), Absent::Empty, false);
        };
        buf.extend_from_slice(b"{\"id\":");
        text(buf, &self.id);
        buf.extend_from_slice(b",\"created_at\":");
        write_time(buf, self.created_us, TimeStyle::Naive);
        buf.extend_from_slice(b",\"source\":");
        text(buf, &self.source);
        buf.extend_from_slice(b",\"page_url\":");
        text(buf, &self.page_url);
        buf.extend_from_slice(b",\"ip_address\":");
        text(buf, &self.ip_address);
        buf.extend_from_slice(b",\"lead_data\":[");
        for (i, field) in self.lead_data.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"field_name\":");
            push_json_str(buf, field.field_name);
            buf.extend_from_slice(b",\"field_type\":");
            push_json_str(buf, field.field_type);
            buf.extend_from_slice(b",\"field_value\":");
            push_opt(
                buf,
                Some(&field.field_value),
                Absent::Empty,
                self.robofy_padded(field),
            );
            buf.push(b'}');
        }
        buf.extend_from_slice(b"]}");
    }

    fn robofy_padded(&self, field: &LeadField) -> bool {
        self.padded
            && matches!(field.maps_to, Some("name" | "email"))
            && !field.field_value.is_empty()
    }

    #[cfg(test)]
    fn write_robofy_serde(&self, buf: &mut Vec<u8>) {
        let text = |value| WireText::of(value, Absent::Empty, false);
        write_json(
            buf,
            &RobofyLeadWire {
                id: text(&self.id),
                created_at: WireTime(self.created_us, TimeStyle::Naive),
                source: text(&self.source),
                page_url: text(&self.page_url),
                ip_address: text(&self.ip_address),
                lead_data: self
                    .lead_data
                    .iter()
                    .map(|field| RobofyFieldWire {
                        field_name: field.field_name,
                        field_type: field.field_type,
                        field_value: WireText::new(
                            Some(&field.field_value),
                            Absent::Empty,
                            self.robofy_padded(field),
                        ),
                    })
                    .collect(),
            },
        );
    }
}

// ---------------------------------------------------------------- wire

/// Appends `value` as JSON; the wire types here always serialize.
fn write_json(buf: &mut Vec<u8>, value: &impl Serialize) {
    let _ = serde_json::to_writer(buf, value);
}

/// A time on the wire, in a vendor's style.
struct WireTime(i64, TimeStyle);

impl Serialize for WireTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = Vec::with_capacity(40);
        write_time(&mut text, self.0, self.1);
        let inner = text
            .get(1..text.len().saturating_sub(1))
            .unwrap_or_default();
        serializer.serialize_str(std::str::from_utf8(inner).unwrap_or_default())
    }
}

/// A text value on the wire: padded with spaces a client must trim, or
/// absent in the vendor's way (`""` or `null`).
struct WireText<'a> {
    value: Option<&'a str>,
    absent: Absent,
    padded: bool,
}

impl<'a> WireText<'a> {
    fn of(value: &'a Option<String>, absent: Absent, padded: bool) -> WireText<'a> {
        WireText::new(value.as_deref(), absent, padded)
    }

    fn new(value: Option<&'a str>, absent: Absent, padded: bool) -> WireText<'a> {
        WireText {
            value,
            absent,
            padded,
        }
    }
}

impl Serialize for WireText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.value, self.absent) {
            (Some(v), _) if self.padded => serializer.serialize_str(&format!("  {v} ")),
            (Some(v), _) => serializer.serialize_str(v),
            (None, Absent::Empty) => serializer.serialize_str(""),
            (None, Absent::Null) => serializer.serialize_none(),
        }
    }
}

/// Chatzuri's lead as serde writes it; the server uses the equal
/// hand-written [`GeneratedLead::write_chatzuri`].
#[cfg(test)]
#[derive(Serialize)]
struct ChatzuriLeadWire<'a> {
    id: u64,
    created_at: WireTime,
    chatbot_owner_user_id: WireText<'a>,
    chatbot_id: &'a str,
    phone: WireText<'a>,
    email: WireText<'a>,
    name: WireText<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NeoagentLeadWire<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    name: WireText<'a>,
    email: WireText<'a>,
    phone_number: WireText<'a>,
    create_time: WireTime,
    content: WireText<'a>,
    #[serde(rename = "SessionID")]
    session_id: u64,
    #[serde(rename = "URI")]
    uri: WireText<'a>,
    count: u32,
}

#[cfg(test)]
#[derive(Serialize)]
struct RobofyLeadWire<'a> {
    id: WireText<'a>,
    created_at: WireTime,
    source: WireText<'a>,
    page_url: WireText<'a>,
    ip_address: WireText<'a>,
    lead_data: Vec<RobofyFieldWire<'a>>,
}

#[cfg(test)]
#[derive(Serialize)]
struct RobofyFieldWire<'a> {
    field_name: &'a str,
    field_type: &'a str,
    field_value: WireText<'a>,
}

#[derive(Serialize)]
struct ChatzuriConversationWire<'a> {
    id: &'a str,
    created_at: WireTime,
    messages: Vec<ChatzuriMessageWire<'a>>,
    chatbot_id: &'a str,
    customer: WireText<'a>,
    source: WireText<'a>,
}

#[derive(Serialize)]
struct ChatzuriMessageWire<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NeoagentConversationWire<'a> {
    #[serde(rename = "SessionID")]
    session_id: u64,
    create_time: WireTime,
    #[serde(rename = "URI")]
    uri: WireText<'a>,
    messages: Vec<NeoagentMessageWire<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NeoagentMessageWire<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct RobofySessionWire<'a> {
    session_id: &'a str,
    created_at: WireTime,
    last_message_time: WireTime,
    last_message: WireText<'a>,
    user_profile_name: WireText<'a>,
    website_url: WireText<'a>,
    last_message_direction: &'a str,
}

#[derive(Serialize)]
struct RobofyMessageWire<'a> {
    id: String,
    direction: &'a str,
    message: &'a str,
    created_at: WireTime,
}

// ---------------------------------------------------------------- conversations

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// The common model's role.
    pub fn model(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// The role as the vendor writes it.
    pub fn wire(self, vendor: SimVendor) -> &'static str {
        match (vendor, self) {
            (SimVendor::Chatzuri, _) => self.model(),
            (SimVendor::Neoagent, Role::User) => "User",
            (SimVendor::Neoagent, Role::Assistant) => "AI",
            (SimVendor::Robofy, Role::User) => "inbound",
            (SimVendor::Robofy, Role::Assistant) => "outbound",
            (SimVendor::Chatbase, _) => self.model(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedMessage {
    pub role: Role,
    /// The message text. Chatbase: its `text` parts joined with `\n`, empty
    /// when it has none (a tool-only message, whose model content is null:
    /// see [`GeneratedMessage::model_content`]).
    pub content: String,
    /// Robofy, and Chatbase v2 (whole seconds; `None` where the message
    /// carries no `createdAt`); the other vendors send no message times.
    pub created_at: Option<DateTime<Utc>>,
    /// Chatbase: the message id.
    pub id: Option<String>,
    /// Chatbase: the message's `parts`, in wire order (text and tool parts).
    pub parts: Vec<GeneratedPart>,
    /// Chatbase assistant messages: `feedback` (`positive`/`negative`, or
    /// `None` for the wire's `null`).
    pub feedback: Option<&'static str>,
    /// Chatbase assistant messages: `metadata.score`.
    pub score: Option<f64>,
}

impl GeneratedMessage {
    /// The content the common model holds: `None` for an empty text.
    pub fn model_content(&self) -> Option<&str> {
        Some(self.content.as_str()).filter(|c| !c.is_empty())
    }
}

/// One entry of a Chatbase message's `parts`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum GeneratedPart {
    Text {
        text: String,
    },
    ToolCall {
        tool_call_id: String,
        tool_name: &'static str,
    },
    ToolResult {
        tool_call_id: String,
        tool_name: &'static str,
        output: Value,
    },
}

/// A generated conversation (see the module docs for the wire mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedConversation {
    pub vendor: SimVendor,
    pub index: usize,
    /// Chatzuri `id`; NeoAgent `SessionID` (stringified); Robofy `session_id`.
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Chatzuri `source`.
    pub source: Option<String>,
    /// Chatzuri `customer`; Robofy `user_profile_name`.
    pub customer: Option<String>,
    /// NeoAgent `SessionID`; Robofy `session_id`; `None` for Chatzuri.
    pub session_id: Option<String>,
    /// NeoAgent `URI`; Robofy `website_url`.
    pub page_url: Option<String>,
    /// Chatbase `title`.
    pub title: Option<String>,
    /// Chatbase `status` (`ongoing`, `ended`, `taken_over`, `paused`).
    pub status: Option<&'static str>,
    /// Chatbase `updatedAt`: the time of the last message.
    pub updated_at: Option<DateTime<Utc>>,
    pub messages: Vec<GeneratedMessage>,
    created_us: i64,
    message_us: Vec<i64>,
}

/// How many messages conversation `index` has; every fifth one is long.
pub fn message_count(vendor: SimVendor, seed: u64, index: usize) -> usize {
    let h = hash(seed, vendor, Purpose::Conversation, index as u64);
    if index % 5 == 2 {
        30 + (h % 16) as usize
    } else {
        1 + (h % 12) as usize
    }
}

fn chatzuri_rotation(seed: u64) -> usize {
    (hash(seed, SimVendor::Chatzuri, Purpose::Rotation, 0) % 16) as usize
}

/// The Chatzuri `source` of conversation `index`.
pub fn chatzuri_source(seed: u64, index: usize) -> &'static str {
    CHATZURI_SOURCES[SOURCE_PATTERN[(index + chatzuri_rotation(seed)) % 16]]
}

/// The `k`-th (from 0) index in `lo..hi` whose Chatzuri source is one of
/// `sources`, computed from the periodic source pattern without scanning.
pub fn chatzuri_nth_with_source(
    seed: u64,
    sources: &[&str],
    lo: usize,
    hi: usize,
    k: usize,
) -> Option<usize> {
    let matches: Vec<usize> = (lo..lo + 16)
        .filter(|&i| sources.contains(&chatzuri_source(seed, i)))
        .collect();
    if matches.is_empty() {
        return None;
    }
    let index = matches[k % matches.len()] + 16 * (k / matches.len());
    (index < hi).then_some(index)
}

/// Generates conversation `index` of `total` for `vendor` and `seed`.
pub fn conversation(
    vendor: SimVendor,
    seed: u64,
    index: usize,
    total: usize,
) -> GeneratedConversation {
    conversation_sized(vendor, seed, index, total, None)
}

/// [`conversation`] with every message text repeated to about
/// `message_bytes` bytes (`leads sandbox --message-bytes N`); `None` keeps
/// the ordinary short lines. The padding is a function of the text alone, so
/// the same seed still gives the same data.
pub fn conversation_sized(
    vendor: SimVendor,
    seed: u64,
    index: usize,
    total: usize,
    message_bytes: Option<usize>,
) -> GeneratedConversation {
    let mut rng =
        fastrand::Rng::with_seed(hash(seed, vendor, Purpose::Conversation, index as u64) ^ 0x5eed);
    let created_us = conversation_time_us(vendor, seed, index, total);
    let person = &PEOPLE[rng.usize(..PEOPLE.len())];
    let count = message_count(vendor, seed, index);
    let assistant_first = rng.bool();
    let mut messages = Vec::with_capacity(count);
    let mut message_us = Vec::with_capacity(count);
    let mut at = created_us;
    for k in 0..count {
        let role = if (k % 2 == 0) == assistant_first {
            Role::Assistant
        } else {
            Role::User
        };
        let pool = if role == Role::User {
            USER_LINES
        } else {
            ASSISTANT_LINES
        };
        let line = pick(&mut rng, pool);
        let content = match message_bytes {
            Some(bytes) => padded_text(line, bytes),
            None => line.to_owned(),
        };
        let created_at = (vendor == SimVendor::Robofy).then(|| to_datetime(at));
        messages.push(GeneratedMessage {
            role,
            content,
            created_at,
            id: None,
            parts: Vec::new(),
            feedback: None,
            score: None,
        });
        message_us.push(at);
        at += i64::from(rng.u32(3..180)) * MICROS;
    }
    let mut conversation = GeneratedConversation {
        vendor,
        index,
        id: String::new(),
        created_at: to_datetime(created_us),
        source: None,
        customer: None,
        session_id: None,
        page_url: None,
        title: None,
        status: None,
        updated_at: None,
        messages,
        created_us,
        message_us,
    };
    match vendor {
        SimVendor::Chatzuri => {
            let h = hash(seed, vendor, Purpose::Session, index as u64);
            conversation.id = format!("{:08x}-{:04x}-{index}", h >> 32, h & 0xffff);
            conversation.source = Some(chatzuri_source(seed, index).to_owned());
            conversation.customer = match rng.u8(..CUSTOMER_KINDS) {
                0 => None,
                1 => Some(person.name.to_owned()),
                2 => Some("anonymous".to_owned()),
                _ => Some(format!(
                    "{}{}@{}",
                    person.handle,
                    index,
                    pick(&mut rng, DOMAINS)
                )),
            };
        }
        SimVendor::Neoagent => {
            conversation.id = (NEOAGENT_SESSION_BASE + index as u64).to_string();
            conversation.session_id = Some(conversation.id.clone());
            conversation.page_url = opt(pick(&mut rng, URIS));
        }
        SimVendor::Robofy => {
            conversation.id = robofy_session_id(seed, index);
            conversation.session_id = Some(conversation.id.clone());
            conversation.customer = (!percent(&mut rng, 15)).then(|| person.name.to_owned());
            conversation.page_url = opt(pick(&mut rng, URIS));
        }
        SimVendor::Chatbase => chatbase_details(&mut conversation, seed, person),
    }
    conversation
}

/// `line` repeated, space-separated, to `bytes` bytes (cut at a character
/// boundary, no trailing space); a line already that long is kept whole.
fn padded_text(line: &str, bytes: usize) -> String {
    if line.len() >= bytes {
        return line.to_owned();
    }
    let mut text = String::with_capacity(bytes + line.len() + 1);
    text.push_str(line);
    while text.len() < bytes {
        text.push(' ');
        text.push_str(line);
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.truncate(text.trim_end().len());
    text
}

/// Chatbase `source` names (the v2 enum; `None` is the wire's `null`).
pub const CHATBASE_SOURCES: &[&str] = &[
    "API",
    "WhatsApp",
    "Messenger",
    "Instagram",
    "Slack",
    "Widget or Iframe",
    "Chatbase site",
    "Playground",
    "Email",
    "Unspecified",
];
/// Indices into [`CHATBASE_SOURCES`]; `NO_SOURCE` is `null`.
const CHATBASE_SOURCE_PATTERN: [usize; 16] =
    [5, 5, 1, 0, 5, 2, NO_SOURCE, 5, 3, 1, 4, 5, 6, 7, 8, 9];
const NO_SOURCE: usize = usize::MAX;
const CHATBASE_STATUSES: &[&str] = &["ongoing", "ended", "taken_over", "paused"];
const TITLES: &[&str] = &[
    "Shipping to Canada",
    "Pricing question",
    "Refund for order #1042",
    "Demande de devis",
    "配送について",
    "\"Urgent\": call back",
];
const TOOLS: &[&str] = &["lookup_shipping", "search_docs", "create_ticket"];

fn chatbase_rotation(seed: u64) -> usize {
    (hash(seed, SimVendor::Chatbase, Purpose::Rotation, 0) % 16) as usize
}

/// The Chatbase `source` of conversation `index` (`None`: `null`).
pub fn chatbase_source(seed: u64, index: usize) -> Option<&'static str> {
    CHATBASE_SOURCES
        .get(CHATBASE_SOURCE_PATTERN[(index + chatbase_rotation(seed)) % 16])
        .copied()
}

/// Counts and finds, in O(1), the Chatbase conversations whose source is
/// one of a set: the sources repeat with period 16.
pub struct ChatbaseSourceSet {
    /// Residues `r` in `0..16` (ascending) whose index `16 q + r` matches.
    residues: Vec<usize>,
}

impl ChatbaseSourceSet {
    pub fn new(seed: u64, sources: &[&str]) -> ChatbaseSourceSet {
        let residues = (0..16)
            .filter(|&r| chatbase_source(seed, r).is_some_and(|s| sources.contains(&s)))
            .collect();
        ChatbaseSourceSet { residues }
    }

    /// How many indices in `0..n` match.
    pub fn count_below(&self, n: usize) -> usize {
        (n / 16) * self.residues.len() + self.residues.iter().filter(|&&r| r < n % 16).count()
    }

    /// The `j`-th (from 0) matching index.
    pub fn nth(&self, j: usize) -> Option<usize> {
        let per = self.residues.len();
        (per > 0).then(|| 16 * (j / per) + self.residues[j % per])
    }
}

fn chatbase_details(conversation: &mut GeneratedConversation, seed: u64, person: &Person) {
    let index = conversation.index;
    // Its own stream, so the shared fields above match the other vendors'.
    let mut rng = fastrand::Rng::with_seed(hash(
        seed,
        SimVendor::Chatbase,
        Purpose::Owner,
        index as u64 + 1,
    ));
    conversation.id = chatbase_conversation_id(seed, index);
    conversation.source = chatbase_source(seed, index).map(str::to_owned);
    conversation.customer = match rng.u8(..10) {
        0..=3 => None,
        4..=6 => Some(format!("user_{}", 4000 + index)),
        _ => Some(person.handle.to_owned()),
    };
    conversation.title = (!percent(&mut rng, 25)).then(|| pick(&mut rng, TITLES).to_owned());
    conversation.status = Some(pick(&mut rng, CHATBASE_STATUSES));
    let last = conversation.message_us.last().copied();
    conversation.updated_at = Some(to_datetime(last.unwrap_or(conversation.created_us)));
    for (k, (message, &at)) in conversation
        .messages
        .iter_mut()
        .zip(&conversation.message_us)
        .enumerate()
    {
        message.id = Some(format!("msg_{index:x}_{}", k + 1));
        message.created_at = (!percent(&mut rng, 4)).then(|| to_datetime(at));
        if message.role == Role::User {
            message.parts = vec![GeneratedPart::Text {
                text: message.content.clone(),
            }];
            continue;
        }
        message.feedback = match rng.u8(..10) {
            0..=1 => Some("positive"),
            2 => Some("negative"),
            _ => None,
        };
        message.score = (!percent(&mut rng, 20)).then(|| f64::from(rng.u8(..=100)) / 100.0);
        let tool = pick(&mut rng, TOOLS);
        let call = format!("call_{}", k + 1);
        let tool_parts = [
            GeneratedPart::ToolCall {
                tool_call_id: call.clone(),
                tool_name: tool,
            },
            GeneratedPart::ToolResult {
                tool_call_id: call,
                tool_name: tool,
                output: serde_json::json!({"ok": true, "days": "5-8"}),
            },
        ];
        let text = GeneratedPart::Text {
            text: message.content.clone(),
        };
        message.parts = match rng.u8(..100) {
            // A bare tool call: no text part at all.
            0..=11 => {
                message.content.clear();
                tool_parts.to_vec()
            }
            12..=23 => tool_parts.into_iter().chain([text]).collect(),
            24..=31 => {
                let more = pick(&mut rng, ASSISTANT_LINES);
                message.content = format!("{}\n{more}", message.content);
                vec![
                    text,
                    GeneratedPart::Text {
                        text: more.to_owned(),
                    },
                ]
            }
            _ => vec![text],
        };
    }
}

impl GeneratedConversation {
    /// Appends the vendor's wire record: Chatzuri's conversation, NeoAgent's
    /// session with its messages, Robofy's inbox session list item (its
    /// messages come from [`Self::write_robofy_messages`]), or Chatbase's v2
    /// export item.
    pub fn write_wire(&self, buf: &mut Vec<u8>) {
        let text = |value| WireText::of(value, Absent::Empty, false);
        match self.vendor {
            SimVendor::Chatbase => super::chatbase::write_conversation(self, buf),
            SimVendor::Chatzuri => write_json(
                buf,
                &ChatzuriConversationWire {
                    id: &self.id,
                    created_at: WireTime(self.created_us, TimeStyle::RfcSeconds),
                    messages: self
                        .messages
                        .iter()
                        .map(|m| ChatzuriMessageWire {
                            role: m.role.wire(self.vendor),
                            content: &m.content,
                        })
                        .collect(),
                    chatbot_id: super::DEMO_AGENT,
                    customer: text(&self.customer),
                    source: text(&self.source),
                },
            ),
            SimVendor::Neoagent => write_json(
                buf,
                &NeoagentConversationWire {
                    session_id: self.id.parse().unwrap_or_default(),
                    create_time: WireTime(self.created_us, TimeStyle::RfcMicros),
                    uri: text(&self.page_url),
                    messages: self
                        .messages
                        .iter()
                        .map(|m| NeoagentMessageWire {
                            kind: m.role.wire(self.vendor),
                            content: &m.content,
                        })
                        .collect(),
                },
            ),
            SimVendor::Robofy => write_json(
                buf,
                &RobofySessionWire {
                    session_id: &self.id,
                    created_at: WireTime(self.created_us, TimeStyle::Naive),
                    last_message_time: WireTime(
                        self.message_us.last().copied().unwrap_or(self.created_us),
                        TimeStyle::Naive,
                    ),
                    last_message: WireText::new(
                        self.messages.last().map(|m| m.content.as_str()),
                        Absent::Empty,
                        false,
                    ),
                    user_profile_name: text(&self.customer),
                    website_url: text(&self.page_url),
                    last_message_direction: self
                        .messages
                        .last()
                        .map_or("outbound", |m| m.role.wire(SimVendor::Robofy)),
                },
            ),
        }
    }

    /// Appends the Robofy `messages` array of this session's chat.
    pub fn write_robofy_messages(&self, buf: &mut Vec<u8>) {
        let messages: Vec<RobofyMessageWire<'_>> = self
            .messages
            .iter()
            .zip(&self.message_us)
            .enumerate()
            .map(|(i, (message, &at))| RobofyMessageWire {
                id: format!("m-{}", i + 1),
                direction: message.role.wire(SimVendor::Robofy),
                message: &message.content,
                created_at: WireTime(at, TimeStyle::Naive),
            })
            .collect();
        write_json(buf, &messages);
    }

    /// The vendor's wire record as a JSON value (Robofy: the session item).
    pub fn wire(&self) -> Value {
        let mut buf = Vec::new();
        self.write_wire(&mut buf);
        serde_json::from_slice(&buf).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instant a wire time names, read with chrono alone (the client's
    /// parser is not the oracle's judge): RFC 3339, or Robofy's naive UTC.
    fn instant(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                    .map(|t| t.and_utc())
            })
            .ok()
    }

    /// A wire string as the model holds it: trimmed, `None` when blank or
    /// not a string.
    fn cleaned(value: Option<&Value>) -> Option<String> {
        let t = value?.as_str()?.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    #[test]
    fn json_escaping_round_trips() {
        for text in [
            "plain",
            "a\"b\\c",
            "line\nbreak\r\ttab",
            "\u{1}\u{1f}",
            "José 王 🦄",
            "",
        ] {
            let mut buf = Vec::new();
            push_json_str(&mut buf, text);
            let back: String = serde_json::from_slice(&buf).unwrap();
            assert_eq!(back, text);
        }
        let mut buf = Vec::new();
        write_json(&mut buf, &WireText::new(Some("a\"b"), Absent::Empty, true));
        assert_eq!(serde_json::from_slice::<String>(&buf).unwrap(), "  a\"b ");
        for (absent, wire) in [(Absent::Empty, "\"\""), (Absent::Null, "null")] {
            let mut buf = Vec::new();
            write_json(&mut buf, &WireText::new(None, absent, true));
            assert_eq!(buf, wire.as_bytes());
        }
    }

    #[test]
    fn wire_records_parse_and_carry_the_oracle_values() {
        for vendor in SimVendor::ALL {
            for index in 0..300 {
                let lead = lead(vendor, 7, index, 300);
                let wire = lead.wire();
                assert!(wire.is_object(), "{vendor} {index}: {wire}");
                match vendor {
                    SimVendor::Chatzuri => {
                        assert_eq!(wire["id"].as_u64(), Some(10_001 + index as u64));
                        let t = instant(wire["created_at"].as_str().unwrap());
                        assert_eq!(t, Some(lead.created_at));
                        assert_eq!(cleaned(wire.get("name")), lead.name);
                        assert_eq!(cleaned(wire.get("email")), lead.email);
                        assert_eq!(cleaned(wire.get("phone")), lead.phone);
                    }
                    SimVendor::Neoagent => {
                        let text = wire["CreateTime"].as_str().unwrap();
                        assert!(text.ends_with("-08:00") && text.len() == 32, "{text}");
                        let t = instant(text);
                        assert_eq!(t, Some(lead.created_at));
                        assert_eq!(cleaned(wire.get("Content")), lead.message);
                        assert_eq!(
                            wire["SessionID"].to_string(),
                            lead.session_id.clone().unwrap()
                        );
                    }
                    SimVendor::Robofy => {
                        let text = wire["created_at"].as_str().unwrap();
                        assert_eq!(text.len(), 19);
                        assert_eq!(instant(text), Some(lead.created_at));
                        assert_eq!(
                            wire["lead_data"].as_array().unwrap().len(),
                            lead.lead_data.len()
                        );
                    }
                    SimVendor::Chatbase => {
                        assert_eq!(wire["id"].as_str(), lead.id.as_deref());
                        let at = wire["created_at"].as_str().unwrap();
                        assert!(at.ends_with('Z') && at.len() == 20, "{at}");
                        assert_eq!(instant(at), Some(lead.created_at));
                        assert_eq!(cleaned(wire.get("name")), lead.name);
                        assert_eq!(cleaned(wire.get("email")), lead.email);
                        assert_eq!(cleaned(wire.get("phone")), lead.phone);
                        assert_eq!(wire["chatbot_id"], "demo");
                        assert_eq!(wire["account_id"].as_str(), lead.owner_user_id.as_deref());
                    }
                }
            }
        }
    }

    /// The hand-written lead writers give serde's bytes, for both vendors
    /// that have one.
    #[test]
    fn lead_fast_paths_write_the_serde_bytes() {
        type Write = fn(&GeneratedLead, &mut Vec<u8>);
        let writers: [(SimVendor, Write, Write); 2] = [
            (
                SimVendor::Chatzuri,
                GeneratedLead::write_chatzuri,
                GeneratedLead::write_chatzuri_serde,
            ),
            (
                SimVendor::Robofy,
                GeneratedLead::write_robofy,
                GeneratedLead::write_robofy_serde,
            ),
        ];
        for (vendor, fast_writer, serde_writer) in writers {
            for seed in [1, 42] {
                for index in 0..2000 {
                    let lead = lead(vendor, seed, index, 2000);
                    let (mut fast, mut derived) = (Vec::new(), Vec::new());
                    fast_writer(&lead, &mut fast);
                    serde_writer(&lead, &mut derived);
                    assert_eq!(
                        String::from_utf8(fast).unwrap(),
                        String::from_utf8(derived).unwrap(),
                        "{vendor:?} lead {index}"
                    );
                }
            }
        }
    }

    /// Every character serde_json escapes, escaped the same way (`\b` and
    /// `\f` were written as `\u0008` and `\u000c`).
    #[test]
    fn strings_are_escaped_as_serde_escapes_them() {
        for byte in 0u8..=0x7f {
            let text = format!("a{}b", char::from(byte));
            let mut ours = Vec::new();
            push_json_str(&mut ours, &text);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "byte {byte:#04x}"
            );
        }
    }

    #[test]
    fn times_ascend_and_ids_are_unique() {
        for vendor in SimVendor::ALL {
            let leads: Vec<_> = (0..1000).map(|i| lead(vendor, 1, i, 1000)).collect();
            assert!(leads.windows(2).all(|w| w[0].created_at <= w[1].created_at));
            let first = leads[0].created_at.timestamp();
            let last = leads[999].created_at.timestamp();
            assert!(first >= WINDOW_START && last < WINDOW_END);
            let ids: std::collections::HashSet<_> = leads.iter().map(|l| l.id.clone()).collect();
            if vendor != SimVendor::Neoagent {
                assert_eq!(ids.len(), 1000);
            }
        }
    }

    #[test]
    fn generator_is_deterministic_and_seeded() {
        assert_eq!(
            lead(SimVendor::Robofy, 3, 17, 50),
            lead(SimVendor::Robofy, 3, 17, 50)
        );
        assert_eq!(
            conversation(SimVendor::Neoagent, 3, 5, 50),
            conversation(SimVendor::Neoagent, 3, 5, 50)
        );
        let a: Vec<_> = (0..20)
            .map(|i| lead(SimVendor::Chatzuri, 1, i, 20).name)
            .collect();
        let b: Vec<_> = (0..20)
            .map(|i| lead(SimVendor::Chatzuri, 2, i, 20).name)
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn data_has_the_awkward_values() {
        let leads: Vec<_> = SimVendor::ALL
            .iter()
            .flat_map(|&v| (0..250).map(move |i| lead(v, 42, i, 250)))
            .collect();
        let texts: Vec<String> = leads
            .iter()
            .flat_map(|l| {
                [l.name.clone(), l.message.clone(), l.phone.clone()]
                    .into_iter()
                    .flatten()
                    .chain(l.lead_data.iter().map(|f| f.field_value.clone()))
            })
            .collect();
        for prefix in ["=", "+", "-", "@"] {
            assert!(texts.iter().any(|t| t.starts_with(prefix)), "{prefix}");
        }
        assert!(texts.iter().any(|t| t.contains('\n')));
        assert!(texts.iter().any(|t| t.contains('"')));
        assert!(texts.iter().any(|t| t.contains(',')));
        assert!(texts.iter().any(|t| t.contains('王')));
        assert!(leads.iter().any(|l| l.phone.is_none()));
        assert!(leads.iter().any(|l| l.kind == "appointment"));
        assert!(leads.iter().any(|l| l.padded));
        assert!(
            leads
                .iter()
                .any(|l| l.custom_fields().any(|f| f.field_name == "company"))
        );
        let long = (0..40)
            .map(|i| conversation(SimVendor::Robofy, 42, i, 40))
            .filter(|c| c.messages.len() >= 30);
        assert!(long.count() >= 5);
    }

    #[test]
    fn padded_text_repeats_to_the_size_at_a_char_boundary() {
        let text = padded_text("ab 王", 20);
        assert!(text.starts_with("ab 王 ab 王"), "{text}");
        assert!(
            text.len() <= 20 && text.len() >= 20 - "ab 王".len(),
            "{text}"
        );
        assert_eq!(text, text.trim_end());
        // 王 is 3 bytes: a cut inside it steps back to its start.
        assert_eq!(padded_text("王王", 11), "王王 王");
        assert_eq!(padded_text("王王", 8), "王王");
        assert_eq!(padded_text("already long", 4), "already long");
    }

    #[test]
    fn message_bytes_pads_every_message_and_keeps_the_rest() {
        let bytes = 10_000;
        for vendor in SimVendor::ALL {
            for index in [0, 2, 7, 11] {
                let plain = conversation(vendor, 42, index, 40);
                let big = conversation_sized(vendor, 42, index, 40, Some(bytes));
                assert_eq!(big, conversation_sized(vendor, 42, index, 40, Some(bytes)));
                assert_eq!(plain, conversation_sized(vendor, 42, index, 40, None));
                assert_eq!(big.id, plain.id);
                assert_eq!(big.created_at, plain.created_at);
                assert_eq!(big.messages.len(), plain.messages.len());
                for (big, plain) in big.messages.iter().zip(&plain.messages) {
                    assert_eq!((big.role, big.created_at), (plain.role, plain.created_at));
                    if plain.content.is_empty() {
                        // A Chatbase tool-only message stays without text.
                        assert!(big.content.is_empty(), "{vendor:?} {index}");
                        continue;
                    }
                    let first = plain.content.split('\n').next().unwrap();
                    assert!(big.content.starts_with(first), "{vendor:?} {index}");
                    // Chatbase's two-part messages add a short second line.
                    let extra = plain.content.len() - first.len();
                    assert!(
                        big.content.len() > bytes - 200 && big.content.len() <= bytes + extra,
                        "{vendor:?} {index}: {} bytes",
                        big.content.len()
                    );
                }
            }
        }
    }

    #[test]
    fn robofy_sessions_map_back_to_their_slot() {
        for slot in [0, 1, 99, 123_456] {
            let id = robofy_session_id(9, slot);
            assert_eq!(id.len(), 36);
            assert_eq!(robofy_session_slot(9, &id), Some(slot));
            assert_eq!(robofy_session_slot(8, &id), None);
        }
        assert_eq!(robofy_session_slot(9, "undefined"), None);
    }

    #[test]
    fn chatzuri_source_filter_matches_a_scan() {
        let sources = ["WhatsApp", "API"];
        let scan: Vec<usize> = (5..200)
            .filter(|&i| sources.contains(&chatzuri_source(4, i)))
            .collect();
        let computed: Vec<usize> = (0..)
            .map_while(|k| chatzuri_nth_with_source(4, &sources, 5, 200, k))
            .collect();
        assert_eq!(scan, computed);
        assert_eq!(chatzuri_nth_with_source(4, &["Nope"], 0, 100, 0), None);
    }
}
