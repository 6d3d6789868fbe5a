//! Simulated NeoAgent (`/neoagent`): `POST /chat/Chatbot/LeadList`,
//! `/ChatContentHistory` and `/GetMessageCountByChatbot`; no paging, the
//! whole window streamed; business failures as HTTP 200 with the code in
//! the envelope.

use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

use super::data;
use super::server::{
    Answer, Api, AppState, Failure, Reply, Shared, date_param, day_window, json_object,
    json_response, no_endpoint,
};
use super::{DEMO_AGENT, SimVendor};

/// Records per chunk of a streamed NeoAgent body.
const STREAM_CHUNK: usize = 512;

const API: Api = Api::Neoagent;
const VENDOR: SimVendor = SimVendor::Neoagent;

const NEOAGENT_TAIL: &[u8] =
    b"],\"Version\":\"1.0.0\",\"Success\":true,\"Code\":200,\"Message\":\"\"}";

fn bad(detail: impl Into<String>) -> Reply {
    Reply::new(API, Failure::BadRequest("BAD_REQUEST"), detail)
}

#[derive(Clone, Copy)]
enum Endpoint {
    LeadList,
    ChatContentHistory,
    GetMessageCountByChatbot,
}

pub(crate) fn router() -> Router<AppState> {
    let route = |endpoint: Endpoint| {
        post(
            move |State(shared): State<AppState>, body: Result<Bytes, BytesRejection>| async move {
                handle(&shared, endpoint, body)
            },
        )
        .fallback(|| async {
            Failure::MethodNotAllowed("POST").respond(API, "this endpoint takes POST")
        })
    };
    Router::new()
        .route("/chat/Chatbot/LeadList", route(Endpoint::LeadList))
        .route(
            "/chat/Chatbot/ChatContentHistory",
            route(Endpoint::ChatContentHistory),
        )
        .route(
            "/chat/Chatbot/GetMessageCountByChatbot",
            route(Endpoint::GetMessageCountByChatbot),
        )
        .fallback(|OriginalUri(uri): OriginalUri| async move { no_endpoint(API, &uri) })
}

fn string_field(map: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, Reply> {
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
fn listing<I, F>(indices: I, render: F) -> Response
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

fn handle(shared: &Shared, endpoint: Endpoint, body: Result<Bytes, BytesRejection>) -> Answer {
    let body = body.map_err(|_| bad("request body unreadable or too large"))?;
    let body = json_object(API, &body)
        .map_err(|reply| bad(reply.detail))?
        .ok_or_else(|| bad("request body is empty: send a JSON object"))?;
    let seed = shared.options.seed;
    // LeadList is documented in camelCase, the others in PascalCase.
    let (serial_key, start_key, end_key) = match endpoint {
        Endpoint::LeadList => ("serialNumber", "startTime", "endTime"),
        _ => ("SerialNumber", "StartTime", "EndTime"),
    };
    let serial =
        string_field(&body, serial_key)?.ok_or_else(|| bad(format!("{serial_key} is required")))?;
    if serial != DEMO_AGENT {
        return Err(Reply::new(
            API,
            Failure::NotFound("NOT_FOUND"),
            format!("chatbot '{serial}' not found"),
        ));
    }
    let start = date_param(API, start_key, string_field(&body, start_key)?.as_deref())
        .map_err(|r| bad(r.detail))?;
    let end = date_param(API, end_key, string_field(&body, end_key)?.as_deref())
        .map_err(|r| bad(r.detail))?;
    if let Endpoint::LeadList = endpoint {
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
            data::lead_time_us(VENDOR, seed, i, total)
        });
        let render =
            move |index, buf: &mut Vec<u8>| data::lead(VENDOR, seed, index, total).write_wire(buf);
        return Ok(match session {
            None => listing(window, render),
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
                listing(indices.into_iter(), render)
            }
        });
    }
    let total = shared.options.conversations;
    let message_bytes = shared.options.message_bytes;
    if let Endpoint::GetMessageCountByChatbot = endpoint {
        let count: usize = (0..total)
            .map(|i| data::message_count(VENDOR, seed, i))
            .sum();
        let mut buf = b"{\"Data\":".to_vec();
        buf.extend_from_slice(count.to_string().as_bytes());
        buf.extend_from_slice(&NEOAGENT_TAIL[1..]);
        return Ok(json_response(StatusCode::OK, buf));
    }
    let window = day_window(total, start, end, |i| {
        data::conversation_time_us(VENDOR, seed, i, total)
    });
    Ok(listing(window, move |index, buf: &mut Vec<u8>| {
        data::conversation_sized(VENDOR, seed, index, total, message_bytes).write_wire(buf)
    }))
}
