//! Simulated Chatzuri (`/chatzuri/api/v1`): `GET`/`POST /get-leads` (202)
//! and `GET`/`POST /get-conversations` (200), `page` from 1, `size` default
//! 10 and capped at 100, whole-UTC-day date filters, `filteredSources`.
//! The post-only mount answers `GET /get-conversations` with 405.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{OriginalUri, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use serde::Deserialize;
use serde_json::Value;

use super::data;
use super::server::{
    Answer, Api, AppState, Failure, Reply, date_param, day_window, json_object, json_response,
    no_endpoint, split_list,
};
use super::{DEMO_AGENT, SimVendor};

/// Chatzuri's documented maximum `size` (get-conversations; used for leads too).
pub const CHATZURI_MAX_SIZE: usize = 100;
/// Chatzuri's documented default `size`.
pub const CHATZURI_DEFAULT_SIZE: usize = 10;

const API: Api = Api::Chatzuri;

fn bad(detail: impl Into<String>) -> Reply {
    Reply::new(API, Failure::BadRequest("BAD_REQUEST"), detail)
}

pub(crate) fn router(post_only: bool) -> Router<AppState> {
    let conversations: MethodRouter<AppState> = if post_only {
        get(|| async {
            Failure::MethodNotAllowed("POST").respond(API, "use POST for get-conversations")
        })
        .post(conversations_post)
    } else {
        get(conversations_get).post(conversations_post)
    };
    let wrong_method = || async { Failure::MethodNotAllowed("GET, POST").respond(API, "use GET") };
    Router::new()
        .route(
            "/get-leads",
            get(leads_get).post(leads_post).fallback(wrong_method),
        )
        .route("/get-conversations", conversations.fallback(wrong_method))
        .fallback(|OriginalUri(uri): OriginalUri| async move { no_endpoint(API, &uri) })
}

/// The query parameters, all as text: the vendor answers bad values in its
/// own form, so they are checked here, not by serde.
#[derive(Debug, Default, Deserialize)]
struct ChatzuriQuery {
    #[serde(rename = "agentId")]
    agent_id: Option<String>,
    /// The older revision's name; `agentId` wins when both are sent.
    #[serde(rename = "chatbotId")]
    chatbot_id: Option<String>,
    #[serde(rename = "startDate")]
    start: Option<String>,
    #[serde(rename = "endDate")]
    end: Option<String>,
    page: Option<String>,
    size: Option<String>,
    #[serde(rename = "filteredSources")]
    sources: Option<String>,
}

#[derive(Default)]
struct Params {
    agent: Option<String>,
    start: Option<String>,
    end: Option<String>,
    page: Option<String>,
    size: Option<String>,
    sources: Vec<String>,
}

fn blank_is_none(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl From<ChatzuriQuery> for Params {
    fn from(query: ChatzuriQuery) -> Params {
        Params {
            agent: blank_is_none(query.agent_id).or(blank_is_none(query.chatbot_id)),
            start: blank_is_none(query.start),
            end: blank_is_none(query.end),
            page: blank_is_none(query.page),
            size: blank_is_none(query.size),
            sources: split_list(query.sources.as_deref()),
        }
    }
}

impl Params {
    /// A POST body: strings or numbers (`filteredSources` also an array of
    /// strings); `null` is absent.
    fn from_json(map: serde_json::Map<String, Value>) -> Result<Params, Reply> {
        let mut query = ChatzuriQuery::default();
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
            let slot = match name.as_str() {
                "agentId" => &mut query.agent_id,
                "chatbotId" => &mut query.chatbot_id,
                "startDate" => &mut query.start,
                "endDate" => &mut query.end,
                "page" => &mut query.page,
                "size" => &mut query.size,
                "filteredSources" => &mut query.sources,
                _ => continue,
            };
            *slot = Some(text);
        }
        Ok(query.into())
    }
}

fn from_query(query: Result<Query<ChatzuriQuery>, QueryRejection>) -> Result<Params, Reply> {
    query
        .map(|Query(q)| q.into())
        .map_err(|rejection| bad(rejection.body_text()))
}

/// A POST takes its parameters from a JSON body, or from the query string
/// when the body is blank.
fn from_post(
    query: Result<Query<ChatzuriQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Params, Reply> {
    let body = body.map_err(|_| bad("request body unreadable or too large"))?;
    match json_object(API, &body).map_err(|reply| bad(reply.detail))? {
        Some(map) => Params::from_json(map),
        None => from_query(query),
    }
}

async fn leads_get(
    State(shared): State<AppState>,
    query: Result<Query<ChatzuriQuery>, QueryRejection>,
) -> Answer {
    listing(&shared, true, from_query(query)?)
}

async fn leads_post(
    State(shared): State<AppState>,
    query: Result<Query<ChatzuriQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    listing(&shared, true, from_post(query, body)?)
}

async fn conversations_get(
    State(shared): State<AppState>,
    query: Result<Query<ChatzuriQuery>, QueryRejection>,
) -> Answer {
    listing(&shared, false, from_query(query)?)
}

async fn conversations_post(
    State(shared): State<AppState>,
    query: Result<Query<ChatzuriQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    listing(&shared, false, from_post(query, body)?)
}

fn positive(name: &str, value: Option<&str>, default: usize) -> Result<usize, Reply> {
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

fn listing(shared: &super::server::Shared, leads: bool, params: Params) -> Answer {
    let agent = params
        .agent
        .as_deref()
        .ok_or_else(|| bad("agentId is required"))?;
    if agent != DEMO_AGENT {
        return Err(Reply::new(
            API,
            Failure::NotFound("NOT_FOUND"),
            format!("agentId '{agent}' is invalid"),
        ));
    }
    let start = date_param(API, "startDate", params.start.as_deref()).map_err(|r| bad(r.detail))?;
    let end = date_param(API, "endDate", params.end.as_deref()).map_err(|r| bad(r.detail))?;
    let page = positive("page", params.page.as_deref(), 1)?;
    let size =
        positive("size", params.size.as_deref(), CHATZURI_DEFAULT_SIZE)?.min(CHATZURI_MAX_SIZE);
    let seed = shared.options.seed;
    let offset = (page - 1).saturating_mul(size);
    let vendor = SimVendor::Chatzuri;
    let mut buf = Vec::with_capacity(if leads { 256 } else { 2048 } * size + 16);
    buf.extend_from_slice(b"{\"data\":[");
    let status = if leads {
        let total = shared.options.leads;
        let window = day_window(total, start, end, |i| {
            data::lead_time_us(vendor, seed, i, total)
        });
        let first = window.start.saturating_add(offset).min(window.end);
        let last = first.saturating_add(size).min(window.end);
        for (n, index) in (first..last).enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            data::lead(vendor, seed, index, total).write_wire(&mut buf);
        }
        StatusCode::ACCEPTED
    } else {
        let total = shared.options.conversations;
        let window = day_window(total, start, end, |i| {
            data::conversation_time_us(vendor, seed, i, total)
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
            data::conversation_sized(vendor, seed, index, total, shared.options.message_bytes)
                .write_wire(&mut buf);
        }
        StatusCode::OK
    };
    buf.extend_from_slice(b"]}");
    Ok::<Response, Reply>(json_response(status, buf))
}
