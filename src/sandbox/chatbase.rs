//! Simulated Chatbase (`/chatbase/api`: one base URL for both of its APIs),
//! as `vendor-apis.md` section 6 describes it:
//!
//! - v1 `GET /v1/get-leads?chatbotId=A[&startDate][&endDate]&page&size` →
//!   `{"collectedCustomers":[lead, ...]}`, oldest first, numbered pages with
//!   no end marker (a short page ends), `size` default 10, at most 100;
//! - v1 `GET /v1/get-conversations?chatbotId=A[&filteredSources][&startDate]
//!   [&endDate]&page&size` → `{"data":[conversation, ...]}`, newest first,
//!   the same paging; messages `{role, content}` only, no tool-only ones;
//! - v2 `GET /v2/agents/{agentId}/conversations/export?[limit][&cursor]
//!   [&startDate][&endDate][&source][&conversationId][&include]` →
//!   `{"data":[...],"pagination":{"cursor","hasMore","total"}}`, newest
//!   first, `limit` 1..=20 (default 20), keyset cursors that only work with
//!   the query that produced them. With a `source` filter a page scans
//!   `limit` conversations and returns the matching ones, so pages can be
//!   short, or empty, while `hasMore` is true.
//!
//! v1 and v2 dates: v1 takes strict `YYYY-MM-DD` (whole UTC days, both
//! inclusive); v2 takes that or an ISO 8601 date-time (`endDate` as a day is
//! the whole day, inclusive), and an inverted range is 400
//! `VALIDATION_INVALID_DATE_RANGE`. The agent [`DEMO_AGENT`] has data;
//! [`CHATBASE_V1_ONLY_AGENT`] has the same data but its plan lacks v2 (403
//! `SUBSCRIPTION_API_RESTRICTED_PLAN` on export); another id is 404.
//!
//! Every response carries `X-RateLimit-Limit` (the `--rate-limit` value, or
//! 1000), `X-RateLimit-Remaining` (what is left in the sandbox's current
//! one-second window) and `X-RateLimit-Reset` (Unix seconds at its end);
//! every v2 response an `x-request-id`. Errors: v1 `{"message", "issues"?}`,
//! v2 `{"error":{"code","message","details"?}}`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::data::{self, ChatbaseSourceSet, GeneratedConversation, GeneratedLead, GeneratedPart};
use super::server::{
    AppState, Failure, Shared, day_start_us, day_window, instant_window, json_bytes, json_response,
    parse_day, present, split_list,
};
use super::{CHATBASE_V1_ONLY_AGENT, DEMO_AGENT, SimVendor};

/// The largest v2 export `limit`, and its default.
pub const CHATBASE_EXPORT_MAX_LIMIT: usize = 20;
/// The largest v1 `size` (get-leads and get-conversations).
pub const CHATBASE_V1_MAX_SIZE: usize = 100;
/// The v1 `size` without one.
pub const CHATBASE_V1_DEFAULT_SIZE: usize = 10;
/// `X-RateLimit-Limit` when no `--rate-limit` is set.
const DEFAULT_RATE_LIMIT: u32 = 1000;

const VENDOR: SimVendor = SimVendor::Chatbase;
const PLAN_MESSAGE: &str = "A Standard plan or higher is required to access the API";

pub(crate) fn v1_router() -> Router<AppState> {
    let wrong_method =
        || async { CbError::v1(Failure::MethodNotAllowed("GET"), "Method not allowed") };
    Router::new()
        .route("/get-leads", get(v1_leads).fallback(wrong_method))
        .route(
            "/get-conversations",
            get(v1_conversations).fallback(wrong_method),
        )
        .fallback(|| async { CbError::v1(Failure::NotFound("NOT_FOUND"), "Not found") })
}

pub(crate) fn v2_router() -> Router<AppState> {
    Router::new()
        .route(
            "/agents/{agent}/conversations/export",
            get(v2_export).fallback(|| async {
                CbError::v2(Failure::MethodNotAllowed("GET"), "Method not allowed")
            }),
        )
        .fallback(|OriginalUri(uri): OriginalUri| async move {
            CbError::v2(
                Failure::NotFound("RESOURCE_NOT_FOUND"),
                &format!("no endpoint {}", uri.path()),
            )
        })
}

// ------------------------------------------------------------------ errors

/// A Chatbase failure: v1's `{"message", "issues"?}` or v2's
/// `{"error":{"code","message","details"?}}`.
#[derive(Debug)]
pub(crate) struct CbError {
    v2: bool,
    failure: Failure,
    message: String,
    /// A field the request got wrong, with what is wrong with it.
    field: Option<(&'static str, String)>,
}

impl CbError {
    fn v1(failure: Failure, message: &str) -> CbError {
        CbError {
            v2: false,
            failure,
            message: message.to_owned(),
            field: None,
        }
    }

    fn v2(failure: Failure, message: &str) -> CbError {
        CbError {
            v2: true,
            ..CbError::v1(failure, message)
        }
    }

    /// 400 for a bad parameter.
    fn invalid(v2: bool, field: &'static str, problem: impl Into<String>) -> CbError {
        let message = if v2 {
            "Invalid request"
        } else {
            "Invalid request parameters"
        };
        CbError {
            field: Some((field, problem.into())),
            ..CbError::v1(Failure::BadRequest("VALIDATION_INVALID_BODY"), message)
        }
        .in_v2(v2)
    }

    fn in_v2(mut self, v2: bool) -> CbError {
        self.v2 = v2;
        self
    }
}

#[derive(Serialize)]
struct V1Failure<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    issues: Vec<Issue<'a>>,
}

#[derive(Serialize)]
struct Issue<'a> {
    field: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct V2Failure<'a> {
    error: V2Error<'a>,
}

#[derive(Serialize)]
struct V2Error<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    details: BTreeMap<&'a str, &'a str>,
}

impl IntoResponse for CbError {
    fn into_response(self) -> Response {
        let status = self.failure.status();
        let body = if self.v2 {
            let code = match self.failure {
                Failure::BadRequest(code) | Failure::Forbidden(code) | Failure::NotFound(code) => {
                    code
                }
                Failure::MissingKey => "AUTH_MISSING_API_KEY",
                Failure::Unauthorized => "AUTH_INVALID_API_KEY",
                Failure::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
                Failure::TooManyRequests => "RATE_LIMIT_TOO_MANY_REQUESTS",
                Failure::Unavailable => "SERVICE_UNDER_MAINTENANCE",
            };
            json_bytes(&V2Failure {
                error: V2Error {
                    code,
                    message: &self.message,
                    details: self
                        .field
                        .iter()
                        .map(|(field, problem)| (*field, problem.as_str()))
                        .collect(),
                },
            })
        } else {
            json_bytes(&V1Failure {
                message: &self.message,
                issues: self
                    .field
                    .iter()
                    .map(|(field, problem)| Issue {
                        field,
                        message: problem,
                    })
                    .collect(),
            })
        };
        let mut response = json_response(status, body);
        if let Failure::MethodNotAllowed(allow) = self.failure {
            response
                .headers_mut()
                .insert(axum::http::header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The v1 answer to a failure found by the gate.
pub(crate) fn v1_failure(failure: Failure, _detail: &str) -> Response {
    let message = match failure {
        Failure::MissingKey | Failure::Unauthorized => "Unauthorized access",
        Failure::TooManyRequests => "Rate limit exceeded",
        Failure::Unavailable => "Service unavailable",
        _ => "Invalid request",
    };
    CbError::v1(failure, message).into_response()
}

/// The v2 answer to a failure found by the gate.
pub(crate) fn v2_failure(failure: Failure, _detail: &str) -> Response {
    let message = match failure {
        Failure::MissingKey => "Authentication required",
        Failure::Unauthorized => "Invalid API key",
        Failure::TooManyRequests => "Too many requests, please try again later",
        Failure::Unavailable => {
            "The API is temporarily unavailable for scheduled maintenance, please try again later"
        }
        _ => "Invalid request",
    };
    CbError::v2(failure, message).into_response()
}

/// Adds the rate-limit headers (and on v2 `x-request-id`) to a response.
pub(crate) fn with_headers(
    mut response: Response,
    v2: bool,
    number: u64,
    rate_limit: Option<u32>,
    count: u32,
    reset_unix: u64,
) -> Response {
    let limit = rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("x-ratelimit-limit", limit.to_string());
    put(
        "x-ratelimit-remaining",
        limit.saturating_sub(count).to_string(),
    );
    put("x-ratelimit-reset", reset_unix.to_string());
    if v2 {
        put("x-request-id", request_id(number));
    }
    response
}

/// The `x-request-id` of request `number`: UUID-shaped, unique per request.
pub fn request_id(number: u64) -> String {
    format!("6c1f0e3a-2b7d-4e91-8f55-{:012x}", number & 0xffff_ffff_ffff)
}

// ------------------------------------------------------------------ wire

fn rfc3339(at: DateTime<Utc>, millis: bool) -> String {
    let format = if millis {
        SecondsFormat::Millis
    } else {
        SecondsFormat::Secs
    };
    at.to_rfc3339_opts(format, true)
}

/// A lead's `name`, `email` or `phone` as Chatbase writes it.
enum Field<'a> {
    Text(&'a str),
    /// With surrounding spaces a client must trim.
    Padded(&'a str),
    Empty,
    Null,
    /// Not on the wire at all.
    Omitted,
}

impl Field<'_> {
    fn is_omitted(&self) -> bool {
        matches!(self, Field::Omitted)
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Text(text) => serializer.serialize_str(text),
            Field::Padded(text) => serializer.serialize_str(&format!("  {text} ")),
            Field::Empty => serializer.serialize_str(""),
            Field::Null | Field::Omitted => serializer.serialize_none(),
        }
    }
}

#[derive(Serialize)]
struct LeadWire<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Field::is_omitted")]
    name: Field<'a>,
    #[serde(skip_serializing_if = "Field::is_omitted")]
    email: Field<'a>,
    #[serde(skip_serializing_if = "Field::is_omitted")]
    phone: Field<'a>,
    created_at: String,
    chatbot_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

impl<'a> LeadWire<'a> {
    fn new(lead: &'a GeneratedLead, agent: &'a str) -> LeadWire<'a> {
        let absent = lead.chatbase_absent();
        let field = |value: &'a Option<String>, padded: bool| match value.as_deref() {
            Some(text) if padded => Field::Padded(text),
            Some(text) => Field::Text(text),
            None => absent.into(),
        };
        LeadWire {
            id: lead.id.as_deref().unwrap_or_default(),
            name: field(&lead.name, lead.padded),
            email: field(&lead.email, lead.padded),
            phone: field(&lead.phone, false),
            created_at: rfc3339(lead.created_at, false),
            chatbot_id: agent,
            account_id: lead.owner_user_id.as_deref(),
        }
    }
}

/// How a Chatbase lead writes its absent values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AbsentAs {
    Empty,
    Null,
    Omitted,
}

impl<'a> From<AbsentAs> for Field<'a> {
    fn from(absent: AbsentAs) -> Field<'a> {
        match absent {
            AbsentAs::Empty => Field::Empty,
            AbsentAs::Null => Field::Null,
            AbsentAs::Omitted => Field::Omitted,
        }
    }
}

/// Appends the v1 wire record of a Chatbase lead served for `agent`.
pub(crate) fn write_lead(lead: &GeneratedLead, agent: &str, buf: &mut Vec<u8>) {
    let _ = serde_json::to_writer(buf, &LeadWire::new(lead, agent));
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationWire<'a> {
    id: &'a str,
    title: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
    user_id: Option<&'a str>,
    source: Option<&'a str>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<MessageWire<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageWire<'a> {
    id: &'a str,
    role: &'a str,
    parts: &'a [GeneratedPart],
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    /// Present (maybe `null`) on assistant messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
}

#[derive(Serialize)]
struct Metadata {
    score: Option<f64>,
}

impl<'a> ConversationWire<'a> {
    fn new(c: &'a GeneratedConversation, with_messages: bool) -> ConversationWire<'a> {
        let messages = with_messages.then(|| {
            c.messages
                .iter()
                .map(|m| {
                    let assistant = m.role == data::Role::Assistant;
                    MessageWire {
                        id: m.id.as_deref().unwrap_or_default(),
                        role: m.role.wire(VENDOR),
                        parts: &m.parts,
                        created_at: m.created_at.map(|t| t.timestamp()),
                        feedback: assistant.then_some(m.feedback),
                        metadata: assistant.then_some(Metadata { score: m.score }),
                    }
                })
                .collect()
        });
        ConversationWire {
            id: &c.id,
            title: c.title.as_deref(),
            created_at: c.created_at.timestamp(),
            updated_at: c.updated_at.unwrap_or(c.created_at).timestamp(),
            user_id: c.customer.as_deref(),
            source: c.source.as_deref(),
            status: c.status.unwrap_or("ended"),
            messages,
        }
    }
}

#[derive(Serialize)]
struct V1ConversationWire<'a> {
    id: &'a str,
    created_at: String,
    messages: Vec<V1MessageWire<'a>>,
    chatbot_id: &'a str,
    customer: &'a str,
    source: &'a str,
}

#[derive(Serialize)]
struct V1MessageWire<'a> {
    role: &'a str,
    content: &'a str,
}

impl<'a> V1ConversationWire<'a> {
    fn new(c: &'a GeneratedConversation, agent: &'a str) -> V1ConversationWire<'a> {
        V1ConversationWire {
            id: &c.id,
            created_at: rfc3339(c.created_at, true),
            // v1 knows only text: a tool-only message is not on it.
            messages: c
                .messages
                .iter()
                .filter_map(|m| {
                    Some(V1MessageWire {
                        role: m.role.wire(VENDOR),
                        content: m.model_content()?,
                    })
                })
                .collect(),
            chatbot_id: agent,
            customer: c.customer.as_deref().unwrap_or_default(),
            source: c.source.as_deref().unwrap_or_default(),
        }
    }
}

/// Appends the v2 export record of a Chatbase conversation.
pub(crate) fn write_conversation(c: &GeneratedConversation, buf: &mut Vec<u8>) {
    let _ = serde_json::to_writer(buf, &ConversationWire::new(c, true));
}

/// The v1 `get-conversations` record of a conversation served for `agent`.
pub fn v1_conversation_wire(c: &GeneratedConversation, agent: &str) -> serde_json::Value {
    serde_json::to_value(V1ConversationWire::new(c, agent)).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LeadsPage<'a> {
    collected_customers: Vec<LeadWire<'a>>,
}

#[derive(Serialize)]
struct V1ConversationsPage<'a> {
    data: Vec<V1ConversationWire<'a>>,
}

#[derive(Serialize)]
struct ExportPage<'a> {
    data: Vec<ConversationWire<'a>>,
    pagination: Pagination,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    cursor: Option<String>,
    has_more: bool,
    total: usize,
}

// ------------------------------------------------------------------ v1

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Query {
    chatbot_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<String>,
    size: Option<String>,
    filtered_sources: Option<String>,
}

fn query<T>(query: Result<Query<T>, QueryRejection>, v2: bool) -> Result<T, CbError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| CbError::invalid(v2, "query", rejection.body_text()))
}

/// The agent ids with data: both serve the same records.
fn known_agent(agent: &str) -> bool {
    agent == DEMO_AGENT || agent == CHATBASE_V1_ONLY_AGENT
}

struct V1Listing {
    agent: String,
    window_start: Option<chrono::NaiveDate>,
    window_end: Option<chrono::NaiveDate>,
    offset: usize,
    size: usize,
}

fn v1_listing(query: &V1Query) -> Result<V1Listing, CbError> {
    let agent = present(&query.chatbot_id)
        .ok_or_else(|| CbError::invalid(false, "chatbotId", "Required"))?;
    if !known_agent(agent) {
        return Err(CbError::v1(
            Failure::NotFound("NOT_FOUND"),
            "Chatbot not found",
        ));
    }
    let day = |field: &'static str, value: &Option<String>| match present(value) {
        None => Ok(None),
        Some(text) => parse_day(text).map(Some).ok_or_else(|| {
            CbError::invalid(
                false,
                field,
                format!("'{text}' is not a valid date: expected YYYY-MM-DD"),
            )
        }),
    };
    let number = |field: &'static str, value: &Option<String>, default: usize, max: usize| {
        let Some(text) = present(value) else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(0) => Err(CbError::invalid(
                false,
                field,
                "Number must be greater than or equal to 1",
            )),
            Ok(n) if n > max => Err(CbError::invalid(
                false,
                field,
                format!("Number must be less than or equal to {max}"),
            )),
            Ok(n) => Ok(n),
            Err(_) => Err(CbError::invalid(false, field, "Expected a number")),
        }
    };
    let page = number("page", &query.page, 1, usize::MAX)?;
    let size = number(
        "size",
        &query.size,
        CHATBASE_V1_DEFAULT_SIZE,
        CHATBASE_V1_MAX_SIZE,
    )?;
    Ok(V1Listing {
        agent: agent.to_owned(),
        window_start: day("startDate", &query.start_date)?,
        window_end: day("endDate", &query.end_date)?,
        offset: (page - 1).saturating_mul(size),
        size,
    })
}

async fn v1_leads(
    State(shared): State<AppState>,
    params: Result<Query<V1Query>, QueryRejection>,
) -> Result<Response, CbError> {
    let listing = v1_listing(&query(params, false)?)?;
    let seed = shared.options.seed;
    let total = shared.options.leads;
    let window = day_window(total, listing.window_start, listing.window_end, |i| {
        data::lead_time_us(VENDOR, seed, i, total)
    });
    let first = window.start.saturating_add(listing.offset).min(window.end);
    let last = first.saturating_add(listing.size).min(window.end);
    let leads: Vec<GeneratedLead> = (first..last)
        .map(|i| data::lead(VENDOR, seed, i, total))
        .collect();
    let page = LeadsPage {
        collected_customers: leads
            .iter()
            .map(|lead| LeadWire::new(lead, &listing.agent))
            .collect(),
    };
    Ok(json_response(StatusCode::OK, json_bytes(&page)))
}

async fn v1_conversations(
    State(shared): State<AppState>,
    params: Result<Query<V1Query>, QueryRejection>,
) -> Result<Response, CbError> {
    let params = query(params, false)?;
    let listing = v1_listing(&params)?;
    let seed = shared.options.seed;
    let total = shared.options.conversations;
    let message_bytes = shared.options.message_bytes;
    let window = day_window(total, listing.window_start, listing.window_end, |i| {
        data::conversation_time_us(VENDOR, seed, i, total)
    });
    let sources = split_list(params.filtered_sources.as_deref());
    let order = Newest::new(seed, &sources, window);
    let indices: Vec<usize> = (listing.offset..listing.offset.saturating_add(listing.size))
        .map_while(|k| order.nth(k))
        .collect();
    let conversations: Vec<GeneratedConversation> = indices
        .into_iter()
        .map(|i| data::conversation_sized(VENDOR, seed, i, total, message_bytes))
        .collect();
    let page = V1ConversationsPage {
        data: conversations
            .iter()
            .map(|c| V1ConversationWire::new(c, &listing.agent))
            .collect(),
    };
    Ok(json_response(StatusCode::OK, json_bytes(&page)))
}

/// The conversations of a window, newest first, optionally only those of
/// some sources: the `k`-th found in O(1).
struct Newest {
    window: std::ops::Range<usize>,
    filter: Option<ChatbaseSourceSet>,
}

impl Newest {
    fn new(seed: u64, sources: &[String], window: std::ops::Range<usize>) -> Newest {
        let names: Vec<&str> = sources.iter().map(String::as_str).collect();
        Newest {
            window,
            filter: (!names.is_empty()).then(|| ChatbaseSourceSet::new(seed, &names)),
        }
    }

    fn nth(&self, k: usize) -> Option<usize> {
        match &self.filter {
            None => self
                .window
                .end
                .checked_sub(k + 1)
                .filter(|&i| i >= self.window.start),
            Some(set) => {
                let above = set.count_below(self.window.end);
                let floor = set.count_below(self.window.start);
                let j = above.checked_sub(k + 1).filter(|&j| j >= floor)?;
                set.nth(j)
            }
        }
    }

    fn matches(&self, index: usize) -> bool {
        self.window.contains(&index)
            && self
                .filter
                .as_ref()
                .is_none_or(|set| set.count_below(index + 1) > set.count_below(index))
    }

    fn total(&self) -> usize {
        match &self.filter {
            None => self.window.len(),
            Some(set) => set.count_below(self.window.end) - set.count_below(self.window.start),
        }
    }
}

// ------------------------------------------------------------------ v2

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportQuery {
    cursor: Option<String>,
    limit: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    conversation_id: Option<String>,
    include: Option<String>,
    source: Option<String>,
}

/// A v2 date: `YYYY-MM-DD` (the day's start, or for an end the whole day)
/// or an ISO 8601 date-time (UTC without an offset); as microseconds, the
/// end exclusive.
fn v2_instant(field: &'static str, text: &str, end: bool) -> Result<i64, CbError> {
    let invalid = || {
        CbError::invalid(
            true,
            field,
            format!("'{text}' is not a date: expected YYYY-MM-DD or an ISO 8601 date-time"),
        )
    };
    if let Some(day) = parse_day(text) {
        return match end {
            true => day.succ_opt().map(day_start_us).ok_or_else(invalid),
            false => Ok(day_start_us(day)),
        };
    }
    let at = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .map_err(|_| invalid())?;
    let us = at.timestamp_micros();
    Ok(if end { us + 1 } else { us })
}

/// What a cursor holds: where the previous page stopped, and which query
/// it belongs to.
#[derive(Serialize, Deserialize)]
struct CursorBody {
    t: String,
    id: String,
    q: String,
}

/// A fingerprint of the parameters a cursor must be replayed with.
fn fingerprint(query: &ExportQuery) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        &query.start_date,
        &query.end_date,
        &query.source,
        &query.conversation_id,
        &query.include,
    ] {
        for byte in part.as_deref().unwrap_or("\u{0}").bytes().chain([0xff]) {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn encode_cursor(body: &CursorBody) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(body).unwrap_or_default())
}

/// The index of the conversation the previous page stopped at.
fn decode_cursor(seed: u64, text: &str, query: &ExportQuery) -> Result<usize, CbError> {
    let invalid = |why: &str| CbError::invalid(true, "cursor", why);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid("Invalid cursor"))?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid("Invalid cursor"))?;
    if body.q != fingerprint(query) {
        return Err(invalid(
            "The cursor belongs to another query: repeat the query it came from",
        ));
    }
    data::chatbase_conversation_index(seed, &body.id).ok_or_else(|| invalid("Invalid cursor"))
}

async fn v2_export(
    State(shared): State<AppState>,
    agent: Result<Path<String>, PathRejection>,
    params: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, CbError> {
    let Path(agent) = agent.map_err(|_| CbError::invalid(true, "agentId", "malformed agent id"))?;
    if agent == CHATBASE_V1_ONLY_AGENT {
        return Err(CbError::v2(
            Failure::Forbidden("SUBSCRIPTION_API_RESTRICTED_PLAN"),
            PLAN_MESSAGE,
        ));
    }
    if agent != DEMO_AGENT {
        return Err(CbError::v2(
            Failure::NotFound("AGENT_NOT_FOUND"),
            "Agent not found",
        ));
    }
    let params = query(params, true)?;
    export(&shared, &params)
}

fn export(shared: &Shared, params: &ExportQuery) -> Result<Response, CbError> {
    let limit = match present(&params.limit) {
        None => CHATBASE_EXPORT_MAX_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n < 1 => {
                return Err(CbError::invalid(
                    true,
                    "limit",
                    "Number must be greater than or equal to 1",
                ));
            }
            Ok(n) if n > CHATBASE_EXPORT_MAX_LIMIT as i64 => {
                return Err(CbError::invalid(
                    true,
                    "limit",
                    format!("Number must be less than or equal to {CHATBASE_EXPORT_MAX_LIMIT}"),
                ));
            }
            Ok(n) => n as usize,
            Err(_) => {
                return Err(CbError::invalid(
                    true,
                    "limit",
                    "Expected number, received string",
                ));
            }
        },
    };
    let with_messages = match present(&params.include) {
        None | Some("messages") => true,
        Some("summary") => false,
        Some(_) => {
            return Err(CbError::invalid(
                true,
                "include",
                "Invalid enum value. Expected 'summary' | 'messages'",
            ));
        }
    };
    let start = present(&params.start_date)
        .map(|t| v2_instant("startDate", t, false))
        .transpose()?;
    let end = present(&params.end_date)
        .map(|t| v2_instant("endDate", t, true))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        return Err(CbError::v2(
            Failure::BadRequest("VALIDATION_INVALID_DATE_RANGE"),
            "startDate must not be after endDate",
        ));
    }
    let seed = shared.options.seed;
    let total = shared.options.conversations;
    let message_bytes = shared.options.message_bytes;
    let window = instant_window(total, start, end, |i| {
        data::conversation_time_us(VENDOR, seed, i, total)
    });
    let sources = split_list(params.source.as_deref());
    let order = Newest::new(seed, &sources, window.clone());

    // Which indices this page holds, and where the next one starts.
    let (indices, next): (Vec<usize>, Option<usize>) = match present(&params.conversation_id) {
        Some(id) => {
            let one = data::chatbase_conversation_index(seed, id)
                .filter(|&i| i < total && order.matches(i));
            (one.into_iter().collect(), None)
        }
        None => {
            // Scan down from just below where the previous page stopped.
            let top = match present(&params.cursor) {
                None => window.end,
                Some(cursor) => {
                    let at = decode_cursor(seed, cursor, params)?;
                    if !(window.start..window.end).contains(&at) {
                        return Err(CbError::invalid(true, "cursor", "Invalid cursor"));
                    }
                    at
                }
            };
            let scanned: Vec<usize> = (window.start..top).rev().take(limit).collect();
            let last = scanned.last().copied();
            let indices = scanned.into_iter().filter(|&i| order.matches(i)).collect();
            (indices, last.filter(|&i| i > window.start))
        }
    };
    let total_matching = match present(&params.conversation_id) {
        Some(_) => indices.len(),
        None => order.total(),
    };
    let cursor = next.map(|i| {
        encode_cursor(&CursorBody {
            t: rfc3339(
                DateTime::from_timestamp_micros(data::conversation_time_us(VENDOR, seed, i, total))
                    .unwrap_or_default(),
                true,
            ),
            id: data::chatbase_conversation_id(seed, i),
            q: fingerprint(params),
        })
    });
    let conversations: Vec<GeneratedConversation> = indices
        .iter()
        .map(|&i| data::conversation_sized(VENDOR, seed, i, total, message_bytes))
        .collect();
    let page = ExportPage {
        data: conversations
            .iter()
            .map(|c| ConversationWire::new(c, with_messages))
            .collect(),
        pagination: Pagination {
            has_more: cursor.is_some(),
            cursor,
            total: total_matching,
        },
    };
    Ok(json_response(StatusCode::OK, json_bytes(&page)))
}
