//! Chatzuri wire format (docs/vendor-apis.md §1): `get-leads` and `get-conversations`,
//! paged by `page`/`size`, Bearer key. The vendor's pages exist in two
//! revisions (`agentId` vs `chatbotId`, GET vs POST) and Chatzuri mirrors
//! Chatbase, whose lead list has appeared under three different keys; this
//! module sends what both revisions accept and reads every documented shape.

use std::ops::Range;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use chrono::Duration;

use super::plan::{
    DateFilter, Listing, Numbered, PageSize, ResourceSpec, SessionFilter, VendorSpec, no_code_hints,
};
use super::{
    AuthScheme, BodyError, HttpMethod, MapContext, ObjectEntries, Page, Picker, RequestSpec, Stamp,
    at, canonical_json, keep_message_extras, map_message, objects, parse_json, synthetic_id,
};
use crate::error::Result;
use crate::export::{Bookmark, Job};
use crate::model::{Conversation, Fields, Lead, Text, clean_string};
use crate::time::DayRange;

mod fast_leads;

pub static VENDOR: VendorSpec = VendorSpec {
    name: "chatzuri",
    display_name: "Chatzuri",
    default_base_url: "https://www.chatzuri.com/api/v1",
    key_env: "CHATZURI_API_KEY",
    base_url_env: "CHATZURI_BASE_URL",
    auth: AuthScheme::Bearer,
    id_prefix: "cz_",
    agent_hint: "the agent id is in the agent's settings in Chatzuri",
    not_found_hint: "check --agent: the agent id is in the agent's settings in Chatzuri",
    code_hint: no_code_hints,
    too_large_hint: "narrow the run with --since/--until, or lower --page-size",
    projects: None,
    note: None,
    leads: ResourceSpec {
        endpoint: "GET /get-leads",
        paging: "page/size, pages in parallel",
        dates: DateFilter::ServerDays,
        session: SessionFilter::Unsupported,
        sources: None,
        page_size: Some(PAGE_SIZE),
        plan: leads_plan,
    },
    conversations: ResourceSpec {
        endpoint: "GET /get-conversations",
        paging: "page/size, pages in parallel",
        dates: DateFilter::ServerDays,
        session: SessionFilter::Unsupported,
        sources: Some(&CHANNELS),
        page_size: Some(PAGE_SIZE),
        plan: conversations_plan,
    },
};

/// The documented maximum of `size` (get-conversations; get-leads documents
/// none, so the same bound is used there).
const PAGE_SIZE: PageSize = PageSize {
    default: 100,
    max: 100,
};

/// Chatzuri documents neither the zone of its dates nor whether `endDate`
/// is inclusive, so it is asked for one more day on each side.
pub const DAY_MARGIN: Duration = Duration::days(1);

/// Both endpoints page by number, newest first, and exist in a revision
/// that takes POST (`as_post`).
fn leads_plan(job: &Job, bookmark: Option<&Bookmark>) -> Result<Listing<Lead>> {
    let (agent, size, days) = (
        job.agent.clone(),
        job.page_size,
        job.days(bookmark, DAY_MARGIN),
    );
    let ctx = job.map_context();
    let request = move |page: u64| leads_request(&agent, page_number(page), size, &days);
    let parse = move |body: &[u8]| parse_leads(body, &ctx);
    Ok(Listing::Numbered(Numbered {
        head_moves: true,
        on_405: Some(as_post),
        ..Numbered::new(request, parse, size)
    }))
}

fn conversations_plan(job: &Job, bookmark: Option<&Bookmark>) -> Result<Listing<Conversation>> {
    let (agent, size, days) = (
        job.agent.clone(),
        job.page_size,
        job.days(bookmark, DAY_MARGIN),
    );
    let channels = job.filters.channels.clone();
    let ctx = job.map_context();
    let request =
        move |page: u64| conversations_request(&agent, page_number(page), size, &days, &channels);
    let map = move |item: &[u8]| conversation_from_item(item, &ctx);
    Ok(Listing::Numbered(Numbered {
        head_moves: true,
        on_405: Some(as_post),
        ..Numbered::of_items(request, conversation_ranges, map, size)
    }))
}

pub(crate) fn page_number(page: u64) -> u32 {
    u32::try_from(page).unwrap_or(u32::MAX)
}

/// The channel names Chatzuri documents for `filteredSources` (and its
/// conversations' `source`).
pub const CHANNELS: [&str; 8] = [
    "API",
    "Chatzuri site",
    "Instagram",
    "Messenger",
    "Slack",
    "Unspecified",
    "WhatsApp",
    "Widget or Iframe",
];

const LEADS_PATH: &str = "/get-leads";
const CONVERSATIONS_PATH: &str = "/get-conversations";

/// The agent goes out as both `agentId` (current revision) and `chatbotId`
/// (older revision and Chatbase): servers ignore the one they do not know.
fn agent_query(agent: &str) -> Vec<(&'static str, String)> {
    vec![
        ("agentId", agent.to_owned()),
        ("chatbotId", agent.to_owned()),
    ]
}

fn days_and_page(query: &mut Vec<(&'static str, String)>, page: u32, size: u32, days: &DayRange) {
    if let Some(start) = days.start_text() {
        query.push(("startDate", start));
    }
    if let Some(end) = days.end_text() {
        query.push(("endDate", end));
    }
    query.push(("page", page.to_string()));
    query.push(("size", size.to_string()));
}

/// `GET /get-leads?agentId&chatbotId[&startDate][&endDate]&page&size`.
pub fn leads_request(agent: &str, page: u32, size: u32, days: &DayRange) -> RequestSpec {
    let mut spec = RequestSpec::get("get-leads", LEADS_PATH.to_owned());
    spec.query = agent_query(agent);
    days_and_page(&mut spec.query, page, size, days);
    spec
}

/// `GET /get-conversations?agentId&chatbotId[&filteredSources][&startDate][&endDate]&page&size`;
/// `filteredSources` is the comma-joined list, sent only when not empty.
pub fn conversations_request(
    agent: &str,
    page: u32,
    size: u32,
    days: &DayRange,
    sources: &[String],
) -> RequestSpec {
    let mut spec = RequestSpec::get("get-conversations", CONVERSATIONS_PATH.to_owned());
    spec.query = agent_query(agent);
    if !sources.is_empty() {
        spec.query.push(("filteredSources", sources.join(",")));
    }
    days_and_page(&mut spec.query, page, size, days);
    spec
}

/// The 405 fallback (the older revision's header says POST): the same
/// parameters, as strings, in a JSON object body; no query string.
pub fn as_post(spec: &RequestSpec) -> RequestSpec {
    let body: Map<String, Value> = spec
        .query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
        .collect();
    RequestSpec {
        method: HttpMethod::Post,
        path: spec.path.clone(),
        query: Vec::new(),
        json_body: Some(Value::Object(body)),
        endpoint: spec.endpoint,
    }
}

const LEADS_SHAPE: &str = "a JSON object with the leads in `data`, `collectedCustomers` or `collectedCustomers.data` (an array), or an array";

/// The lead list, wherever this vendor family has put it: `data`,
/// `collectedCustomers`, `collectedCustomers.data`, or the body itself.
fn lead_list(body: &Value) -> Option<&Vec<Value>> {
    body.as_array()
        .or_else(|| at(body, &["data"]).and_then(Value::as_array))
        .or_else(|| at(body, &["collectedCustomers"]).and_then(Value::as_array))
        .or_else(|| at(body, &["collectedCustomers", "data"]).and_then(Value::as_array))
}

/// One page of leads. Any other shape is `Malformed`: a server that changed
/// its envelope must not look like an agent without leads.
pub fn parse_leads(body: &[u8], ctx: &MapContext) -> Result<Page<Lead>, BodyError> {
    if !ctx.keep_raw
        && let Some(page) = fast_leads::parse(body, ctx)
    {
        return Ok(page);
    }
    parse_leads_general(body, ctx)
}

/// The reference parser, for every shape; `parse_leads` tries the fast path
/// first. Public for the parser benchmark (`benches/parsers.rs`).
#[doc(hidden)]
pub fn parse_leads_general(body: &[u8], ctx: &MapContext) -> Result<Page<Lead>, BodyError> {
    let value = parse_json(body, LEADS_SHAPE)?;
    let list =
        lead_list(&value).ok_or_else(|| BodyError::Malformed(format!("expected {LEADS_SHAPE}")))?;
    let records = objects(list, "lead")?
        .into_iter()
        .map(|obj| map_lead(obj, ctx))
        .collect();
    Ok(Page {
        records,
        returned: list.len(),
        next_token: None,
        total: None,
    })
}

/// Maps one lead. `id` is the vendor's (a number in one revision, a string
/// in Chatbase's; stringified). A lead without one gets
/// `lead_synthetic_id`. `chatbot_id`, `chatbot_owner_user_id`, `account_id`
/// and any other key that carries data stay in `fields`.
fn map_lead(obj: &Map<String, Value>, ctx: &MapContext) -> Lead {
    let mut pick = Picker::new(obj);
    let vendor_id = pick.string(&["id"]);
    let created_value = pick.take(&["created_at"]);
    let name = pick.string(&["name"]);
    let email = pick.string(&["email"]);
    let phone = pick.string(&["phone"]);
    let fields = pick.rest();
    let mut lead = assemble_lead(
        vendor_id.map(Text::from),
        Stamp::of(created_value),
        || clean_string(created_value),
        [name, email, phone].map(|text| text.map(Text::from)),
        fields,
        ctx,
    );
    if ctx.keep_raw {
        lead.raw = Some(Value::Object(obj.clone()));
    }
    lead
}

/// The model lead from the values `map_lead` (or the fast path) picked out:
/// the creation time read, and as sent (trimmed; only needed, so only
/// built, for a lead without an id).
fn assemble_lead(
    vendor_id: Option<Text>,
    created: Stamp,
    created_raw: impl FnOnce() -> Option<String>,
    [name, email, phone]: [Option<Text>; 3],
    mut fields: Fields,
    ctx: &MapContext,
) -> Lead {
    let id = vendor_id.unwrap_or_else(|| {
        Text::from(lead_synthetic_id(
            ctx.vendor.spec().id_prefix,
            &ctx.agent_id,
            created_raw().as_deref(),
            email.as_deref(),
            phone.as_deref(),
            name.as_deref(),
        ))
    });
    let mut lead = Lead::new(ctx.vendor, &ctx.agent_id, id);
    lead.created_at = created.apply(&mut fields);
    lead.name = name;
    lead.email = email;
    lead.phone = phone;
    lead.fields = fields;
    lead
}

/// The id of a lead that came without one: the vendor's `id_prefix` (`cz_`) + the first 20
/// hex digits of SHA-256 over, joined by U+001F, the agent id as given,
/// `created_at` exactly as sent (trimmed), `email`, `phone`, `name` (trimmed;
/// absent = empty string).
pub fn lead_synthetic_id(
    prefix: &str,
    agent: &str,
    created_at_raw: Option<&str>,
    email: Option<&str>,
    phone: Option<&str>,
    name: Option<&str>,
) -> String {
    let parts = [
        agent,
        created_at_raw.unwrap_or(""),
        email.unwrap_or(""),
        phone.unwrap_or(""),
        name.unwrap_or(""),
    ];
    synthetic_id(prefix, &parts)
}

const CONVERSATIONS_SHAPE: &str =
    "a JSON object with the conversations in `data` (an array), or an array";

/// One page of conversations (`data[]`, or a bare array).
pub fn parse_conversations(body: &[u8], ctx: &MapContext) -> Result<Page<Conversation>, BodyError> {
    let items = conversation_ranges(body)?;
    let records = items
        .iter()
        .map(|range| conversation_from_item(&body[range.clone()], ctx))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        records,
        returned: items.len(),
        next_token: None,
        total: None,
    })
}

/// Where a page's conversations are in its body (the walk maps each when
/// it reaches it: messages can be large, so the body and one
/// conversation's tree are held, never the whole page's records). Each is
/// checked to be an object here, so a bad page fails before any of its
/// records is written.
pub fn conversation_ranges(body: &[u8]) -> Result<Vec<Range<usize>>, BodyError> {
    let start = body.as_ptr() as usize;
    conversation_items(body)?
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let text = raw.get();
            if !text.starts_with('{') {
                return Err(BodyError::Malformed(format!(
                    "expected each conversation to be a JSON object; item {index} is not"
                )));
            }
            let offset = text.as_ptr() as usize - start;
            Ok(offset..offset + text.len())
        })
        .collect()
}

/// One conversation from its bytes (one of `conversation_ranges`).
pub fn conversation_from_item(item: &[u8], ctx: &MapContext) -> Result<Conversation, BodyError> {
    let obj = serde_json::from_slice::<Map<String, Value>>(item)
        .map_err(|e| BodyError::Malformed(format!("expected a conversation object ({e})")))?;
    Ok(map_conversation(&obj, ctx))
}

/// The conversations of a page, unparsed: a bare array, or the array under
/// `data` (exact spelling; of repeated keys the last, as a parse into a
/// map reads it).
fn conversation_items(body: &[u8]) -> std::result::Result<Vec<&RawValue>, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let shape = || BodyError::Malformed(format!("expected {CONVERSATIONS_SHAPE}"));
    let not_json = |e: serde_json::Error| {
        if e.is_data() {
            shape()
        } else {
            BodyError::Malformed(format!(
                "body is not JSON ({e}); expected {CONVERSATIONS_SHAPE}"
            ))
        }
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => serde_json::from_slice::<Vec<&RawValue>>(body).map_err(not_json),
        Some(b'{') => {
            let entries = serde_json::from_slice::<ObjectEntries>(body).map_err(not_json)?;
            let data = entries
                .0
                .iter()
                .rev()
                .find(|(key, _)| key == "data")
                .ok_or_else(shape)?;
            serde_json::from_str::<Vec<&RawValue>>(data.1.get()).map_err(|_| shape())
        }
        _ => Err(parse_json(body, CONVERSATIONS_SHAPE)
            .err()
            .unwrap_or_else(shape)),
    }
}

/// The chat endpoint documents `user` and `assistant`; a few obvious
/// synonyms are read the same way, anything else is kept lower-cased.
fn role(lower: &str) -> Option<&'static str> {
    match lower {
        "user" | "human" | "customer" => Some("user"),
        "assistant" | "ai" | "bot" => Some("assistant"),
        _ => None,
    }
}

/// Maps one conversation. The vendor's messages carry only `role` and
/// `content` (no time: `created_at` stays null); per-message extras such as
/// `id` or `score` go to `fields.message_fields`. A conversation without an
/// id gets `conversation_synthetic_id`.
fn map_conversation(obj: &Map<String, Value>, ctx: &MapContext) -> Conversation {
    map_conversation_with(obj, ctx, ["created_at", "customer"], |message| {
        map_message(message, &["role"], &["content"], &["created_at"], role)
    })
}

/// A conversation of this vendor family: `id`, the creation time and the
/// customer under the names in `keys`, `source`, a `messages` array mapped
/// by `message`; every other key carrying data in `fields`, the messages'
/// extras in `fields.message_fields`. Chatbase's v2 export has the same
/// shape under other names.
pub(crate) fn map_conversation_with(
    obj: &Map<String, Value>,
    ctx: &MapContext,
    [created_key, customer_key]: [&str; 2],
    message: impl Fn(&Value) -> (crate::model::Message, Map<String, Value>),
) -> Conversation {
    let mut pick = Picker::new(obj);
    let vendor_id = pick.string(&["id"]);
    let created_value = pick.take(&[created_key]);
    let customer = pick.string(&[customer_key]);
    let source = pick.string(&["source"]);
    // Only an array is a message list; anything else stays in `fields`.
    let messages_value = obj.get("messages").filter(|v| v.is_array());
    if messages_value.is_some() {
        pick.take(&["messages"]);
    }
    let mut fields = pick.rest();
    let id = vendor_id.unwrap_or_else(|| {
        conversation_synthetic_id(
            ctx.vendor.spec().id_prefix,
            &ctx.agent_id,
            clean_string(created_value).as_deref(),
            customer.as_deref(),
            source.as_deref(),
            messages_value,
        )
    });
    let mut conversation = Conversation::new(ctx.vendor, &ctx.agent_id, id);
    conversation.created_at = Stamp::of(created_value).apply(&mut fields);
    conversation.customer = customer;
    conversation.source = source;
    let mut extras = Vec::new();
    for value in messages_value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (mapped, extra) = message(value);
        conversation.messages.push(mapped);
        extras.push(extra);
    }
    keep_message_extras(&mut fields, extras);
    conversation.fields = fields;
    if ctx.keep_raw {
        conversation.raw = Some(Value::Object(obj.clone()));
    }
    conversation
}

/// The id of a Chatzuri conversation that came without one (the vendor
/// documents one, so this is a safety net): the vendor's `id_prefix` + the first 20 hex
/// digits of SHA-256 over, joined by U+001F, the agent id, `created_at` as
/// sent (trimmed), `customer`, `source`, and the `messages` array as compact
/// JSON with sorted keys (absent = empty string).
pub fn conversation_synthetic_id(
    prefix: &str,
    agent: &str,
    created_at_raw: Option<&str>,
    customer: Option<&str>,
    source: Option<&str>,
    messages: Option<&Value>,
) -> String {
    let messages = messages.map(canonical_json).unwrap_or_default();
    let parts = [
        agent,
        created_at_raw.unwrap_or(""),
        customer.unwrap_or(""),
        source.unwrap_or(""),
        &messages,
    ];
    synthetic_id(prefix, &parts)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;

    use super::*;
    use crate::model::Message;
    use crate::model::Vendor;
    use crate::vendors::testing::{ctx_for, obj, s, ts};

    fn ctx(agent: &str, keep_raw: bool) -> MapContext {
        ctx_for(Vendor::Chatzuri, agent, keep_raw)
    }

    const AGENT: &str = "a1b2c3";

    fn lead(id: &str) -> Lead {
        Lead::new(Vendor::Chatzuri, AGENT, id.to_owned())
    }

    fn days() -> DayRange {
        DayRange {
            start: NaiveDate::from_ymd_opt(2025, 1, 5),
            end: NaiveDate::from_ymd_opt(2025, 2, 1),
        }
    }

    fn query(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn leads_request_sends_both_agent_names_and_padded_days() {
        let spec = leads_request(AGENT, 2, 100, &days());
        assert_eq!(spec.method, HttpMethod::Get);
        assert_eq!(spec.path, "/get-leads");
        assert_eq!(spec.endpoint, "get-leads");
        assert_eq!(spec.json_body, None);
        assert_eq!(
            spec.query,
            query(&[
                ("agentId", AGENT),
                ("chatbotId", AGENT),
                ("startDate", "2025-01-05"),
                ("endDate", "2025-02-01"),
                ("page", "2"),
                ("size", "100"),
            ])
        );
    }

    #[test]
    fn leads_request_without_dates_omits_them() {
        let spec = leads_request("a b&c", 1, 10, &DayRange::default());
        assert_eq!(
            spec.query,
            query(&[
                ("agentId", "a b&c"),
                ("chatbotId", "a b&c"),
                ("page", "1"),
                ("size", "10")
            ])
        );
        let only_end = DayRange {
            start: None,
            end: NaiveDate::from_ymd_opt(2025, 3, 9),
        };
        let spec = leads_request(AGENT, 1, 10, &only_end);
        assert_eq!(spec.query[2], ("endDate", "2025-03-09".to_owned()));
        assert!(
            spec.query
                .iter()
                .all(|(_, v)| v != "undefined" && !v.is_empty())
        );
    }

    #[test]
    fn conversations_request_joins_sources_only_when_given() {
        let sources = vec!["WhatsApp".to_owned(), "Widget or Iframe".to_owned()];
        let spec = conversations_request(AGENT, 3, 50, &days(), &sources);
        assert_eq!(spec.method, HttpMethod::Get);
        assert_eq!(spec.path, "/get-conversations");
        assert_eq!(spec.endpoint, "get-conversations");
        assert_eq!(
            spec.query,
            query(&[
                ("agentId", AGENT),
                ("chatbotId", AGENT),
                ("filteredSources", "WhatsApp,Widget or Iframe"),
                ("startDate", "2025-01-05"),
                ("endDate", "2025-02-01"),
                ("page", "3"),
                ("size", "50"),
            ])
        );
        let spec = conversations_request(AGENT, 1, 100, &DayRange::default(), &[]);
        assert_eq!(
            spec.query,
            query(&[
                ("agentId", AGENT),
                ("chatbotId", AGENT),
                ("page", "1"),
                ("size", "100")
            ])
        );
    }

    #[test]
    fn as_post_moves_the_query_into_a_json_body() {
        let get = conversations_request(AGENT, 1, 100, &days(), &["API".to_owned()]);
        let post = as_post(&get);
        assert_eq!(
            post,
            RequestSpec {
                method: HttpMethod::Post,
                path: "/get-conversations".to_owned(),
                query: Vec::new(),
                json_body: Some(json!({
                    "agentId": AGENT,
                    "chatbotId": AGENT,
                    "filteredSources": "API",
                    "startDate": "2025-01-05",
                    "endDate": "2025-02-01",
                    "page": "1",
                    "size": "100"
                })),
                endpoint: "get-conversations",
            }
        );
        let keys: Vec<&String> = post
            .json_body
            .as_ref()
            .and_then(Value::as_object)
            .unwrap()
            .keys()
            .collect();
        assert_eq!(
            keys,
            [
                "agentId",
                "chatbotId",
                "filteredSources",
                "startDate",
                "endDate",
                "page",
                "size"
            ]
        );
    }

    #[test]
    fn documented_example_maps_with_unreadable_time_kept() {
        let page = parse_leads(
            include_bytes!("../../fixtures/chatzuri/leads-doc-example.json"),
            &ctx(AGENT, false),
        )
        .unwrap();
        let expected = Lead {
            created_at: None,
            name: s("string"),
            email: s("string"),
            phone: s("string"),
            fields: obj(json!({
                "chatbot_owner_user_id": "string",
                "chatbot_id": "string",
                "created_at_raw": "string"
            })),
            ..lead("0")
        };
        assert_eq!(
            page,
            Page {
                records: vec![expected],
                returned: 1,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn full_first_page() {
        let page = parse_leads(
            include_bytes!("../../fixtures/chatzuri/leads-page-1.json"),
            &ctx(AGENT, false),
        )
        .unwrap();
        let owner = json!({"chatbot_owner_user_id": "usr_8f3a", "chatbot_id": "a1b2c3"});
        let expected = vec![
            Lead {
                created_at: ts("2025-01-15T10:30:00Z"),
                name: s("Zoë Müller"),
                email: s("zoe.mueller@example.de"),
                phone: s("+49 30 1234567"),
                fields: obj(owner.clone()),
                ..lead("4101")
            },
            Lead {
                created_at: ts("2025-01-15T11:02:17.125Z"),
                name: s("Seán O'Brien"),
                email: s("o'brien@example.ie"),
                phone: None,
                fields: obj(owner.clone()),
                ..lead("4102")
            },
            Lead {
                created_at: ts("2025-01-16T09:00:00Z"),
                name: s("Doe, \"JD\" John"),
                fields: obj(owner),
                ..lead("4103")
            },
        ];
        assert_eq!(
            page,
            Page {
                records: expected,
                returned: 3,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn short_second_page_with_a_lead_without_id() {
        let page = parse_leads(
            include_bytes!("../../fixtures/chatzuri/leads-page-2.json"),
            &ctx(AGENT, false),
        )
        .unwrap();
        let expected = vec![
            Lead {
                created_at: ts("2025-01-17T14:45:00Z"),
                name: s("Lee Chen"),
                email: s("lee@example.com"),
                phone: s("+1 (415) 555-0100"),
                fields: obj(json!({
                    "chatbot_owner_user_id": "usr_8f3a",
                    "chatbot_id": "a1b2c3",
                    "utm_source": "newsletter"
                })),
                ..lead("4104")
            },
            Lead {
                // printf 'a1b2c3\x1fyesterday\x1fnobody@example.com\x1f\x1f' | sha256sum
                email: s("nobody@example.com"),
                fields: obj(json!({
                    "chatbot_owner_user_id": "usr_8f3a",
                    "chatbot_id": "a1b2c3",
                    "created_at_raw": "yesterday"
                })),
                ..lead("cz_db52a8a3c341c3905236")
            },
        ];
        assert_eq!(
            page,
            Page {
                records: expected,
                returned: 2,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn synthetic_lead_id_is_stable_and_discriminating() {
        let a = lead_synthetic_id(
            "cz_",
            AGENT,
            Some("yesterday"),
            Some("nobody@example.com"),
            None,
            None,
        );
        assert_eq!(a, "cz_db52a8a3c341c3905236");
        assert_ne!(
            a,
            lead_synthetic_id(
                "cz_",
                AGENT,
                Some("yesterday"),
                None,
                Some("nobody@example.com"),
                None
            )
        );
        assert_ne!(
            a,
            lead_synthetic_id(
                "cz_",
                "other",
                Some("yesterday"),
                Some("nobody@example.com"),
                None,
                None
            )
        );
    }

    #[test]
    fn chatbase_and_nested_list_keys() {
        let page = parse_leads(
            include_bytes!("../../fixtures/chatzuri/leads-chatbase-example.json"),
            &ctx(AGENT, false),
        )
        .unwrap();
        let expected = Lead {
            created_at: ts("2024-01-01T12:00:00Z"),
            name: s("string"),
            email: s("string"),
            phone: s("+1234567890"),
            fields: obj(json!({"chatbot_id": "string", "account_id": "string"})),
            ..lead("lead_123")
        };
        assert_eq!(page.records, vec![expected]);

        let body = include_bytes!("../../fixtures/chatzuri/leads-collected-data.json");
        let page = parse_leads(body, &ctx(AGENT, true)).unwrap();
        let original: Value = serde_json::from_slice(body).unwrap();
        let expected = Lead {
            created_at: ts("2024-03-02T08:15:30.250Z"),
            name: s("Ana Núñez"),
            email: s("ana@example.es"),
            fields: obj(json!({"chatbot_id": "a1b2c3", "account_id": "acct_77"})),
            raw: Some(original["collectedCustomers"]["data"][0].clone()),
            ..lead("lead_9001")
        };
        assert_eq!(
            page,
            Page {
                records: vec![expected],
                returned: 1,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn top_level_array_and_empty_list() {
        let page = parse_leads(br#"[{"id": "x1", "name": " Bo "}]"#, &ctx(AGENT, false)).unwrap();
        assert_eq!(
            page.records,
            vec![Lead {
                name: s("Bo"),
                ..lead("x1")
            }]
        );
        let page = parse_leads(
            include_bytes!("../../fixtures/chatzuri/leads-empty.json"),
            &ctx(AGENT, false),
        )
        .unwrap();
        assert_eq!(
            page,
            Page {
                records: vec![],
                returned: 0,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn other_shapes_are_malformed_never_empty() {
        let bodies: [&[u8]; 8] = [
            b"{}",
            b"{\"data\": null}",
            b"{\"data\": {\"rows\": []}}",
            b"{\"collectedCustomers\": {\"items\": []}}",
            b"[1, 2]",
            b"<!DOCTYPE html><html><body>Bad gateway</body></html>",
            b"{\"data\": [{\"id\": 1},",
            include_bytes!("../../fixtures/chatzuri/error-401.txt"),
        ];
        for body in bodies {
            let result = parse_leads(body, &ctx(AGENT, false));
            assert!(
                matches!(result, Err(BodyError::Malformed(_))),
                "{}: {result:?}",
                String::from_utf8_lossy(body)
            );
        }
        let Err(BodyError::Malformed(why)) = parse_leads(b"{}", &ctx(AGENT, false)) else {
            unreachable!()
        };
        assert!(why.contains("collectedCustomers"), "{why}");
        assert!(matches!(
            parse_conversations(b"{}", &ctx(AGENT, false)),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_conversations(b"{\"data\": [\"x\"]}", &ctx(AGENT, false)),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn documented_conversation_example() {
        let page = parse_conversations(
            include_bytes!("../../fixtures/chatzuri/conversations-doc-example.json"),
            &ctx(AGENT, false),
        )
        .unwrap();
        let expected = Conversation {
            created_at: None,
            source: s("string"),
            customer: s("string"),
            messages: vec![Message {
                role: "string".to_owned(),
                content: s("string"),
                created_at: None,
            }],
            fields: obj(json!({"chatbot_id": "string", "created_at_raw": "string"})),
            ..Conversation::new(Vendor::Chatzuri, AGENT, "string".to_owned())
        };
        assert_eq!(
            page,
            Page {
                records: vec![expected],
                returned: 1,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn conversations_page() {
        let body = include_bytes!("../../fixtures/chatzuri/conversations-page-1.json");
        let page = parse_conversations(body, &ctx(AGENT, true)).unwrap();
        let original: Value = serde_json::from_slice(body).unwrap();
        let conv = |id: &str| Conversation::new(Vendor::Chatzuri, AGENT, id.to_owned());
        let msg = |role: &str, content: Option<&str>| Message {
            role: role.to_owned(),
            content: content.map(str::to_owned),
            created_at: None,
        };
        let expected = vec![
            Conversation {
                created_at: ts("2025-01-15T10:29:40Z"),
                source: s("Widget or Iframe"),
                customer: s("zoe.mueller@example.de"),
                messages: vec![
                    msg("assistant", Some("Hi! How can I help?")),
                    msg(
                        "user",
                        Some("Do you ship to Zürich, \"express\"?\nThanks, Zoë"),
                    ),
                    msg("assistant", Some("Yes, within 2 days.")),
                ],
                fields: obj(json!({
                    "chatbot_id": "a1b2c3",
                    "last_message_at": "2025-01-15T10:31:02Z",
                    "country": "CH"
                })),
                raw: Some(original["data"][0].clone()),
                ..conv("conv_5f1e")
            },
            Conversation {
                created_at: ts("2025-01-15T12:00:00.5Z"),
                source: s("WhatsApp"),
                customer: None,
                messages: vec![msg("user", Some("Preise?")), msg("assistant", None)],
                fields: obj(json!({
                    "chatbot_id": "a1b2c3",
                    "message_fields": [{"id": "msg_1"}, {"id": "msg_2", "score": 0.92}]
                })),
                raw: Some(original["data"][1].clone()),
                ..conv("conv_5f1f")
            },
            Conversation {
                created_at: ts("2025-01-16T08:00:00Z"),
                source: s("API"),
                fields: obj(json!({"chatbot_id": "a1b2c3"})),
                raw: Some(original["data"][2].clone()),
                ..conv("conv_5f20")
            },
        ];
        assert_eq!(
            page,
            Page {
                records: expected,
                returned: 3,
                next_token: None,
                total: None
            }
        );
    }

    #[test]
    fn conversation_without_id_gets_a_stable_synthetic_one() {
        let body = br#"{"data":[{"created_at":"2025-01-15T10:00:00Z","customer":"c","source":"API","messages":[{"role":"user","content":"hi"}]}]}"#;
        let first = parse_conversations(body, &ctx(AGENT, false)).unwrap();
        let again = parse_conversations(body, &ctx(AGENT, false)).unwrap();
        assert_eq!(first.records[0].id, again.records[0].id);
        // printf 'a1b2c3\x1f2025-01-15T10:00:00Z\x1fc\x1fAPI\x1f[{"content":"hi","role":"user"}]' | sha256sum
        assert_eq!(first.records[0].id, "cz_8287f10cc3574a8bd818");
    }
}
