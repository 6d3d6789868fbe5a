//! Chatbase against a scripted server on loopback: what each request
//! carries, the v2 export's cursor walk and its end, the v1 fallback on a
//! plan without v2, errors with the vendor's request id, and the filters
//! Chatbase cannot honour.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{CHATBASE_KEY, assert_exit, assert_no_key, leads, ndjson, run, stderr, stdout};

const AGENT: &str = "5QHA6VB-DIAbBhxwqxfdi";
const EXPORT: &str = "/api/v2/agents/5QHA6VB-DIAbBhxwqxfdi/conversations/export";

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/fixtures/chatbase/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn chatbase(server: &MockServer, command: &str) -> assert_cmd::Command {
    let mut cmd = leads();
    cmd.env("CHATBASE_API_KEY", CHATBASE_KEY);
    cmd.args([command, "--vendor", "chatbase", "--agent", AGENT]);
    cmd.args(["--base-url", &format!("{}/api", server.uri())]);
    cmd.args(["--format", "ndjson", "--retries", "1"]);
    cmd
}

fn query(request: &Request) -> Query {
    request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Serves the export one cursor at a time: `pages[i]` answers the request
/// whose cursor is `c{i}` (the first has none), and records every query.
struct Cursors {
    pages: Vec<Value>,
    seen: Arc<Mutex<Vec<Query>>>,
}

type Query = Vec<(String, String)>;

impl Respond for Cursors {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let pairs = query(request);
        self.seen.lock().unwrap().push(pairs.clone());
        let cursor = pairs.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v);
        let index = match cursor {
            None => 0,
            Some(c) => c.trim_start_matches('c').parse::<usize>().unwrap(),
        };
        ResponseTemplate::new(200)
            .set_body_json(&self.pages[index])
            .insert_header("x-request-id", format!("req-{index}"))
    }
}

fn conversation(id: &str, created: i64) -> Value {
    json!({
        "id": id, "title": null, "createdAt": created, "updatedAt": created + 60,
        "userId": null, "source": "WhatsApp", "status": "ended",
        "messages": [{"id": format!("{id}-m1"), "role": "user",
                      "parts": [{"type": "text", "text": "hi"}], "createdAt": created}]
    })
}

fn page(conversations: Vec<Value>, cursor: Option<&str>, has_more: bool) -> Value {
    json!({"data": conversations, "pagination": {"cursor": cursor, "hasMore": has_more, "total": 4}})
}

#[tokio::test]
async fn conversations_follow_the_cursor_through_short_pages_with_the_same_query() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pages = vec![
        page(
            vec![conversation("a", 1741348800), conversation("b", 1741262400)],
            Some("c1"),
            true,
        ),
        // Empty, but more to come: the walk goes on.
        page(vec![], Some("c2"), true),
        page(vec![conversation("c", 1740916800)], None, false),
    ];
    Mock::given(method("GET"))
        .and(path(EXPORT))
        .and(header("authorization", format!("Bearer {CHATBASE_KEY}")))
        .respond_with(Cursors {
            pages,
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    let mut cmd = chatbase(&server, "conversations");
    cmd.args(["--since", "2025-03-01T00:00:00Z", "--source", "whatsapp"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let records = ndjson(&output);
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(records[0]["vendor"], "chatbase");
    assert_eq!(records[0]["source"], "WhatsApp");
    assert!(
        records[0]["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-03-07T12:00:00")
    );
    assert_eq!(records[0]["messages"][0]["content"], "hi");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "one request per cursor");
    let without_cursor =
        |q: &Query| -> Query { q.iter().filter(|(k, _)| k != "cursor").cloned().collect() };
    assert_eq!(
        seen[0],
        [
            ("limit".to_owned(), "20".to_owned()),
            ("startDate".to_owned(), "2025-03-01T00:00:00Z".to_owned()),
            ("source".to_owned(), "WhatsApp".to_owned()),
        ],
        "the exact bound, the documented spelling of the source, at most 20 a page"
    );
    for (i, q) in seen.iter().enumerate().skip(1) {
        assert_eq!(without_cursor(q), seen[0], "page {i} changed the query");
        assert!(q.contains(&("cursor".to_owned(), format!("c{i}"))));
    }
}

#[tokio::test]
async fn a_cursor_handed_out_twice_is_a_loop_exit_5_and_nothing_is_written() {
    let server = MockServer::start().await;
    let pages = vec![
        page(vec![conversation("a", 1741348800)], Some("c1"), true),
        page(vec![conversation("b", 1741262400)], Some("c1"), true),
    ];
    Mock::given(path(EXPORT))
        .respond_with(Cursors {
            pages,
            seen: Arc::default(),
        })
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    std::fs::write(&out, "before\n").unwrap();
    let mut cmd = chatbase(&server, "conversations");
    cmd.arg("-o").arg(&out);
    let output = run(cmd).await;
    assert_exit(&output, 5);
    assert!(
        stderr(&output).contains("pagination loop"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "before\n");
}

#[tokio::test]
async fn a_plan_without_v2_falls_back_to_v1_get_conversations_with_a_warning() {
    let server = MockServer::start().await;
    Mock::given(path(EXPORT))
        .respond_with(ResponseTemplate::new(403).set_body_json(fixture("error-403-plan.json")))
        .expect(1)
        .mount(&server)
        .await;
    let v1_page = fixture("conversations-v1-page.json");
    Mock::given(method("GET"))
        .and(path("/api/v1/get-conversations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&v1_page))
        .mount(&server)
        .await;
    let output = run(chatbase(&server, "conversations")).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let err = stderr(&output);
    assert!(err.contains("no v2 API") && err.contains("v1"), "{err}");
    let records = ndjson(&output);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], "3f9d2c4e-8a1b-4c7d-9e2f-6b5a4d3c2b1a");
    assert_eq!(records[0]["vendor"], "chatbase");
    assert_eq!(records[0]["messages"][0]["created_at"], Value::Null);

    let requests = server.received_requests().await.unwrap();
    let v1: Vec<&Request> = requests
        .iter()
        .filter(|r| r.url.path() == "/api/v1/get-conversations")
        .collect();
    assert_eq!(v1.len(), 1, "one short page ends the v1 listing");
    let q = query(v1[0]);
    assert!(q.contains(&("chatbotId".to_owned(), AGENT.to_owned())));
    assert!(q.contains(&("page".to_owned(), "1".to_owned())));
    assert!(q.contains(&("size".to_owned(), "20".to_owned())));
}

#[tokio::test]
async fn other_refusals_do_not_fall_back_and_name_the_request_id() {
    for (status, body, code, hint) in [
        (
            403,
            json!({"error": {"code": "AUTH_INSUFFICIENT_PERMISSIONS", "message": "no scope"}}),
            3,
            "scopes",
        ),
        (401, fixture("error-401.json"), 3, "CHATBASE_API_KEY"),
        (
            404,
            fixture("error-404-agent.json"),
            4,
            "Settings > General",
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(path(EXPORT))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(&body)
                    .insert_header("x-request-id", "6c1f0e3a-2b7d-4e91"),
            )
            .mount(&server)
            .await;
        let output = run(chatbase(&server, "conversations")).await;
        assert_exit(&output, code);
        assert_no_key(&output);
        let err = stderr(&output);
        assert!(
            err.contains("request id 6c1f0e3a-2b7d-4e91"),
            "{status}: {err}"
        );
        assert!(err.contains(hint), "{status}: {err}");
        assert!(stdout(&output).is_empty());
        let requests = server.received_requests().await.unwrap();
        assert!(
            requests.iter().all(|r| r.url.path() == EXPORT),
            "{status}: no fallback"
        );
    }
}

#[tokio::test]
async fn leads_send_chatbot_id_only_and_days_one_wider_on_each_side() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-leads"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("leads-page-2.json")))
        .mount(&server)
        .await;
    let mut cmd = chatbase(&server, "pull");
    cmd.args(["--since", "2025-03-02", "--until", "2025-03-10"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], "lead_e41d07bb");
    assert_eq!(records[0]["fields"]["account_id"], "acc_71b0c2");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        query(&requests[0]),
        [
            ("chatbotId", AGENT),
            ("startDate", "2025-03-01"),
            ("endDate", "2025-03-11"),
            ("page", "1"),
            ("size", "100"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[tokio::test]
async fn filters_chatbase_cannot_honour_are_usage_errors_before_any_request() {
    let server = MockServer::start().await;
    for (command, extra, mentions) in [
        ("pull", vec!["--session", "s1"], "--session"),
        ("conversations", vec!["--page-size", "50"], "at most 20"),
        (
            "conversations",
            vec!["--source", "Telegram"],
            "not a Chatbase source",
        ),
    ] {
        let mut cmd = chatbase(&server, command);
        cmd.args(&extra);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(mentions),
            "{extra:?}: {}",
            stderr(&output)
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn session_asks_for_that_one_conversation() {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path(EXPORT))
        .respond_with(Cursors {
            pages: vec![page(vec![conversation("b", 1741262400)], None, false)],
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    let mut cmd = chatbase(&server, "conversations");
    cmd.args(["--session", "b"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(ndjson(&output).len(), 1);
    assert!(seen.lock().unwrap()[0].contains(&("conversationId".to_owned(), "b".to_owned())));
}
