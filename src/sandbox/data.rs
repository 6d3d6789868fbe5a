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
use serde_json::Value;

use crate::model::Vendor;

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

fn vendor_salt(vendor: Vendor) -> u64 {
    match vendor {
        Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
        Vendor::Chatzuri => 0x1000,
        Vendor::Neoagent => 0x2000,
        Vendor::Robofy => 0x3000,
    }
}

fn hash(seed: u64, vendor: Vendor, purpose: Purpose, index: u64) -> u64 {
    let salt = vendor_salt(vendor) | purpose as u64;
    mix(mix(seed ^ mix(salt)) ^ index)
}

// ---------------------------------------------------------------- time

/// Whether a vendor's timestamps carry microseconds or whole seconds.
fn has_micros(vendor: Vendor) -> bool {
    vendor == Vendor::Neoagent
}

fn spread_us(seed: u64, vendor: Vendor, purpose: Purpose, index: usize, total: usize) -> i64 {
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
pub fn lead_time_us(vendor: Vendor, seed: u64, index: usize, total: usize) -> i64 {
    spread_us(seed, vendor, Purpose::LeadTime, index, total)
}

/// The conversation's `created_at` in microseconds, as on the wire.
pub fn conversation_time_us(vendor: Vendor, seed: u64, index: usize, total: usize) -> i64 {
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

/// The inside of a JSON string literal, without the quotes.
fn push_escaped(buf: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
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

/// How a vendor writes a value it does not have.
#[derive(Clone, Copy)]
enum Absent {
    Empty,
    Null,
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
pub const CHATZURI_SOURCES: &[&str] = &crate::vendors::chatzuri::CHANNELS;
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
    pub vendor: Vendor,
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
    let h = hash(seed, Vendor::Robofy, Purpose::Session, slot as u64);
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
    let last = text.rsplit('-').next()?;
    if last.len() != 12 {
        return None;
    }
    let slot = usize::try_from(u64::from_str_radix(last, 16).ok()?).ok()?;
    (robofy_session_id(seed, slot) == text).then_some(slot)
}

/// The Chatzuri `chatbot_owner_user_id` of the demo agent.
pub fn chatzuri_owner(seed: u64) -> String {
    format!(
        "usr_{:016x}",
        hash(seed, Vendor::Chatzuri, Purpose::Owner, 0)
    )
}

/// Generates lead `index` of `total` for `vendor` and `seed`.
pub fn lead(vendor: Vendor, seed: u64, index: usize, total: usize) -> GeneratedLead {
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
        created_us,
    };
    match vendor {
        Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
        Vendor::Chatzuri => {
            lead.id = Some((CHATZURI_ID_BASE + index as u64).to_string());
            lead.owner_user_id = Some(chatzuri_owner(seed));
            lead.null_for_absent = rng.bool();
        }
        Vendor::Neoagent => {
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
        Vendor::Robofy => {
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

    /// The NeoAgent `SessionID` as a number.
    pub fn neoagent_session(&self) -> Option<u64> {
        self.session_id.as_deref()?.parse().ok()
    }

    /// Appends the vendor's wire record (one element of its list).
    pub fn write_wire(&self, buf: &mut Vec<u8>) {
        match self.vendor {
            Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
            Vendor::Chatzuri => self.write_chatzuri(buf),
            Vendor::Neoagent => self.write_neoagent(buf),
            Vendor::Robofy => self.write_robofy(buf),
        }
    }

    /// The vendor's wire record as a JSON value.
    pub fn wire(&self) -> Value {
        let mut buf = Vec::new();
        self.write_wire(&mut buf);
        serde_json::from_slice(&buf).unwrap_or(Value::Null)
    }

    fn write_chatzuri(&self, buf: &mut Vec<u8>) {
        let absent = if self.null_for_absent {
            Absent::Null
        } else {
            Absent::Empty
        };
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

    fn write_neoagent(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"Type\":");
        buf.extend_from_slice(if self.kind == "appointment" {
            b"\"Appointment\""
        } else {
            b"\"Lead\""
        });
        buf.extend_from_slice(b",\"Name\":");
        push_opt(buf, self.name.as_deref(), Absent::Empty, self.padded);
        buf.extend_from_slice(b",\"Email\":");
        push_opt(buf, self.email.as_deref(), Absent::Empty, self.padded);
        buf.extend_from_slice(b",\"PhoneNumber\":");
        push_opt(buf, self.phone.as_deref(), Absent::Empty, false);
        buf.extend_from_slice(b",\"CreateTime\":");
        write_time(buf, self.created_us, TimeStyle::PacificMicros);
        buf.extend_from_slice(b",\"Content\":");
        push_opt(buf, self.message.as_deref(), Absent::Empty, false);
        buf.extend_from_slice(b",\"SessionID\":");
        push_u64(buf, self.neoagent_session().unwrap_or_default());
        buf.extend_from_slice(b",\"URI\":");
        push_opt(buf, self.page_url.as_deref(), Absent::Empty, false);
        buf.extend_from_slice(b",\"Count\":");
        push_u64(buf, u64::from(self.count.unwrap_or_default()));
        buf.push(b'}');
    }

    fn write_robofy(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"id\":");
        push_opt(buf, self.id.as_deref(), Absent::Empty, false);
        buf.extend_from_slice(b",\"created_at\":");
        write_time(buf, self.created_us, TimeStyle::Naive);
        buf.extend_from_slice(b",\"source\":");
        push_opt(buf, self.source.as_deref(), Absent::Empty, false);
        buf.extend_from_slice(b",\"page_url\":");
        push_opt(buf, self.page_url.as_deref(), Absent::Empty, false);
        buf.extend_from_slice(b",\"ip_address\":");
        push_opt(buf, self.ip_address.as_deref(), Absent::Empty, false);
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
            let padded = self.padded
                && matches!(field.maps_to, Some("name" | "email"))
                && !field.field_value.is_empty();
            push_opt(buf, Some(&field.field_value), Absent::Empty, padded);
            buf.push(b'}');
        }
        buf.extend_from_slice(b"]}");
    }
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
    pub fn wire(self, vendor: Vendor) -> &'static str {
        match (vendor, self) {
            (Vendor::Chatbase, _) => unreachable!("the sandbox does not simulate Chatbase yet"),
            (Vendor::Chatzuri, _) => self.model(),
            (Vendor::Neoagent, Role::User) => "User",
            (Vendor::Neoagent, Role::Assistant) => "AI",
            (Vendor::Robofy, Role::User) => "inbound",
            (Vendor::Robofy, Role::Assistant) => "outbound",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedMessage {
    pub role: Role,
    pub content: String,
    /// Robofy only; the other vendors send no message times.
    pub created_at: Option<DateTime<Utc>>,
}

/// A generated conversation (see the module docs for the wire mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedConversation {
    pub vendor: Vendor,
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
    pub messages: Vec<GeneratedMessage>,
    created_us: i64,
    message_us: Vec<i64>,
}

/// How many messages conversation `index` has; every fifth one is long.
pub fn message_count(vendor: Vendor, seed: u64, index: usize) -> usize {
    let h = hash(seed, vendor, Purpose::Conversation, index as u64);
    if index % 5 == 2 {
        30 + (h % 16) as usize
    } else {
        1 + (h % 12) as usize
    }
}

fn chatzuri_rotation(seed: u64) -> usize {
    (hash(seed, Vendor::Chatzuri, Purpose::Rotation, 0) % 16) as usize
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
    vendor: Vendor,
    seed: u64,
    index: usize,
    total: usize,
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
        let content = pick(&mut rng, pool).to_owned();
        let created_at = (vendor == Vendor::Robofy).then(|| to_datetime(at));
        messages.push(GeneratedMessage {
            role,
            content,
            created_at,
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
        messages,
        created_us,
        message_us,
    };
    match vendor {
        Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
        Vendor::Chatzuri => {
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
        Vendor::Neoagent => {
            conversation.id = (NEOAGENT_SESSION_BASE + index as u64).to_string();
            conversation.session_id = Some(conversation.id.clone());
            conversation.page_url = opt(pick(&mut rng, URIS));
        }
        Vendor::Robofy => {
            conversation.id = robofy_session_id(seed, index);
            conversation.session_id = Some(conversation.id.clone());
            conversation.customer = (!percent(&mut rng, 15)).then(|| person.name.to_owned());
            conversation.page_url = opt(pick(&mut rng, URIS));
        }
    }
    conversation
}

impl GeneratedConversation {
    /// Appends the vendor's wire record: Chatzuri's conversation, NeoAgent's
    /// session with its messages, or Robofy's inbox session list item (its
    /// messages come from [`Self::write_robofy_messages`]).
    pub fn write_wire(&self, buf: &mut Vec<u8>) {
        match self.vendor {
            Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
            Vendor::Chatzuri => {
                buf.extend_from_slice(b"{\"id\":");
                push_json_str(buf, &self.id);
                buf.extend_from_slice(b",\"created_at\":");
                write_time(buf, self.created_us, TimeStyle::RfcSeconds);
                buf.extend_from_slice(b",\"messages\":");
                self.write_plain_messages(buf, b"role", b"content");
                buf.extend_from_slice(b",\"chatbot_id\":");
                push_json_str(buf, super::DEMO_AGENT);
                buf.extend_from_slice(b",\"customer\":");
                push_opt(buf, self.customer.as_deref(), Absent::Empty, false);
                buf.extend_from_slice(b",\"source\":");
                push_opt(buf, self.source.as_deref(), Absent::Empty, false);
                buf.push(b'}');
            }
            Vendor::Neoagent => {
                buf.extend_from_slice(b"{\"SessionID\":");
                buf.extend_from_slice(self.id.as_bytes());
                buf.extend_from_slice(b",\"CreateTime\":");
                write_time(buf, self.created_us, TimeStyle::RfcMicros);
                buf.extend_from_slice(b",\"URI\":");
                push_opt(buf, self.page_url.as_deref(), Absent::Empty, false);
                buf.extend_from_slice(b",\"Messages\":");
                self.write_plain_messages(buf, b"Type", b"Content");
                buf.push(b'}');
            }
            Vendor::Robofy => {
                buf.extend_from_slice(b"{\"session_id\":");
                push_json_str(buf, &self.id);
                buf.extend_from_slice(b",\"created_at\":");
                write_time(buf, self.created_us, TimeStyle::Naive);
                buf.extend_from_slice(b",\"last_message_time\":");
                write_time(
                    buf,
                    self.message_us.last().copied().unwrap_or(self.created_us),
                    TimeStyle::Naive,
                );
                buf.extend_from_slice(b",\"last_message\":");
                push_opt(
                    buf,
                    self.messages.last().map(|m| m.content.as_str()),
                    Absent::Empty,
                    false,
                );
                buf.extend_from_slice(b",\"user_profile_name\":");
                push_opt(buf, self.customer.as_deref(), Absent::Empty, false);
                buf.extend_from_slice(b",\"website_url\":");
                push_opt(buf, self.page_url.as_deref(), Absent::Empty, false);
                buf.extend_from_slice(b",\"last_message_direction\":");
                let direction = self
                    .messages
                    .last()
                    .map_or("outbound", |m| m.role.wire(Vendor::Robofy));
                push_json_str(buf, direction);
                buf.push(b'}');
            }
        }
    }

    fn write_plain_messages(&self, buf: &mut Vec<u8>, role_key: &[u8], content_key: &[u8]) {
        buf.push(b'[');
        for (i, message) in self.messages.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"");
            buf.extend_from_slice(role_key);
            buf.extend_from_slice(b"\":");
            push_json_str(buf, message.role.wire(self.vendor));
            buf.extend_from_slice(b",\"");
            buf.extend_from_slice(content_key);
            buf.extend_from_slice(b"\":");
            push_json_str(buf, &message.content);
            buf.push(b'}');
        }
        buf.push(b']');
    }

    /// Appends the Robofy `messages` array of this session's chat.
    pub fn write_robofy_messages(&self, buf: &mut Vec<u8>) {
        buf.push(b'[');
        for (i, (message, &at)) in self.messages.iter().zip(&self.message_us).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"id\":\"m-");
            push_u64(buf, i as u64 + 1);
            buf.extend_from_slice(b"\",\"direction\":");
            push_json_str(buf, message.role.wire(Vendor::Robofy));
            buf.extend_from_slice(b",\"message\":");
            push_json_str(buf, &message.content);
            buf.extend_from_slice(b",\"created_at\":");
            write_time(buf, at, TimeStyle::Naive);
            buf.push(b'}');
        }
        buf.push(b']');
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
        push_opt(&mut buf, Some("a\"b"), Absent::Empty, true);
        assert_eq!(serde_json::from_slice::<String>(&buf).unwrap(), "  a\"b ");
    }

    #[test]
    fn wire_records_parse_and_carry_the_oracle_values() {
        for vendor in Vendor::ALL {
            for index in 0..300 {
                let lead = lead(vendor, 7, index, 300);
                let wire = lead.wire();
                assert!(wire.is_object(), "{vendor} {index}: {wire}");
                match vendor {
                    Vendor::Chatbase => unreachable!("the sandbox does not simulate Chatbase yet"),
                    Vendor::Chatzuri => {
                        assert_eq!(wire["id"].as_u64(), Some(10_001 + index as u64));
                        let t = crate::time::parse_vendor_timestamp(
                            wire["created_at"].as_str().unwrap(),
                        );
                        assert_eq!(t, Some(lead.created_at));
                        assert_eq!(crate::model::clean_string(wire.get("name")), lead.name);
                        assert_eq!(crate::model::clean_string(wire.get("email")), lead.email);
                        assert_eq!(crate::model::clean_string(wire.get("phone")), lead.phone);
                    }
                    Vendor::Neoagent => {
                        let text = wire["CreateTime"].as_str().unwrap();
                        assert!(text.ends_with("-08:00") && text.len() == 32, "{text}");
                        let t = crate::time::parse_vendor_timestamp(text);
                        assert_eq!(t, Some(lead.created_at));
                        assert_eq!(
                            crate::model::clean_string(wire.get("Content")),
                            lead.message
                        );
                        assert_eq!(
                            wire["SessionID"].to_string(),
                            lead.session_id.clone().unwrap()
                        );
                    }
                    Vendor::Robofy => {
                        let text = wire["created_at"].as_str().unwrap();
                        assert_eq!(text.len(), 19);
                        assert_eq!(
                            crate::time::parse_vendor_timestamp(text),
                            Some(lead.created_at)
                        );
                        assert_eq!(
                            wire["lead_data"].as_array().unwrap().len(),
                            lead.lead_data.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn times_ascend_and_ids_are_unique() {
        for vendor in Vendor::ALL {
            let leads: Vec<_> = (0..1000).map(|i| lead(vendor, 1, i, 1000)).collect();
            assert!(leads.windows(2).all(|w| w[0].created_at <= w[1].created_at));
            let first = leads[0].created_at.timestamp();
            let last = leads[999].created_at.timestamp();
            assert!(first >= WINDOW_START && last < WINDOW_END);
            let ids: std::collections::HashSet<_> = leads.iter().map(|l| l.id.clone()).collect();
            if vendor != Vendor::Neoagent {
                assert_eq!(ids.len(), 1000);
            }
        }
    }

    #[test]
    fn generator_is_deterministic_and_seeded() {
        assert_eq!(
            lead(Vendor::Robofy, 3, 17, 50),
            lead(Vendor::Robofy, 3, 17, 50)
        );
        assert_eq!(
            conversation(Vendor::Neoagent, 3, 5, 50),
            conversation(Vendor::Neoagent, 3, 5, 50)
        );
        let a: Vec<_> = (0..20)
            .map(|i| lead(Vendor::Chatzuri, 1, i, 20).name)
            .collect();
        let b: Vec<_> = (0..20)
            .map(|i| lead(Vendor::Chatzuri, 2, i, 20).name)
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn data_has_the_awkward_values() {
        let leads: Vec<_> = Vendor::ALL
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
            .map(|i| conversation(Vendor::Robofy, 42, i, 40))
            .filter(|c| c.messages.len() >= 30);
        assert!(long.count() >= 5);
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
