//! The Value-tree parsers this module had before issue 14, kept only as a
//! test oracle: the typed parsers must give the same page for every body
//! (`agrees_with_the_value_tree_parser`). Not compiled outside tests.

use serde_json::{Map, Value};

use super::{
    EMAIL_NAMES, EMAIL_TYPES, Form, INBOX_TOKENS, LEADS_SHAPE, MESSAGE_LISTS, MESSAGES_SHAPE,
    NAME_NAMES, PHONE_NAMES, PHONE_TYPES, SESSION_IDS, SESSION_LISTS, SESSIONS_SHAPE,
    SessionSummary, lead_synthetic_id,
};
use crate::error::ErrorKind;
use crate::model::{Lead, carries_data, clean_string};
use crate::vendors::{
    BodyError, MapContext, Page, Picker, Stamp, at, error_detail, free_key, insert_unique, objects,
    parse_json, trimmed,
};

/// An error envelope `{message, error:{code, detail}}` inside a 2xx answer
/// is the vendor refusing, not a page: classified by its code the way the
/// same code is classified as an HTTP status.
fn refusal(value: &Value, body: &[u8]) -> Result<(), BodyError> {
    let Some(error) = value.get("error").filter(|e| carries_data(e)) else {
        return Ok(());
    };
    if value.get("data").is_some_and(carries_data) {
        return Ok(());
    }
    let code = clean_string(error.get("code")).unwrap_or_default();
    let (kind, status) = match code.as_str() {
        "UNAUTHORIZED" => (ErrorKind::Auth, Some(401)),
        "FORBIDDEN" => (ErrorKind::Auth, Some(403)),
        "BAD_REQUEST" => (ErrorKind::Vendor, Some(400)),
        "INTERNAL_SERVER_ERROR" => (ErrorKind::Vendor, Some(500)),
        c if c.ends_with("NOT_FOUND") => (ErrorKind::NotFound, Some(404)),
        _ => (ErrorKind::Vendor, None),
    };
    let message = error_detail(body).unwrap_or_else(|| "error without detail".to_owned());
    Err(BodyError::Refused {
        kind,
        code: status,
        message,
    })
}

/// The first of `paths` that holds a non-empty token; a null, empty or
/// missing token is the end.
fn token(value: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| clean_string(at(value, path)))
}

/// One page of leads: rows at `data.report.rows`; the next token at
/// `data.report.next_page_token` (the page's example) or else
/// `data.next_page_token` (its schema block). `session` is the `sessionId`
/// filter the request used: rows carry no session id, so it becomes every
/// lead's `session_id`.
pub fn parse_leads(
    body: &[u8],
    ctx: &MapContext,
    session: Option<&str>,
) -> Result<Page<Lead>, BodyError> {
    let value = parse_json(body, LEADS_SHAPE)?;
    refusal(&value, body)?;
    let rows = at(&value, &["data", "report", "rows"])
        .and_then(Value::as_array)
        .ok_or_else(|| BodyError::Malformed(format!("expected {LEADS_SHAPE}")))?;
    let session = session.map(str::trim).filter(|s| !s.is_empty());
    let records = objects(rows, "lead row")?
        .into_iter()
        .map(|row| map_lead(row, ctx, session))
        .collect();
    let next_token = token(
        &value,
        &[
            &["data", "report", "next_page_token"],
            &["data", "next_page_token"],
        ],
    );
    Ok(Page {
        records,
        returned: rows.len(),
        next_token,
        total: None,
    })
}

fn map_lead(row: &Map<String, Value>, ctx: &MapContext, session: Option<&str>) -> Lead {
    let mut pick = Picker::new(row);
    let vendor_id = pick.string(&["id"]);
    let created_value = pick.take(&["created_at"]);
    let source = pick.string(&["source"]);
    let page_url = pick.string(&["page_url"]);
    let ip_address = pick.string(&["ip_address"]);
    // Only an array is a form; anything else stays in `fields` as sent.
    let lead_data = row.get("lead_data").and_then(Value::as_array);
    if lead_data.is_some() {
        pick.take(&["lead_data"]);
    }
    let mut fields = pick.rest();
    let form = map_lead_data(
        lead_data.map(Vec::as_slice).unwrap_or_default(),
        &mut fields,
    );
    let id = vendor_id.unwrap_or_else(|| {
        lead_synthetic_id(
            &ctx.agent_id,
            clean_string(created_value).as_deref(),
            row.get("lead_data"),
        )
    });
    let mut lead = Lead::new(ctx.vendor, &ctx.agent_id, id);
    lead.created_at = Stamp::of(created_value).apply(&mut fields);
    lead.name = form.name.map(crate::model::Text::from);
    lead.email = form.email.map(crate::model::Text::from);
    lead.phone = form.phone.map(crate::model::Text::from);
    lead.source = source.map(crate::model::Text::from);
    lead.page_url = page_url.map(crate::model::Text::from);
    lead.ip_address = ip_address.map(crate::model::Text::from);
    lead.session_id = session.map(crate::model::Text::new);
    lead.fields = fields.into();
    if ctx.keep_raw {
        lead.raw = Some(Value::Object(row.clone()));
    }
    lead
}

struct Entry<'a> {
    name: Option<String>,
    kind: Option<String>,
    value: &'a Value,
    used: bool,
}

impl Entry<'_> {
    fn type_is(&self, types: &[&str]) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|k| types.iter().any(|t| k.eq_ignore_ascii_case(t)))
    }

    fn name_is(&self, names: &[&str]) -> bool {
        self.name
            .as_deref()
            .is_some_and(|n| names.iter().any(|t| n.eq_ignore_ascii_case(t)))
    }
}

/// Claims the first unused entry with a value that satisfies `matches`.
fn claim(entries: &mut [Entry<'_>], matches: impl Fn(&Entry<'_>) -> bool) -> Option<String> {
    let entry = entries.iter_mut().find(|e| !e.used && matches(e))?;
    entry.used = true;
    clean_string(Some(entry.value))
}

/// Picks name, email and phone out of the visitor's form (docs/vendor-apis.md §4.1):
/// `field_type` decides first (`email`; `phone`/`tel`/`mobile`), then
/// `field_name` ignoring case (`email`/`e-mail`; `phone`, `mobile`,
/// `telephone`, `tel`, `whatsapp`; `name`, `full_name`, `full name`). Only
/// entries with a value compete, and the first match wins.
///
/// Every other entry with a value goes into `fields` under its
/// `field_name` (trimmed; `field_type` when it has no name), its value
/// trimmed; a name that is already taken (by a second entry of the same
/// name, or by a row key) gets `_2`, `_3`, ... so duplicates are kept.
/// Their `field_type`s go into `fields.lead_data_types`, keyed like the
/// values: `{"company": "Acme", "lead_data_types": {"company": "text"}}`.
/// Items of `lead_data` that are not objects are kept under `lead_data`.
fn map_lead_data(items: &[Value], fields: &mut Map<String, Value>) -> Form {
    let mut entries = Vec::new();
    for item in items {
        let Some(obj) = item.as_object() else {
            if carries_data(item) {
                insert_unique(fields, "lead_data", item.clone());
            }
            continue;
        };
        let value = obj.get("field_value").unwrap_or(&Value::Null);
        entries.push(Entry {
            name: clean_string(obj.get("field_name")),
            kind: clean_string(obj.get("field_type")),
            value,
            // An empty entry holds nothing to map or keep.
            used: !carries_data(value),
        });
    }
    let email = claim(&mut entries, |e| e.type_is(EMAIL_TYPES));
    let phone = claim(&mut entries, |e| e.type_is(PHONE_TYPES));
    let form = Form {
        email: email.or_else(|| claim(&mut entries, |e| e.name_is(EMAIL_NAMES))),
        phone: phone.or_else(|| claim(&mut entries, |e| e.name_is(PHONE_NAMES))),
        name: claim(&mut entries, |e| e.name_is(NAME_NAMES)),
    };
    let mut types = Map::new();
    for entry in entries.iter().filter(|e| !e.used) {
        let key = entry
            .name
            .clone()
            .or_else(|| entry.kind.clone())
            .unwrap_or_else(|| "lead_data".to_owned());
        let key = free_key(fields, &key);
        fields.insert(key.clone(), trimmed(entry.value));
        if let Some(kind) = &entry.kind {
            types.insert(key, Value::String(kind.clone()));
        }
    }
    if !types.is_empty() {
        insert_unique(fields, "lead_data_types", Value::Object(types));
    }
    form
}

/// The first of `paths` that is an array (the empty path is the body).
fn list_at<'a>(value: &'a Value, paths: &[&[&str]]) -> Option<&'a Vec<Value>> {
    paths
        .iter()
        .find_map(|path| at(value, path).and_then(Value::as_array))
}

/// One page of Inbox sessions (the shape is undocumented: every plausible
/// list location is accepted, see `SESSION_LISTS`). A session without an
/// id (`session_id`, `sessionId` or `id`) cannot be fetched, so it makes the
/// page `Malformed` rather than being skipped.
pub fn parse_sessions(body: &[u8]) -> Result<Page<SessionSummary>, BodyError> {
    let value = parse_json(body, SESSIONS_SHAPE)?;
    refusal(&value, body)?;
    let list = list_at(&value, SESSION_LISTS)
        .ok_or_else(|| BodyError::Malformed(format!("expected {SESSIONS_SHAPE}")))?;
    let records = objects(list, "session")?
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let id = Picker::new(item).string(SESSION_IDS).ok_or_else(|| {
                BodyError::Malformed(format!(
                    "expected each session to have a session_id; item {i} has none"
                ))
            })?;
            Ok(SessionSummary {
                id,
                item: item.clone(),
            })
        })
        .collect::<Result<Vec<_>, BodyError>>()?;
    Ok(Page {
        records,
        returned: list.len(),
        next_token: token(&value, INBOX_TOKENS),
        total: None,
    })
}

/// One page of a session's messages, unmapped: `conversation` maps them
/// once all pages are in, so the conversation comes out whole.
pub fn parse_messages(body: &[u8]) -> Result<Page<Value>, BodyError> {
    let value = parse_json(body, MESSAGES_SHAPE)?;
    refusal(&value, body)?;
    let list = list_at(&value, MESSAGE_LISTS)
        .ok_or_else(|| BodyError::Malformed(format!("expected {MESSAGES_SHAPE}")))?;
    Ok(Page {
        records: list.clone(),
        returned: list.len(),
        next_token: token(&value, INBOX_TOKENS),
        total: None,
    })
}
