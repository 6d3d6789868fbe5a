//! The sandbox's HTTP side: an axum [`Router`] with one nested router per
//! simulated vendor (`chatzuri`, `neoagent`, `robofy`, `chatbase`), each
//! behind a gate that applies the fault knobs and the vendor's auth check to
//! every request. Extractor rejections, unknown paths and wrong methods are
//! all answered in the vendor's own error form, never axum's.

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum_extra::TypedHeader;
use axum_extra::headers::Authorization;
use axum_extra::headers::authorization::Bearer;
use axum_extra::typed_header::TypedHeaderRejection;
use chrono::NaiveDate;
use serde::Serialize;

use super::data;
use super::{SandboxOptions, SandboxStats, SimVendor};

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

pub(crate) type AppState = Arc<Shared>;

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

    /// Counts this request in the current one-second window; returns the
    /// count so far (this one included) and the window's end, in
    /// milliseconds since the sandbox started.
    pub(crate) fn count_in_window(&self) -> (u32, u128) {
        let elapsed = self.started.elapsed();
        let second = elapsed.as_secs();
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 = window.1.saturating_add(1);
        (window.1, u128::from(second + 1) * 1000)
    }

    /// The Unix time, in seconds, at `ms_since_start` milliseconds after the
    /// sandbox started.
    pub(crate) fn unix_seconds_at(&self, ms_since_start: u128) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let at = now + ms_since_start.saturating_sub(self.started.elapsed().as_millis());
        u64::try_from(at.div_ceil(1000)).unwrap_or(u64::MAX)
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

/// The number of a request, counted from 1 over all vendors; put in the
/// request's extensions by [`count_and_delay`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestNumber(pub(crate) u64);

pub(crate) fn router(shared: AppState) -> Router {
    let gated = |router: Router<AppState>, api: Api| {
        router.layer(middleware::from_fn_with_state(
            Gate {
                shared: Arc::clone(&shared),
                api,
            },
            gate,
        ))
    };
    Router::new()
        .nest(
            "/chatzuri/api/v1",
            gated(super::chatzuri::router(false), Api::Chatzuri),
        )
        .nest(
            "/chatzuri-post-only/api/v1",
            gated(super::chatzuri::router(true), Api::Chatzuri),
        )
        .nest("/neoagent", gated(super::neoagent::router(), Api::Neoagent))
        .nest("/robofy", gated(super::robofy::router(), Api::Robofy))
        .nest(
            "/chatbase/api/v1",
            gated(super::chatbase::v1_router(), Api::ChatbaseV1),
        )
        .nest(
            "/chatbase/api/v2",
            gated(super::chatbase::v2_router(), Api::ChatbaseV2),
        )
        .fallback(unknown_vendor)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            count_and_delay,
        ))
        .with_state(shared)
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let router = router(shared);
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

async fn unknown_vendor() -> Response {
    let text = "no such vendor: use /chatzuri/api/v1, /neoagent, /robofy or /chatbase/api\n";
    (StatusCode::NOT_FOUND, text).into_response()
}

/// Counts every request (unknown paths too), numbers it, and applies the
/// latency knob.
async fn count_and_delay(
    State(shared): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let number = shared.next_request.fetch_add(1, Ordering::SeqCst) + 1;
    request.extensions_mut().insert(RequestNumber(number));
    let latency = shared.options.latency;
    let log = shared.options.log_requests.then(|| {
        let target = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |p| p.as_str().to_owned(),
        );
        (request.method().clone(), target, Instant::now())
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = next.run(request).await;
    if let Some((method, target, started)) = log {
        tracing::info!(
            target: "leads::sandbox",
            "sandbox: #{number} {method} {target} -> {} in {} ms",
            response.status().as_u16(),
            started.elapsed().as_millis()
        );
    }
    response
}

/// Which simulated API (and so which error form) a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Chatzuri,
    Neoagent,
    Robofy,
    ChatbaseV1,
    ChatbaseV2,
}

impl Api {
    fn vendor(self) -> SimVendor {
        match self {
            Api::Chatzuri => SimVendor::Chatzuri,
            Api::Neoagent => SimVendor::Neoagent,
            Api::Robofy => SimVendor::Robofy,
            Api::ChatbaseV1 | Api::ChatbaseV2 => SimVendor::Chatbase,
        }
    }
}

#[derive(Clone)]
struct Gate {
    shared: AppState,
    api: Api,
}

/// Rate limit, outage and auth, in that order, for every request of one
/// vendor (unknown endpoints included); Chatbase responses get its headers.
async fn gate(
    State(gate): State<Gate>,
    bearer: Result<TypedHeader<Authorization<Bearer>>, TypedHeaderRejection>,
    request: Request,
    next: Next,
) -> Response {
    let Gate { shared, api } = gate;
    let number = request
        .extensions()
        .get::<RequestNumber>()
        .map_or(0, |n| n.0);
    let chatbase = matches!(api, Api::ChatbaseV1 | Api::ChatbaseV2);
    let options = &shared.options;
    let counted = (options.rate_limit.is_some() || chatbase).then(|| shared.count_in_window());
    let limited = match (options.rate_limit, counted) {
        (Some(limit), Some((count, _))) => count > limit,
        _ => false,
    };
    let expected = api.vendor().key();
    let response = if limited {
        Failure::TooManyRequests.respond(api, "rate limit exceeded, retry in 1 second")
    } else if options
        .fail_every
        .is_some_and(|every| every > 0 && number % every == 0)
    {
        Failure::Unavailable.respond(api, "simulated outage (--fail-every)")
    } else if api == Api::Neoagent {
        // NeoAgent takes the bare key: `Bearer KEY` is a wrong key there.
        let bare = request.headers().get(header::AUTHORIZATION);
        if bare.is_some_and(|v| v.as_bytes() == expected.as_bytes()) {
            next.run(request).await
        } else {
            Failure::Unauthorized.respond(
                api,
                "Invalid or missing secret key in Authorization (send the bare key, no Bearer)",
            )
        }
    } else {
        match bearer {
            Ok(TypedHeader(Authorization(token))) if token.token() == expected => {
                next.run(request).await
            }
            Err(rejection) if rejection.is_missing() => Failure::MissingKey.respond(
                api,
                "Invalid or missing API key: send Authorization: Bearer <key>",
            ),
            _ => Failure::Unauthorized.respond(
                api,
                "Invalid or missing API key: send Authorization: Bearer <key>",
            ),
        }
    };
    match counted {
        Some((count, window_end_ms)) if chatbase => super::chatbase::with_headers(
            response,
            api == Api::ChatbaseV2,
            number,
            options.rate_limit,
            count,
            shared.unix_seconds_at(window_end_ms),
        ),
        _ => response,
    }
}

/// A failure, answered in the form of the vendor it happened at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 400; the code is Chatbase v2's (other vendors have their own).
    BadRequest(&'static str),
    /// 401 without an `Authorization` header.
    MissingKey,
    Unauthorized,
    /// 403 (Chatbase v2: a plan without API access).
    Forbidden(&'static str),
    NotFound(&'static str),
    MethodNotAllowed(&'static str),
    TooManyRequests,
    Unavailable,
}

impl Failure {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::MissingKey | Failure::Unauthorized => StatusCode::UNAUTHORIZED,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn robofy_code(self) -> &'static str {
        match self {
            Failure::BadRequest(_) => "BAD_REQUEST",
            Failure::MissingKey | Failure::Unauthorized => "UNAUTHORIZED",
            Failure::Forbidden(_) => "FORBIDDEN",
            Failure::NotFound(code) => code,
            Failure::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Failure::TooManyRequests => "TOO_MANY_REQUESTS",
            Failure::Unavailable => "SERVICE_UNAVAILABLE",
        }
    }

    pub(crate) fn respond(self, api: Api, detail: &str) -> Response {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let mut response = match api {
            // Chatzuri documents only "an error message in the body".
            Api::Chatzuri => json_response(
                status,
                json_bytes(&Message {
                    message: &format!("{reason}: {detail}"),
                }),
            ),
            Api::Neoagent => {
                // Business failures come back as HTTP 200 with the code in
                // the envelope; throttling and outages are real HTTP errors
                // (a client has to see them to retry).
                let http = match self {
                    Failure::TooManyRequests | Failure::Unavailable => status,
                    _ => StatusCode::OK,
                };
                json_response(
                    http,
                    json_bytes(&NeoagentFailure {
                        data: None,
                        version: "1.0.0",
                        success: false,
                        code: status.as_u16(),
                        message: detail,
                    }),
                )
            }
            Api::Robofy => json_response(
                status,
                json_bytes(&RobofyFailure {
                    message: reason,
                    error: RobofyError {
                        code: self.robofy_code(),
                        detail,
                    },
                }),
            ),
            Api::ChatbaseV1 => super::chatbase::v1_failure(self, detail),
            Api::ChatbaseV2 => super::chatbase::v2_failure(self, detail),
        };
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

#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub(crate) message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NeoagentFailure<'a> {
    data: Option<()>,
    version: &'static str,
    success: bool,
    code: u16,
    message: &'a str,
}

#[derive(Serialize)]
struct RobofyFailure<'a> {
    message: &'a str,
    error: RobofyError<'a>,
}

#[derive(Serialize)]
struct RobofyError<'a> {
    code: &'a str,
    detail: &'a str,
}

/// A handler's failure, with the API whose form it is answered in.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) api: Api,
    pub(crate) failure: Failure,
    pub(crate) detail: String,
}

impl Reply {
    pub(crate) fn new(api: Api, failure: Failure, detail: impl Into<String>) -> Reply {
        Reply {
            api,
            failure,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        self.failure.respond(self.api, &self.detail)
    }
}

pub(crate) type Answer = Result<Response, Reply>;

pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], body.into()).into_response()
}

/// `value` as JSON bytes; the wire types here always serialize.
pub(crate) fn json_bytes(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A strict, zero-padded `YYYY-MM-DD`, as the vendors document it.
pub(crate) fn parse_day(text: &str) -> Option<NaiveDate> {
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

pub(crate) fn day_start_us(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_micros())
}

/// The indices in `0..total` whose time falls in the inclusive UTC days.
pub(crate) fn day_window(
    total: usize,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    time_of: impl Fn(usize) -> i64,
) -> Range<usize> {
    let start_us = start.map(day_start_us);
    let end_us = match end {
        Some(day) => day.succ_opt().map(day_start_us),
        None => None,
    };
    instant_window(total, start_us, end_us, time_of)
}

/// The indices in `0..total` whose time is at or after `start_us` and
/// before `end_us` (microseconds; `None`: unbounded).
pub(crate) fn instant_window(
    total: usize,
    start_us: Option<i64>,
    end_us: Option<i64>,
    time_of: impl Fn(usize) -> i64,
) -> Range<usize> {
    let lo = start_us.map_or(0, |at| data::first_index_at_or_after(total, at, &time_of));
    let hi = end_us.map_or(total, |at| {
        data::first_index_at_or_after(total, at, &time_of)
    });
    lo..hi.max(lo)
}

/// A query string value that is present and not blank.
pub(crate) fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A `YYYY-MM-DD` parameter; blank is absent.
pub(crate) fn date_param(
    api: Api,
    name: &str,
    value: Option<&str>,
) -> Result<Option<NaiveDate>, Reply> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => parse_day(text).map(Some).ok_or_else(|| {
            Reply::new(
                api,
                Failure::BadRequest("VALIDATION_INVALID_BODY"),
                format!("{name} '{text}' is not a valid date: expected YYYY-MM-DD"),
            )
        }),
    }
}

/// A request body that must be a JSON object; `None` when it is blank.
pub(crate) fn json_object(
    api: Api,
    body: &[u8],
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad =
        |detail: String| Reply::new(api, Failure::BadRequest("VALIDATION_INVALID_JSON"), detail);
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(bad("request body must be a JSON object".into())),
        Err(error) => Err(bad(format!("request body is not valid JSON: {error}"))),
    }
}

/// The vendor-form answer to a request no route of the vendor matches.
pub(crate) fn no_endpoint(api: Api, uri: &axum::http::Uri) -> Response {
    Failure::NotFound("NOT_FOUND").respond(api, &format!("no endpoint {}", uri.path()))
}

/// A comma-separated list, trimmed, without empty entries.
pub(crate) fn split_list(list: Option<&str>) -> Vec<String> {
    list.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
