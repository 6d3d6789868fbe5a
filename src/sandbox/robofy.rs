//! Simulated Robofy (`/robofy`): `GET /v1/ai-agent/leads/{project}/{chatbot}`
//! (100 rows a page), `/v1/ai-agent/inbox/sessions/{chatbot}` (25 a page) and
//! `/v1/ai-agent/inbox/chats/{chatbot}/{session}`, paged by a base64
//! `nextPageToken`.

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::data::{self, push_json_str};
use super::server::{Answer, Api, AppState, Failure, Reply, json_response, no_endpoint};
use super::{DEMO_AGENT, DEMO_PROJECT, SimVendor};

/// Robofy has no page-size parameter; this is what one page holds.
pub const ROBOFY_LEADS_PER_PAGE: usize = 100;
pub const ROBOFY_SESSIONS_PER_PAGE: usize = 25;

const API: Api = Api::Robofy;
const VENDOR: SimVendor = SimVendor::Robofy;

fn bad(detail: impl Into<String>) -> Reply {
    Reply::new(API, Failure::BadRequest("BAD_REQUEST"), detail)
}

pub(crate) fn router() -> Router<AppState> {
    let wrong_method =
        || async { Failure::MethodNotAllowed("GET").respond(API, "this endpoint takes GET") };
    Router::new()
        .route(
            "/v1/ai-agent/leads/{project}/{chatbot}",
            get(leads).fallback(wrong_method),
        )
        .route(
            "/v1/ai-agent/inbox/sessions/{chatbot}",
            get(sessions).fallback(wrong_method),
        )
        .route(
            "/v1/ai-agent/inbox/chats/{chatbot}/{session}",
            get(chats).fallback(wrong_method),
        )
        .fallback(|OriginalUri(uri): OriginalUri| async move { no_endpoint(API, &uri) })
}

#[derive(Debug, Deserialize)]
struct RobofyQuery {
    #[serde(rename = "nextPageToken")]
    token: Option<String>,
    #[serde(rename = "sessionId")]
    session: Option<String>,
}

impl RobofyQuery {
    fn from(query: Result<Query<RobofyQuery>, QueryRejection>) -> Result<RobofyQuery, Reply> {
        let Query(query) = query.map_err(|rejection| bad(rejection.body_text()))?;
        let mut checked = RobofyQuery {
            token: None,
            session: None,
        };
        for (name, value, slot) in [
            ("nextPageToken", query.token, &mut checked.token),
            ("sessionId", query.session, &mut checked.session),
        ] {
            // The vendor's generated cURL sample sends the literal `undefined`.
            if value.as_deref() == Some("undefined") {
                return Err(bad(format!("{name} must not be 'undefined'")));
            }
            *slot = value.filter(|v| !v.is_empty());
        }
        Ok(checked)
    }
}

fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, Reply> {
    path.map(|Path(p)| p).map_err(|_| bad("malformed path"))
}

fn robofy_token(page: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"page\":{page}}}"))
}

/// The page a `nextPageToken` names; `pages` is how many the listing has.
fn robofy_page(token: Option<&str>, pages: usize) -> Result<usize, Reply> {
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

fn check_chatbot(chatbot: &str) -> Result<(), Reply> {
    if chatbot == DEMO_AGENT {
        Ok(())
    } else {
        Err(Reply::new(
            API,
            Failure::NotFound("CHATBOT_NOT_FOUND"),
            format!("chatbot '{chatbot}' not found"),
        ))
    }
}

async fn leads(
    State(shared): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RobofyQuery>, QueryRejection>,
) -> Answer {
    let (project, chatbot) = path(ids)?;
    let query = RobofyQuery::from(query)?;
    if project.parse::<i64>().is_err() {
        return Err(bad(format!(
            "projectId must be an integer, got '{project}'"
        )));
    }
    if project != DEMO_PROJECT {
        return Err(Reply::new(
            API,
            Failure::NotFound("PROJECT_NOT_FOUND"),
            format!("project '{project}' not found"),
        ));
    }
    check_chatbot(&chatbot)?;
    let seed = shared.options.seed;
    let total = shared.options.leads;
    let session_filter = query.session;
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
    let page = robofy_page(query.token.as_deref(), pages)?;
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
        data::lead(VENDOR, seed, index, total).write_wire(&mut buf);
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

async fn sessions(
    State(shared): State<AppState>,
    chatbot: Result<Path<String>, PathRejection>,
    query: Result<Query<RobofyQuery>, QueryRejection>,
) -> Answer {
    let chatbot = path(chatbot)?;
    let query = RobofyQuery::from(query)?;
    check_chatbot(&chatbot)?;
    let seed = shared.options.seed;
    let total = shared.options.conversations;
    let message_bytes = shared.options.message_bytes;
    let pages = total.div_ceil(ROBOFY_SESSIONS_PER_PAGE).max(1);
    let page = robofy_page(query.token.as_deref(), pages)?;
    let first = (page - 1) * ROBOFY_SESSIONS_PER_PAGE;
    let last = (first + ROBOFY_SESSIONS_PER_PAGE).min(total);
    let mut buf = Vec::with_capacity(400 * (last - first) + 128);
    buf.extend_from_slice(b"{\"message\":\"OK\",\"data\":{\"sessions\":[");
    for index in first..last {
        if index > first {
            buf.push(b',');
        }
        data::conversation_sized(VENDOR, seed, index, total, message_bytes).write_wire(&mut buf);
    }
    buf.extend_from_slice(b"],");
    push_token(&mut buf, page, pages);
    buf.extend_from_slice(b"}}");
    Ok(json_response(StatusCode::OK, buf))
}

async fn chats(
    State(shared): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RobofyQuery>, QueryRejection>,
) -> Answer {
    let (chatbot, session) = path(ids)?;
    RobofyQuery::from(query)?;
    check_chatbot(&chatbot)?;
    let seed = shared.options.seed;
    let total = shared.options.conversations;
    let message_bytes = shared.options.message_bytes;
    let index = data::robofy_session_slot(seed, &session)
        .filter(|&i| i < total)
        .ok_or_else(|| {
            Reply::new(
                API,
                Failure::NotFound("SESSION_NOT_FOUND"),
                format!("session '{session}' not found"),
            )
        })?;
    let conversation = data::conversation_sized(VENDOR, seed, index, total, message_bytes);
    let mut buf = Vec::with_capacity(200 * conversation.messages.len() + 128);
    buf.extend_from_slice(b"{\"message\":\"OK\",\"data\":{\"messages\":");
    conversation.write_robofy_messages(&mut buf);
    buf.extend_from_slice(b",\"next_page_token\":null}}");
    Ok(json_response(StatusCode::OK, buf))
}
