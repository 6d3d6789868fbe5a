//! The vendors' wire formats, and nothing else. Each vendor module builds the
//! request for a page cursor and turns a response body into common-model
//! records plus the next cursor. No I/O happens here, so every module is
//! unit-tested on the payloads in `fixtures/`; the fetcher (`crate::fetch`)
//! and the export plans (`crate::export`) own the network.

pub mod chatzuri;
pub mod neoagent;
pub mod robofy;

use serde_json::Value;

use crate::error::ErrorKind;

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
}

/// Why a 2xx body could not be turned into a page.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON, or not the expected shape; says what was expected.
    Malformed(String),
    /// The vendor said no inside a success status (NeoAgent `Success:
    /// false`): `kind` is classified from the vendor's code.
    Refused { kind: ErrorKind, code: Option<i64>, message: String },
}

/// How the records of one run are mapped: the agent as the user gave it,
/// and whether the vendor's original record is kept as `raw`.
#[derive(Debug, Clone)]
pub struct MapContext {
    pub agent_id: String,
    pub keep_raw: bool,
}

/// Percent-encodes one path segment that comes from the user.
pub fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A short, single-line excerpt of a body for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if body.len() > 200 {
        format!("{flat}...")
    } else {
        flat.to_owned()
    }
}

/// The human message inside a vendor error body, if it has one:
/// Robofy `{message, error:{code, detail}}`, NeoAgent `Message`, or a
/// generic `error`/`message`/`detail`.
pub fn error_detail(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
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
