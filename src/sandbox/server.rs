//! The sandbox's HTTP side: one fallback handler that routes by path prefix
//! to the three simulated vendors, applies the fault knobs and the vendor's
//! auth check to every request, and renders pages straight into byte
//! buffers from the generator. Routing is done by hand rather than with
//! axum's extractors so that every malformed request is answered in the
//! vendor's own error form, never axum's.

use std::convert::Infallible;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use base64::Engine;
use chrono::NaiveDate;
use serde_json::Value;

use super::data::{self, push_json_str};
use super::{DEMO_AGENT, DEMO_PROJECT, SandboxOptions, SandboxStats, key};
use crate::model::Vendor;

/// Chatzuri's documented maximum `size` (get-conversations; used for leads too).
pub const CHATZURI_MAX_SIZE: usize = 100;
/// Chatzuri's documented default `size`.
pub const CHATZURI_DEFAULT_SIZE: usize = 10;
/// Robofy has no page-size parameter; this is what one page holds.
pub const ROBOFY_LEADS_PER_PAGE: usize = 100;
pub const ROBOFY_SESSIONS_PER_PAGE: usize = 25;
/// Records per chunk of a streamed NeoAgent body.
const STREAM_CHUNK: usize = 512;
/// Request bodies are small JSON objects; anything bigger is refused.
const MAX_REQUEST_BODY: usize = 1 << 20;

const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

/// State shared by all requests.
pub(crate) struct Shared {
    pub(crate) options: SandboxOptions,
    started: Instant,
    next_request: AtomicU64,
    served: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// (one-second window since start, requests seen in it)
    window: Mutex<(u64, u32)>,
}

impl Shared {
    pub(crate) fn new(options: SandboxOptions) -> Shared {
        Shared {
            options,
            started: Instant::now(),
            next_request: AtomicU64::new(0),
            served: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            window: Mutex::new((0, 0)),
        }
    }

    pub(crate) fn stats(&self) -> SandboxStats {
        SandboxStats {
            requests: self.served.load(Ordering::SeqCst),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst),
        }
    }

    /// Counts this request in the current one-second window; false when it
    /// is over the limit.
    fn admit(&self, limit: u32) -> bool {
        let second = self.started.elapsed().as_secs();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 = window.1.saturating_add(1);
        window.1 <= limit
    }
}

struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.served.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let router = Router::new().fallback(dispatch).with_state(shared);
    // Streamed bodies are written in several pieces; Nagle's algorithm
    // would hold the tail back for a delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!("sandbox server stopped: {error}");
    }
}

/// Which simulated API a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Chatzuri { post_only: bool },
    Neoagent,
    Robofy,
}

impl Api {
    fn split(path: &str) -> Option<(Api, &str)> {
        let prefixes = [
            ("/chatzuri/api/v1", Api::Chatzuri { post_only: false }),
            (
                "/chatzuri-post-only/api/v1",
                Api::Chatzuri { post_only: true },
            ),
            ("/neoagent", Api::Neoagent),
            ("/robofy", Api::Robofy),
        ];
        prefixes.into_iter().find_map(|(prefix, api)| {
            let rest = path.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((api, rest))
        })
    }

    fn vendor(self) -> Vendor {
        match self {
            Api::Chatzuri { .. } => Vendor::Chatzuri,
            Api::Neoagent => Vendor::Neoagent,
            Api::Robofy => Vendor::Robofy,
        }
    }

    fn authorized(self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let expected = key(self.vendor());
        match self {
            // NeoAgent takes the bare key: `Bearer KEY` is a wrong key there.
            Api::Neoagent => value == expected,
            _ => value.split_once(' ').is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && token == expected
            }),
        }
    }
}

/// A failure, answered in the form of the vendor it happened at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    BadRequest,
    Unauthorized,
    NotFound(&'static str),
    MethodNotAllowed(&'static str),
    TooManyRequests,
    Unavailable,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::Unauthorized => StatusCode::UNAUTHORIZED,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn robofy_code(self) -> &'static str {
        match self {
            Failure::BadRequest => "BAD_REQUEST",
            Failure::Unauthorized => "UNAUTHORIZED",
            Failure::NotFound(code) => code,
            Failure::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Failure::TooManyRequests => "TOO_MANY_REQUESTS",
            Failure::Unavailable => "SERVICE_UNAVAILABLE",
        }
    }

    fn respond(self, api: Api, detail: &str) -> Response {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let mut buf = Vec::with_capacity(128);
        let mut status_out = status;
        match api {
            // Chatzuri documents only "an error message in the body".
            Api::Chatzuri { .. } => {
                buf.extend_from_slice(b"{\"message\":");
                push_json_str(&mut buf, &format!("{reason}: {detail}"));
                buf.push(b'}');
            }
            Api::Neoagent => {
                // Business failures come back as HTTP 200 with the code in
                // the envelope; throttling and outages are real HTTP errors
                // (a client has to see them to retry).
                if matches!(
                    self,
                    Failure::BadRequest | Failure::Unauthorized | Failure::NotFound(_)
                ) {
                    status_out = StatusCode::OK;
                }
                buf.extend_from_slice(
                    b"{\"Data\":null,\"Version\":\"1.0.0\",\"Success\":false,\"Code\":",
                );
                buf.extend_from_slice(status.as_str().as_bytes());
                buf.extend_from_slice(b",\"Message\":");
                push_json_str(&mut buf, detail);
                buf.push(b'}');
            }
            Api::Robofy => {
                buf.extend_from_slice(b"{\"message\":");
                push_json_str(&mut buf, reason);
                buf.extend_from_slice(b",\"error\":{\"code\":");
                push_json_str(&mut buf, self.robofy_code());
                buf.extend_from_slice(b",\"detail\":");
                push_json_str(&mut buf, detail);
                buf.extend_from_slice(b"}}");
            }
        }
        let mut response = json_response(status_out, buf);
        match self {
            Failure::TooManyRequests => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Failure::MethodNotAllowed(allow) => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], body.into()).into_response()
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let number = shared.next_request.fetch_add(1, Ordering::SeqCst) + 1;
    let options = &shared.options;
    if !options.latency.is_zero() {
        tokio::time::sleep(options.latency).await;
    }
    let path = request.uri().path().to_owned();
    let Some((api, rest)) = Api::split(&path) else {
        let text = "no such vendor: use /chatzuri/api/v1, /neoagent or /robofy\n";
        return (StatusCode::NOT_FOUND, text).into_response();
    };
    if let Some(limit) = options.rate_limit
        && !shared.admit(limit)
    {
        return Failure::TooManyRequests.respond(api, "rate limit exceeded, retry in 1 second");
    }
    if let Some(every) = options.fail_every
        && every > 0
        && number % every == 0
    {
        return Failure::Unavailable.respond(api, "simulated outage (--fail-every)");
    }
    if !api.authorized(request.headers()) {
        let detail = match api {
            Api::Neoagent => {
                "Invalid or missing secret key in Authorization (send the bare key, no Bearer)"
            }
            _ => "Invalid or missing API key: send Authorization: Bearer <key>",
        };
        return Failure::Unauthorized.respond(api, detail);
    }
    let rest = rest.to_owned();
    let result = match api {
        Api::Chatzuri { post_only } => chatzuri(&shared, post_only, &rest, request).await,
        Api::Neoagent => neoagent(&shared, &rest, request).await,
        Api::Robofy => robofy(&shared, &rest, &request),
    };
    result.unwrap_or_else(|(failure, detail)| failure.respond(api, &detail))
}

type Answer = Result<Response, (Failure, String)>;

fn bad(detail: impl Into<String>) -> (Failure, String) {
    (Failure::BadRequest, detail.into())
}

async fn read_json_body(
    request: Request,
) -> Result<Option<serde_json::Map<String, Value>>, (Failure, String)> {
    let bytes = axum::body::to_bytes(request.into_body(), MAX_REQUEST_BODY)
        .await
        .map_err(|_| bad("request body unreadable or too large"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(bad("request body must be a JSON object")),
        Err(error) => Err(bad(format!("request body is not valid JSON: {error}"))),
    }
}

fn query_pairs(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A strict, zero-padded `YYYY-MM-DD`, as the vendors document it.
fn parse_day(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape_ok {
        return None;
    }
    NaiveDate::from_ymd_opt(
        text[0..4].parse().ok()?,
        text[5..7].parse().ok()?,
        text[8..10].parse().ok()?,
    )
}

fn day_start_us(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_micros())
}

fn date_param(name: &str, value: Option<&str>) -> Result<Option<NaiveDate>, (Failure, String)> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => parse_day(text).map(Some).ok_or_else(|| {
            bad(format!(
                "{name} '{text}' is not a valid date: expected YYYY-MM-DD"
            ))
        }),
    }
}

/// The indices in `0..total` whose time falls in the inclusive UTC days.
fn day_window(
    total: usize,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    time_of: impl Fn(usize) -> i64,
) -> Range<usize> {
    let lo = start.map_or(0, |day| {
        data::first_index_at_or_after(total, day_start_us(day), &time_of)
    });
    let hi = match end.and_then(|day| day.succ_opt()) {
        Some(next) => data::first_index_at_or_after(total, day_start_us(next), &time_of),
        None => total,
    };
    lo..hi.max(lo)
}

// ------------------------------------------------------------------ Chatzuri

#[derive(Default)]
struct ChatzuriParams {
    agent: Option<String>,
    start: Option<String>,
    end: Option<String>,
    page: Option<String>,
    size: Option<String>,
    sources: Vec<String>,
}

impl ChatzuriParams {
    fn set(&mut self, name: &str, value: String) {
        let value = Some(value).filter(|v| !v.trim().is_empty());
        match name {
            "agentId" => self.agent = value.or(self.agent.take()),
            // The older revision's name; agentId wins when both are sent.
            "chatbotId" if self.agent.is_none() => self.agent = value,
            "startDate" => self.start = value,
            "endDate" => self.end = value,
            "page" => self.page = value,
            "size" => self.size = value,
            "filteredSources" => {
                if let Some(list) = value {
                    self.sources.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            _ => {}
        }
    }

    fn from_json(map: serde_json::Map<String, Value>) -> Result<ChatzuriParams, (Failure, String)> {
        let mut params = ChatzuriParams::default();
        for (name, value) in map {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Array(items) if name == "filteredSources" => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad("filteredSources must hold strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                _ => return Err(bad(format!("{name} must be a string"))),
            };
            params.set(&name, text);
        }
        Ok(params)
    }
}

fn positive(name: &str, value: Option<&str>, default: usize) -> Result<usize, (Failure, String)> {
    match value {
        None => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(bad(format!(
                "{name} must be a positive integer, got '{text}'"
            ))),
        },
    }
}

async fn chatzuri(shared: &Shared, post_only: bool, rest: &str, request: Request) -> Answer {
    let leads = match rest {
        "/get-leads" => true,
        "/get-conversations" => false,
        _ => {
            return Err((
                Failure::NotFound("NOT_FOUND"),
                format!("no endpoint {rest}"),
            ));
        }
    };
    let params = match *request.method() {
        Method::GET if post_only && !leads => {
            return Err((
                Failure::MethodNotAllowed("POST"),
                "use POST for get-conversations".into(),
            ));
        }
        Method::GET => {
            let mut params = ChatzuriParams::default();
            for (name, value) in query_pairs(&request) {
                params.set(&name, value);
            }
            params
        }
        Method::POST => {
            let query = query_pairs(&request);
            match read_json_body(request).await? {
                Some(map) => ChatzuriParams::from_json(map)?,
                None => {
                    let mut params = ChatzuriParams::default();
                    for (name, value) in query {
                        params.set(&name, value);
                    }
                    params
                }
            }
        }
        _ => return Err((Failure::MethodNotAllowed("GET, POST"), "use GET".into())),
    };
    let agent = params
        .agent
        .as_deref()
        .ok_or_else(|| bad("agentId is required"))?;
    if agent != DEMO_AGENT {
        return Err((
            Failure::NotFound("NOT_FOUND"),
            format!("agentId '{agent}' is invalid"),
        ));
    }
    let start = date_param("startDate", params.start.as_deref())?;
    let end = date_param("endDate", params.end.as_deref())?;
    let page = positive("page", params.page.as_deref(), 1)?;
    let size =
        positive("size", params.size.as_deref(), CHATZURI_DEFAULT_SIZE)?.min(CHATZURI_MAX_SIZE);
    let seed = shared.options.seed;
    let offset = (page - 1).saturating_mul(size);
    let mut buf = Vec::with_capacity(if leads { 256 } else { 2048 } * size + 16);
    buf.extend_from_slice(b"{\"data\":[");
    let status = if leads {
        let total = shared.options.leads;
        let window = day_window(total, start, end, |i| {
            data::lead_time_us(Vendor::Chatzuri, seed, i, total)
        });
        let first = window.start.saturating_add(offset).min(window.end);
        let last = first.saturating_add(size).min(window.end);
        for (n, index) in (first..last).enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            data::lead(Vendor::Chatzuri, seed, index, total).write_wire(&mut buf);
        }
        StatusCode::ACCEPTED
    } else {
        let total = shared.options.conversations;
        let window = day_window(total, start, end, |i| {
            data::conversation_time_us(Vendor::Chatzuri, seed, i, total)
        });
        let sources: Vec<&str> = params.sources.iter().map(String::as_str).collect();
        let indices: Vec<usize> = if sources.is_empty() {
            let first = window.start.saturating_add(offset).min(window.end);
            (first..first.saturating_add(size).min(window.end)).collect()
        } else {
            (offset..offset.saturating_add(size))
                .map_while(|k| {
                    data::chatzuri_nth_with_source(seed, &sources, window.start, window.end, k)
                })
                .collect()
        };
        for (n, index) in indices.into_iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            data::conversation(Vendor::Chatzuri, seed, index, total).write_wire(&mut buf);
        }
        StatusCode::OK
    };
    buf.extend_from_slice(b"]}");
    Ok(json_response(status, buf))
}

// ------------------------------------------------------------------ NeoAgent

const NEOAGENT_TAIL: &[u8] =
    b"],\"Version\":\"1.0.0\",\"Success\":true,\"Code\":200,\"Message\":\"\"}";

fn string_field(
    map: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, (Failure, String)> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(bad(format!("{name} must be a string"))),
    }
}

/// The NeoAgent envelope around `indices`, rendered by `render`: in one
/// buffer when small, else streamed in chunks so a huge window is never
/// held whole.
fn neoagent_listing<I, F>(indices: I, render: F) -> Response
where
    I: Iterator<Item = usize> + ExactSizeIterator + Send + 'static,
    F: Fn(usize, &mut Vec<u8>) + Send + 'static,
{
    if indices.len() <= STREAM_CHUNK {
        let mut buf = Vec::with_capacity(512 * indices.len() + 128);
        buf.extend_from_slice(b"{\"Data\":[");
        for (n, index) in indices.enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            render(index, &mut buf);
        }
        buf.extend_from_slice(NEOAGENT_TAIL);
        return json_response(StatusCode::OK, buf);
    }
    let mut indices = indices.peekable();
    let mut first = true;
    let mut done = false;
    let chunks = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = Vec::with_capacity(512 * STREAM_CHUNK);
        if first {
            buf.extend_from_slice(b"{\"Data\":[");
        }
        for index in indices.by_ref().take(STREAM_CHUNK) {
            if !first {
                buf.push(b',');
            }
            first = false;
            render(index, &mut buf);
        }
        if indices.peek().is_none() {
            buf.extend_from_slice(NEOAGENT_TAIL);
            done = true;
        }
        Some(Ok::<_, Infallible>(Bytes::from(buf)))
    });
    json_response(
        StatusCode::OK,
        Body::from_stream(futures::stream::iter(chunks)),
    )
}

async fn neoagent(shared: &Shared, rest: &str, request: Request) -> Answer {
    let endpoint = match rest {
        "/chat/Chatbot/LeadList"
        | "/chat/Chatbot/ChatContentHistory"
        | "/chat/Chatbot/GetMessageCountByChatbot" => rest,
        _ => {
            return Err((
                Failure::NotFound("NOT_FOUND"),
                format!("no endpoint {rest}"),
            ));
        }
    };
    if request.method() != Method::POST {
        return Err((
            Failure::MethodNotAllowed("POST"),
            format!("{endpoint} takes POST"),
        ));
    }
    let body = read_json_body(request)
        .await?
        .ok_or_else(|| bad("request body is empty: send a JSON object"))?;
    let seed = shared.options.seed;
    // LeadList is documented in camelCase, the others in PascalCase.
    let (serial_key, start_key, end_key) = if endpoint.ends_with("LeadList") {
        ("serialNumber", "startTime", "endTime")
    } else {
        ("SerialNumber", "StartTime", "EndTime")
    };
    let serial =
        string_field(&body, serial_key)?.ok_or_else(|| bad(format!("{serial_key} is required")))?;
    if serial != DEMO_AGENT {
        return Err((
            Failure::NotFound("NOT_FOUND"),
            format!("chatbot '{serial}' not found"),
        ));
    }
    let start = date_param(start_key, string_field(&body, start_key)?.as_deref())?;
    let end = date_param(end_key, string_field(&body, end_key)?.as_deref())?;
    if endpoint.ends_with("LeadList") {
        let session = match body.get("sessionID") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .ok_or_else(|| bad("sessionID must be an integer"))?,
            ),
        };
        let total = shared.options.leads;
        let window = day_window(total, start, end, |i| {
            data::lead_time_us(Vendor::Neoagent, seed, i, total)
        });
        let render = move |index, buf: &mut Vec<u8>| {
            data::lead(Vendor::Neoagent, seed, index, total).write_wire(buf)
        };
        return Ok(match session {
            None => neoagent_listing(window, render),
            Some(id) => {
                // Session s holds leads 2(s - base) and 2(s - base) + 1.
                let slot = id
                    .checked_sub(data::NEOAGENT_SESSION_BASE)
                    .and_then(|s| usize::try_from(s).ok());
                let indices: Vec<usize> = slot
                    .map(|s| [s.saturating_mul(2), s.saturating_mul(2).saturating_add(1)])
                    .into_iter()
                    .flatten()
                    .filter(|i| window.contains(i))
                    .collect();
                neoagent_listing(indices.into_iter(), render)
            }
        });
    }
    let total = shared.options.conversations;
    if endpoint.ends_with("GetMessageCountByChatbot") {
        let count: usize = (0..total)
            .map(|i| data::message_count(Vendor::Neoagent, seed, i))
            .sum();
        let mut buf = b"{\"Data\":".to_vec();
        buf.extend_from_slice(count.to_string().as_bytes());
        buf.extend_from_slice(&NEOAGENT_TAIL[1..]);
        return Ok(json_response(StatusCode::OK, buf));
    }
    let window = day_window(total, start, end, |i| {
        data::conversation_time_us(Vendor::Neoagent, seed, i, total)
    });
    Ok(neoagent_listing(window, move |index, buf: &mut Vec<u8>| {
        data::conversation(Vendor::Neoagent, seed, index, total).write_wire(buf)
    }))
}

// ------------------------------------------------------------------ Robofy

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn robofy_token(page: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"page\":{page}}}"))
}

/// The page a `nextPageToken` names; `pages` is how many the listing has.
fn robofy_page(token: Option<&str>, pages: usize) -> Result<usize, (Failure, String)> {
    let Some(token) = token else { return Ok(1) };
    let invalid = || bad(format!("invalid nextPageToken '{token}'"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let page = value
        .get("page")
        .and_then(Value::as_u64)
        .ok_or_else(invalid)?;
    match usize::try_from(page) {
        Ok(page) if (2..=pages).contains(&page) => Ok(page),
        _ => Err(invalid()),
    }
}

fn push_token(buf: &mut Vec<u8>, page: usize, pages: usize) {
    buf.extend_from_slice(b"\"next_page_token\":");
    if page < pages {
        push_json_str(buf, &robofy_token(page + 1));
    } else {
        buf.extend_from_slice(b"null");
    }
}

fn check_chatbot(chatbot: &str) -> Result<(), (Failure, String)> {
    if chatbot == DEMO_AGENT {
        Ok(())
    } else {
        Err((
            Failure::NotFound("CHATBOT_NOT_FOUND"),
            format!("chatbot '{chatbot}' not found"),
        ))
    }
}

fn robofy(shared: &Shared, rest: &str, request: &Request) -> Answer {
    let segments: Vec<String> = rest
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode(s).ok_or_else(|| bad("malformed path")))
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = match segments.as_slice() {
        ["v1", "ai-agent", "leads", project, chatbot] => RobofyRoute::Leads(project, chatbot),
        ["v1", "ai-agent", "inbox", "sessions", chatbot] => RobofyRoute::Sessions(chatbot),
        ["v1", "ai-agent", "inbox", "chats", chatbot, session] => {
            RobofyRoute::Chats(chatbot, session)
        }
        _ => {
            return Err((
                Failure::NotFound("NOT_FOUND"),
                format!("no endpoint {rest}"),
            ));
        }
    };
    if request.method() != Method::GET {
        return Err((
            Failure::MethodNotAllowed("GET"),
            "this endpoint takes GET".into(),
        ));
    }
    let mut token = None;
    let mut session_filter = None;
    for (name, value) in query_pairs(request) {
        // The vendor's generated cURL sample sends the literal `undefined`.
        if value == "undefined" {
            return Err(bad(format!("{name} must not be 'undefined'")));
        }
        let value = Some(value).filter(|v| !v.is_empty());
        match name.as_str() {
            "nextPageToken" => token = value,
            "sessionId" => session_filter = value,
            _ => {}
        }
    }
    let seed = shared.options.seed;
    match route {
        RobofyRoute::Leads(project, chatbot) => {
            if project.parse::<i64>().is_err() {
                return Err(bad(format!(
                    "projectId must be an integer, got '{project}'"
                )));
            }
            if project != DEMO_PROJECT {
                return Err((
                    Failure::NotFound("PROJECT_NOT_FOUND"),
                    format!("project '{project}' not found"),
                ));
            }
            check_chatbot(chatbot)?;
            let total = shared.options.leads;
            let indices: Vec<usize> = match &session_filter {
                None => Vec::new(),
                Some(session) => data::robofy_session_slot(seed, session)
                    .map(|s| [s.saturating_mul(2), s.saturating_mul(2).saturating_add(1)])
                    .into_iter()
                    .flatten()
                    .filter(|&i| i < total)
                    .collect(),
            };
            let count = if session_filter.is_some() {
                indices.len()
            } else {
                total
            };
            let pages = count.div_ceil(ROBOFY_LEADS_PER_PAGE).max(1);
            let page = robofy_page(token.as_deref(), pages)?;
            let first = (page - 1) * ROBOFY_LEADS_PER_PAGE;
            let last = (first + ROBOFY_LEADS_PER_PAGE).min(count);
            let mut buf = Vec::with_capacity(600 * (last - first) + 256);
            buf.extend_from_slice(
                b"{\"message\":\"OK\",\"data\":{\"report\":{\"columns\":[\"id\",\"created_at\",\"source\",\"page_url\",\"ip_address\",\"lead_data\"],\"rows\":[",
            );
            let selected: Vec<usize> = if session_filter.is_some() {
                indices[first..last].to_vec()
            } else {
                (first..last).collect()
            };
            for (n, index) in selected.into_iter().enumerate() {
                if n > 0 {
                    buf.push(b',');
                }
                data::lead(Vendor::Robofy, seed, index, total).write_wire(&mut buf);
            }
            // The vendor's example puts the token in the report, its schema
            // beside it; alternate so clients must read both.
            if page % 2 == 1 {
                buf.extend_from_slice(b"],");
                push_token(&mut buf, page, pages);
                buf.extend_from_slice(b"}}}");
            } else {
                buf.extend_from_slice(b"]},");
                push_token(&mut buf, page, pages);
                buf.extend_from_slice(b"}}");
            }
            Ok(json_response(StatusCode::OK, buf))
        }
        RobofyRoute::Sessions(chatbot) => {
            check_chatbot(chatbot)?;
            let total = shared.options.conversations;
            let pages = total.div_ceil(ROBOFY_SESSIONS_PER_PAGE).max(1);
            let page = robofy_page(token.as_deref(), pages)?;
            let first = (page - 1) * ROBOFY_SESSIONS_PER_PAGE;
            let last = (first + ROBOFY_SESSIONS_PER_PAGE).min(total);
            let mut buf = Vec::with_capacity(400 * (last - first) + 128);
            buf.extend_from_slice(b"{\"message\":\"OK\",\"data\":{\"sessions\":[");
            for index in first..last {
                if index > first {
                    buf.push(b',');
                }
                data::conversation(Vendor::Robofy, seed, index, total).write_wire(&mut buf);
            }
            buf.extend_from_slice(b"],");
            push_token(&mut buf, page, pages);
            buf.extend_from_slice(b"}}");
            Ok(json_response(StatusCode::OK, buf))
        }
        RobofyRoute::Chats(chatbot, session) => {
            check_chatbot(chatbot)?;
            let total = shared.options.conversations;
            let index = data::robofy_session_slot(seed, session)
                .filter(|&i| i < total)
                .ok_or_else(|| {
                    (
                        Failure::NotFound("SESSION_NOT_FOUND"),
                        format!("session '{session}' not found"),
                    )
                })?;
            let conversation = data::conversation(Vendor::Robofy, seed, index, total);
            let mut buf = Vec::with_capacity(200 * conversation.messages.len() + 128);
            buf.extend_from_slice(b"{\"message\":\"OK\",\"data\":{\"messages\":");
            conversation.write_robofy_messages(&mut buf);
            buf.extend_from_slice(b",\"next_page_token\":null}}");
            Ok(json_response(StatusCode::OK, buf))
        }
    }
}

enum RobofyRoute<'a> {
    Leads(&'a str, &'a str),
    Sessions(&'a str),
    Chats(&'a str, &'a str),
}
