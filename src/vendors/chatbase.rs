//! Chatbase wire format (docs/vendor-apis.md §6): leads from v1 `get-leads`
//! (numbered pages, the body shapes Chatzuri copies, so its parser is
//! reused), conversations from v2 `conversations/export` (a cursor, messages
//! embedded, times in Unix seconds), and v1 `get-conversations` for a plan
//! without v2. One base URL (`.../api`) covers both API versions; Bearer
//! key on every request.

use serde_json::{Map, Value};

use super::plan::{
    DateFilter, Listing, Numbered, PageSize, ResourceSpec, SessionFilter, Tokens, VendorSpec,
};
use super::{
    AuthScheme, BodyError, MapContext, Page, RequestSpec, at, chatzuri, objects, parse_json,
    path_segment,
};
use crate::error::{Error, Result};
use crate::export::{Bookmark, Job};
use crate::model::{Conversation, Lead, Message, clean_string};

pub static VENDOR: VendorSpec = VendorSpec {
    name: "chatbase",
    display_name: "Chatbase",
    default_base_url: "https://www.chatbase.co/api",
    key_env: "CHATBASE_API_KEY",
    base_url_env: "CHATBASE_BASE_URL",
    auth: AuthScheme::Bearer,
    id_prefix: "cb_",
    agent_hint: "the agent (chatbot) id is under the agent's Settings > General in Chatbase",
    not_found_hint: "check --agent: the agent id is under the agent's Settings > General in Chatbase",
    code_hint,
    too_large_hint: "each conversation carries its whole history: lower --page-size, or narrow the run with --since/--until",
    projects: None,
    note: Some(
        "conversations use the v2 API (Standard plan or higher); on a plan without it, v1 get-conversations (no message times)",
    ),
    leads: ResourceSpec {
        endpoint: "GET /v1/get-leads",
        paging: "page/size, pages in parallel",
        dates: DateFilter::ServerDays,
        session: SessionFilter::Unsupported,
        sources: None,
        page_size: Some(PageSize {
            default: 100,
            max: 100,
        }),
        plan: leads_plan,
    },
    conversations: ResourceSpec {
        endpoint: "GET /v2/agents/{agent}/conversations/export",
        paging: "cursor, sequential",
        dates: DateFilter::ServerExact,
        session: SessionFilter::RecordId,
        sources: Some(&SOURCES),
        page_size: Some(PageSize {
            default: EXPORT_MAX_LIMIT,
            max: EXPORT_MAX_LIMIT,
        }),
        plan: conversations_plan,
    },
};

/// The export's `limit` range is 1-20 (the general "1-100" of the v2 docs
/// does not hold for it).
const EXPORT_MAX_LIMIT: u32 = 20;

/// The `source` values the v2 export documents.
pub const SOURCES: [&str; 22] = [
    "API",
    "WhatsApp",
    "Messenger",
    "Instagram",
    "Slack",
    "Salesforce",
    "Zendesk",
    "Zendesk Messaging",
    "Chatbase site",
    "Playground",
    "Action preview",
    "Qna preview",
    "Widget or Iframe",
    "Center stage",
    "Search",
    "Iframe",
    "Email",
    "Agent page",
    "Phone",
    "Android SDK",
    "iOS SDK",
    "Unspecified",
];

/// Codes differ between the vendor's doc revisions and its CLI, so only
/// their prefixes pick a hint; the status picks the exit code.
fn code_hint(code: &str) -> Option<&'static str> {
    if code.starts_with("SUBSCRIPTION_") {
        Some("Chatbase's API needs a paid plan (the v2 API the Standard plan or higher)")
    } else if code.contains("EXPIRED") {
        Some("the key has expired: create a new one under Workspace Settings > API Keys")
    } else if code.contains("PERMISSION") {
        Some("the key may not read this agent's data: check its workspace and scopes")
    } else {
        None
    }
}

/// v1 documents neither the zone of its dates nor whether `endDate` is
/// inclusive: one more day on each side, as for Chatzuri.
const V1_DAY_MARGIN: chrono::Duration = chatzuri::DAY_MARGIN;

fn leads_plan(job: &Job, bookmark: Option<&Bookmark>) -> Result<Listing<Lead>> {
    let (agent, size) = (job.agent.clone(), job.page_size);
    let days = job.days(bookmark, V1_DAY_MARGIN);
    let ctx = job.map_context();
    let request = move |page: u64| {
        let mut spec = RequestSpec::get("v1/get-leads", "/v1/get-leads".to_owned());
        spec.query.push(("chatbotId", agent.clone()));
        push_days(&mut spec.query, &days);
        spec.query.push(("page", page.to_string()));
        spec.query.push(("size", size.to_string()));
        spec
    };
    let parse = move |body: &[u8]| chatzuri::parse_leads(body, &ctx);
    Ok(Listing::Numbered(Numbered {
        head_moves: true,
        ..Numbered::new(request, parse, size)
    }))
}

fn push_days(query: &mut Vec<(&'static str, String)>, days: &crate::time::DayRange) {
    if let Some(start) = days.start_text() {
        query.push(("startDate", start));
    }
    if let Some(end) = days.end_text() {
        query.push(("endDate", end));
    }
}

/// v2 export by cursor; on a plan without v2 (403 `SUBSCRIPTION_...`), v1
/// `get-conversations` by page.
fn conversations_plan(job: &Job, bookmark: Option<&Bookmark>) -> Result<Listing<Conversation>> {
    let v2 = export_listing(job, bookmark);
    let v1 = v1_listing(job, bookmark);
    Ok(Listing::Fallback {
        first: Box::new(v2),
        when: plan_without_v2,
        warning: format!(
            "Chatbase agent {}: this plan has no v2 API; reading v1 get-conversations instead (messages without times; conversation ids may differ from v2's, so a --state shared with v2 runs may write some conversations again)",
            job.agent
        ),
        then: Box::new(v1),
    })
}

fn plan_without_v2(error: &Error) -> bool {
    error.status == Some(403)
        && error
            .vendor_code
            .as_deref()
            .is_some_and(|c| c.starts_with("SUBSCRIPTION_"))
}

/// `GET /v2/agents/{agent}/conversations/export?limit[&startDate][&endDate]
/// [&source][&conversationId][&cursor]`: every parameter the same on every
/// page, only `cursor` added (the vendor rejects a cursor replayed with
/// other parameters).
fn export_listing(job: &Job, bookmark: Option<&Bookmark>) -> Listing<Conversation> {
    let path = format!(
        "/v2/agents/{}/conversations/export",
        path_segment(&job.agent)
    );
    let limit = match job.filters.limit {
        Some(limit) => u64::from(job.page_size).min(limit.max(1)),
        None => u64::from(job.page_size),
    };
    let mut query = vec![("limit", limit.to_string())];
    // The wire spelling, not the output's: fractions only when there are any.
    let wire =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    if let Some(start) = job.start(bookmark) {
        query.push(("startDate", wire(start)));
    }
    if let Some(until) = job.filters.until {
        query.push(("endDate", wire(until)));
    }
    if !job.filters.channels.is_empty() {
        query.push(("source", job.filters.channels.join(",")));
    }
    if let Some(session) = &job.filters.session {
        query.push(("conversationId", session.clone()));
    }
    let ctx = job.map_context();
    Listing::Tokens(Tokens::new(
        move |cursor| {
            let mut spec = RequestSpec::get("v2/conversations/export", path.clone());
            spec.query = query.clone();
            if let Some(cursor) = cursor {
                spec.query.push(("cursor", cursor.to_owned()));
            }
            spec
        },
        move |body| parse_export(body, &ctx),
    ))
}

/// `GET /v1/get-conversations?chatbotId[&filteredSources][&startDate]
/// [&endDate]&page&size`: the Chatzuri plan and body.
fn v1_listing(job: &Job, bookmark: Option<&Bookmark>) -> Listing<Conversation> {
    let (agent, size) = (job.agent.clone(), job.page_size);
    let days = job.days(bookmark, V1_DAY_MARGIN);
    let sources = job.filters.channels.join(",");
    let ctx = job.map_context();
    let request = move |page: u64| {
        let mut spec = RequestSpec::get("v1/get-conversations", "/v1/get-conversations".to_owned());
        spec.query.push(("chatbotId", agent.clone()));
        if !sources.is_empty() {
            spec.query.push(("filteredSources", sources.clone()));
        }
        push_days(&mut spec.query, &days);
        spec.query.push(("page", page.to_string()));
        spec.query.push(("size", size.to_string()));
        spec
    };
    let map = move |item: &[u8]| chatzuri::conversation_from_item(item, &ctx);
    Listing::Numbered(Numbered {
        head_moves: true,
        ..Numbered::of_items(request, chatzuri::conversation_ranges, map, size)
    })
}

const EXPORT_SHAPE: &str =
    "a JSON object {data: [...], pagination: {cursor, hasMore, total}} with `data` an array";

/// One page of the v2 export. The listing goes on while `hasMore` is true
/// and there is a cursor, however short the page (the vendor documents
/// short and even empty pages before the end).
pub fn parse_export(body: &[u8], ctx: &MapContext) -> Result<Page<Conversation>, BodyError> {
    let value = parse_json(body, EXPORT_SHAPE)?;
    let list = at(&value, &["data"])
        .and_then(Value::as_array)
        .ok_or_else(|| BodyError::Malformed(format!("expected {EXPORT_SHAPE}")))?;
    let records = objects(list, "conversation")?
        .into_iter()
        .map(|obj| map_conversation(obj, ctx))
        .collect();
    let has_more = at(&value, &["pagination", "hasMore"]).and_then(Value::as_bool);
    let cursor = clean_string(at(&value, &["pagination", "cursor"]));
    let next_token = match (has_more, cursor) {
        (Some(false), _) => None,
        (_, Some(cursor)) => Some(cursor),
        (Some(true), None) => {
            tracing::info!(
                "Chatbase said there are more conversations but sent no cursor; the listing ends here"
            );
            None
        }
        (None, None) => None,
    };
    Ok(Page {
        records,
        returned: list.len(),
        next_token,
        total: at(&value, &["pagination", "total"]).and_then(Value::as_u64),
    })
}

/// One v2 conversation (docs/vendor-apis.md §6.11): `createdAt` (Unix seconds) is
/// `created_at`, `userId` the customer, `source` as sent; `title`,
/// `status`, `updatedAt` and any other key go to `fields`. Messages: the
/// text parts joined by newlines (null when there are none), `createdAt`
/// as the message time; each message's `id`, `feedback`, `metadata` and
/// non-text parts go to `fields.message_fields`.
fn map_conversation(obj: &Map<String, Value>, ctx: &MapContext) -> Conversation {
    chatzuri::map_conversation_with(obj, ctx, ["createdAt", "userId"], map_message)
}

/// The shared message mapping (role lower-cased, `createdAt`, extras), with
/// the content taken from the `text` parts; the other parts stay in the
/// extras.
fn map_message(value: &Value) -> (Message, Map<String, Value>) {
    let (mut message, mut extras) =
        super::map_message(value, &["role"], &[], &["createdAt"], |_| None);
    let Some(parts) = extras.shift_remove("parts") else {
        return (message, extras);
    };
    let mut texts = Vec::new();
    let mut other_parts = Vec::new();
    for part in parts.as_array().cloned().unwrap_or_else(|| vec![parts]) {
        let is_text = part.get("type").and_then(Value::as_str) == Some("text");
        match part.get("text").and_then(Value::as_str) {
            Some(text) if is_text => texts.push(text.trim().to_owned()),
            _ => other_parts.push(part),
        }
    }
    if !other_parts.is_empty() {
        extras.insert("parts".to_owned(), Value::Array(other_parts));
    }
    message.content = Some(texts.join("\n"))
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    (message, extras)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Vendor;
    use crate::vendors::testing::{ctx_for, ts};

    const AGENT: &str = "5QHA6VB-DIAbBhxwqxfdi";

    fn ctx(keep_raw: bool) -> MapContext {
        ctx_for(Vendor::Chatbase, AGENT, keep_raw)
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/chatbase/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    #[test]
    fn export_first_page_maps_conversations_and_follows_the_cursor() {
        let page = parse_export(&fixture("conversations-export-page-1.json"), &ctx(false)).unwrap();
        assert_eq!(page.returned, 2);
        assert_eq!(
            page.next_token.as_deref(),
            Some("eyJ0IjoiMjAyNS0wMy0wNlQxMjowMDowMC4wMDBaIiwiaWQiOiJiMmU4ZjFhMCJ9")
        );
        let first = &page.records[0];
        assert_eq!(first.vendor, Vendor::Chatbase);
        assert_eq!(first.id, "3f9d2c4e-8a1b-4c7d-9e2f-6b5a4d3c2b1a");
        assert_eq!(first.created_at, ts("2025-03-07T12:00:00Z"));
        assert_eq!(first.source.as_deref(), Some("Widget or Iframe"));
        assert_eq!(first.customer, None);
        assert_eq!(first.session_id, None);
        assert_eq!(first.fields["title"], json!("Shipping to Canada"));
        assert_eq!(first.fields["status"], json!("ended"));
        assert_eq!(first.fields["updatedAt"], json!(1741349175));
        assert_eq!(first.messages.len(), 3);
        assert_eq!(first.messages[1].role, "user");
        assert_eq!(first.messages[1].created_at, ts("2025-03-07T12:01:01Z"));
        // The text part only; the tool parts are kept beside it.
        assert_eq!(
            first.messages[2].content.as_deref(),
            Some("Yes — delivery to Canada takes 5–8 business days.")
        );
        let extras = first.fields["message_fields"].as_array().unwrap();
        assert_eq!(extras[2]["id"], json!("msg_03"));
        assert_eq!(extras[2]["feedback"], json!("positive"));
        assert_eq!(extras[2]["parts"].as_array().unwrap().len(), 2);
        assert_eq!(extras[2]["parts"][0]["type"], json!("tool-call"));
        assert!(extras[1].get("parts").is_none());
        assert_eq!(page.records[1].customer.as_deref(), Some("user_4821"));
    }

    #[test]
    fn export_last_page_ends_the_listing() {
        let page = parse_export(&fixture("conversations-export-page-2.json"), &ctx(false)).unwrap();
        assert_eq!(page.next_token, None);
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn export_short_page_with_more_to_come_continues() {
        let body = br#"{"data": [], "pagination": {"cursor": "c2", "hasMore": true, "total": 9}}"#;
        let page = parse_export(body, &ctx(false)).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("c2"));
        let body = br#"{"data": [], "pagination": {"cursor": "c2", "hasMore": false}}"#;
        assert_eq!(parse_export(body, &ctx(false)).unwrap().next_token, None);
        let body = br#"{"data": [], "pagination": {"cursor": "", "hasMore": true}}"#;
        assert_eq!(parse_export(body, &ctx(false)).unwrap().next_token, None);
    }

    #[test]
    fn a_tool_only_message_has_no_content_and_keeps_its_parts() {
        let body = json!({"data": [{"id": "c1", "createdAt": 1740916800, "messages": [
            {"id": "m1", "role": "Assistant", "parts": [{"type": "tool-call", "toolCallId": "x", "toolName": "t"}]}
        ]}], "pagination": {"cursor": null, "hasMore": false}});
        let page = parse_export(body.to_string().as_bytes(), &ctx(false)).unwrap();
        let message = &page.records[0].messages[0];
        assert_eq!(message.role, "assistant");
        assert_eq!(message.content, None);
        assert_eq!(message.created_at, None);
        assert_eq!(
            page.records[0].fields["message_fields"][0]["parts"][0]["toolName"],
            json!("t")
        );
    }

    #[test]
    fn export_bodies_of_another_shape_are_malformed_not_empty() {
        for body in [&b"{}"[..], b"[]", b"{\"data\": {}}", b"not json"] {
            assert!(
                matches!(
                    parse_export(body, &ctx(false)),
                    Err(BodyError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn leads_use_the_chatzuri_shapes_with_chatbase_ids() {
        let page = chatzuri::parse_leads(&fixture("leads-page-1.json"), &ctx(false)).unwrap();
        assert_eq!(page.returned, 3);
        assert!(page.records.iter().all(|l| l.vendor == Vendor::Chatbase));
        assert_eq!(page.records[1].phone, None);
        assert_eq!(page.records[0].fields["account_id"], json!("acc_71b0c2"));
        let nested = chatzuri::parse_leads(&fixture("leads-page-2.json"), &ctx(false)).unwrap();
        assert_eq!(nested.records[0].id, "lead_e41d07bb");
        let anonymous =
            chatzuri::parse_leads(br#"{"collectedCustomers": [{"name": "X"}]}"#, &ctx(false))
                .unwrap();
        assert!(anonymous.records[0].id.starts_with("cb_"));
    }

    #[test]
    fn only_a_subscription_refusal_falls_back_to_v1() {
        let refusal = |status: u16, code: Option<&str>| {
            let mut e = Error::new(crate::error::ErrorKind::Auth, "x").with_status(status);
            e.vendor_code = code.map(str::to_owned);
            e
        };
        assert!(plan_without_v2(&refusal(
            403,
            Some("SUBSCRIPTION_API_RESTRICTED_PLAN")
        )));
        assert!(plan_without_v2(&refusal(
            403,
            Some("SUBSCRIPTION_PLAN_REQUIRED")
        )));
        assert!(!plan_without_v2(&refusal(
            403,
            Some("AUTH_INSUFFICIENT_PERMISSIONS")
        )));
        assert!(!plan_without_v2(&refusal(
            401,
            Some("SUBSCRIPTION_API_RESTRICTED_PLAN")
        )));
        assert!(!plan_without_v2(&refusal(403, None)));
    }
}
