//! Golden tests of the vendor mappings: each vendor body in `fixtures/`
//! (`<vendor>/<case>.json`) mapped by the vendor's parser and written as
//! NDJSON by the library's own writer must equal `<case>.expected.ndjson`
//! byte for byte. One line below per case. After a deliberate change to a
//! mapping, regenerate with `LEADS_UPDATE_GOLDEN=1 cargo test golden` and
//! review the diff.

use std::path::PathBuf;

use leads::model::{Conversation, Lead, Vendor};
use leads::output::{Format, FormatOptions, Formatted, RecordWriter};
use leads::vendors::{BodyError, MapContext, Page, chatbase, chatzuri, neoagent, robofy};

type Parse<R> = fn(&[u8], &MapContext) -> Result<Page<R>, BodyError>;

const LEADS: &[(Vendor, &str, Parse<Lead>)] = &[
    (Vendor::Chatzuri, "leads-page-1", chatzuri::parse_leads),
    (Vendor::Chatzuri, "leads-page-2", chatzuri::parse_leads),
    (Vendor::Chatzuri, "leads-doc-example", chatzuri::parse_leads),
    (
        Vendor::Chatzuri,
        "leads-chatbase-example",
        chatzuri::parse_leads,
    ),
    (
        Vendor::Chatzuri,
        "leads-collected-data",
        chatzuri::parse_leads,
    ),
    (Vendor::Neoagent, "leads-window-1", neoagent::parse_leads),
    (Vendor::Neoagent, "leads-window-2", neoagent::parse_leads),
    (Vendor::Neoagent, "leads-doc-example", neoagent::parse_leads),
    (Vendor::Neoagent, "leads-camelcase", neoagent::parse_leads),
    (Vendor::Robofy, "leads-page-1", |b, c| {
        robofy::parse_leads(b, c, None)
    }),
    (Vendor::Robofy, "leads-page-2", |b, c| {
        robofy::parse_leads(b, c, None)
    }),
    (Vendor::Robofy, "leads-doc-example", |b, c| {
        robofy::parse_leads(b, c, None)
    }),
    (Vendor::Robofy, "leads-schema-example", |b, c| {
        robofy::parse_leads(b, c, None)
    }),
    (Vendor::Chatbase, "leads-page-1", chatzuri::parse_leads),
    (Vendor::Chatbase, "leads-page-2", chatzuri::parse_leads),
];

const CONVERSATIONS: &[(Vendor, &str, Parse<Conversation>)] = &[
    (
        Vendor::Chatzuri,
        "conversations-page-1",
        chatzuri::parse_conversations,
    ),
    (
        Vendor::Chatzuri,
        "conversations-doc-example",
        chatzuri::parse_conversations,
    ),
    (
        Vendor::Neoagent,
        "conversations-window-1",
        neoagent::parse_conversations,
    ),
    (
        Vendor::Neoagent,
        "conversations-doc-example",
        neoagent::parse_conversations,
    ),
    (Vendor::Robofy, "sessions-page-1", robofy_first_session),
    (
        Vendor::Chatbase,
        "conversations-export-page-1",
        chatbase::parse_export,
    ),
    (
        Vendor::Chatbase,
        "conversations-export-page-2",
        chatbase::parse_export,
    ),
    (
        Vendor::Chatbase,
        "conversations-v1-page",
        chatzuri::parse_conversations,
    ),
];

/// Robofy conversations are assembled from a session and its messages: the
/// first session of the page with the messages of both message fixtures.
fn robofy_first_session(body: &[u8], ctx: &MapContext) -> Result<Page<Conversation>, BodyError> {
    let sessions = robofy::parse_sessions(body)?;
    let mut messages = Vec::new();
    for name in ["messages-page-1", "messages-page-2"] {
        messages.extend(robofy::parse_messages(&read(Vendor::Robofy, name, "json"))?.records);
    }
    let first = &sessions.records[0];
    Ok(Page {
        records: vec![robofy::conversation(first, messages, ctx)],
        returned: 1,
        next_token: None,
        total: None,
    })
}

fn path(vendor: Vendor, case: &str, extension: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(vendor.as_str())
        .join(format!("{case}.{extension}"))
}

fn read(vendor: Vendor, case: &str, extension: &str) -> Vec<u8> {
    let path = path(vendor, case, extension);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check<R: Formatted>(vendor: Vendor, case: &str, parse: Parse<R>) -> Option<String> {
    let ctx = MapContext {
        vendor,
        agent_id: "agent-1".to_owned(),
        keep_raw: false,
    };
    let page = parse(&read(vendor, case, "json"), &ctx)
        .unwrap_or_else(|e| panic!("{vendor}/{case}: {e:?}"));
    let options = FormatOptions::new(Format::Ndjson, R::RESOURCE);
    let mut writer = RecordWriter::<R, _>::new(Vec::new(), &options);
    for record in &page.records {
        writer.write(record).unwrap();
    }
    let actual = writer.finish().unwrap();
    let expected_path = path(vendor, case, "expected.ndjson");
    if std::env::var_os("LEADS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return None;
    }
    match std::fs::read(&expected_path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => Some(format!(
            "{vendor}/{case}: the mapping changed\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&actual)
        )),
        Err(_) => Some(format!(
            "{vendor}/{case}: no {} (LEADS_UPDATE_GOLDEN=1 writes it)",
            expected_path.display()
        )),
    }
}

#[test]
fn every_vendor_fixture_maps_to_its_golden_ndjson() {
    let mut failures: Vec<String> = Vec::new();
    failures.extend(
        LEADS
            .iter()
            .filter_map(|(v, case, parse)| check(*v, case, *parse)),
    );
    failures.extend(
        CONVERSATIONS
            .iter()
            .filter_map(|(v, case, parse)| check(*v, case, *parse)),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_vendor_has_golden_cases_for_both_resources() {
    for vendor in Vendor::all() {
        assert!(
            LEADS.iter().any(|(v, ..)| v == vendor),
            "{vendor}: no lead case"
        );
        assert!(
            CONVERSATIONS.iter().any(|(v, ..)| v == vendor),
            "{vendor}: no conversation case"
        );
    }
}
