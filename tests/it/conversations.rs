//! `leads conversations` (issue 4, docs/SPEC.md section 1-4): request shapes and
//! paging per vendor against wiremock servers on loopback, the Chatzuri 405
//! fallback, unsupported filters, the CSV layout, and every vendor through
//! the sandbox with the generator's exact conversation and message counts.

use std::collections::HashMap;

use assert_cmd::Command;
use chrono::{DateTime, Utc};
use leads::model::{Conversation, Vendor};
use leads::output::Formatted;
use leads::sandbox::data::{self, GeneratedConversation};
use leads::sandbox::{DEMO_AGENT, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{
    CHATBASE_KEY, CHATZURI_KEY, NEOAGENT_KEY, ROBOFY_KEY, assert_exit, assert_no_key, leads,
    ndjson, run, stderr, stdout,
};

// ------------------------------------------------------------------ helpers

fn conversations(vendor: Vendor, agent: &str, base_url: &str) -> Command {
    let mut cmd = leads();
    cmd.args([
        "conversations",
        "--vendor",
        vendor.as_str(),
        "--agent",
        agent,
    ])
    .args(["--base-url", base_url]);
    let key = match vendor {
        Vendor::Chatzuri => CHATZURI_KEY,
        Vendor::Neoagent => NEOAGENT_KEY,
        Vendor::Robofy => ROBOFY_KEY,
        Vendor::Chatbase => CHATBASE_KEY,
    };
    cmd.env(vendor.key_env(), key);
    cmd
}

async fn received(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

fn query(request: &Request) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or_else(|e| {
        panic!(
            "request body is not JSON: {e}: {}",
            String::from_utf8_lossy(&request.body)
        )
    })
}

fn json_array(output: &std::process::Output) -> Vec<Value> {
    match serde_json::from_slice(&output.stdout) {
        Ok(Value::Array(records)) => records,
        other => panic!("stdout is not a JSON array: {other:?}\n{}", stdout(output)),
    }
}

fn ids(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["id"].as_str().expect("a string id"))
        .collect()
}

/// Serves Chatzuri `get-conversations` pages out of a fixed list, reading
/// `page`/`size` from the query (GET) or the JSON body (POST).
struct ChatzuriPages(Vec<Value>);

impl Respond for ChatzuriPages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params: HashMap<String, String> = if request.method.as_str() == "POST" {
            body(request)
                .as_object()
                .expect("a JSON object body")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        } else {
            request.url.query_pairs().into_owned().collect()
        };
        let page: usize = params["page"].parse().expect("page is digits");
        let size: usize = params["size"].parse().expect("size is digits");
        let slice: Vec<Value> = self
            .0
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .cloned()
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": slice }))
    }
}

/// `2025-03-01T00:00:00Z` plus `n` hours, as RFC 3339 with `Z`.
fn hours_after_march_1(n: usize) -> String {
    let start: DateTime<Utc> = "2025-03-01T00:00:00Z".parse().expect("a timestamp");
    (start + chrono::Duration::hours(n as i64))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn chatzuri_conversation(n: usize) -> Value {
    json!({
        "id": format!("conv-{n}"),
        "created_at": hours_after_march_1(n),
        "messages": [
            {"role": "user", "content": format!("question {n}")},
            {"role": "assistant", "content": format!("answer {n}")}
        ],
        "chatbot_id": "cz-agent",
        "customer": format!("visitor{n}@example.com"),
        "source": "WhatsApp"
    })
}

fn chatzuri_expected(n: usize) -> Value {
    json!({
        "id": format!("conv-{n}"),
        "vendor": "chatzuri",
        "agent_id": "cz-agent",
        "created_at": hours_after_march_1(n).replace('Z', ".000000Z"),
        "source": "WhatsApp",
        "customer": format!("visitor{n}@example.com"),
        "session_id": null,
        "page_url": null,
        "messages": [
            {"role": "user", "content": format!("question {n}"), "created_at": null},
            {"role": "assistant", "content": format!("answer {n}"), "created_at": null}
        ],
        "fields": {"chatbot_id": "cz-agent"}
    })
}

// ------------------------------------------------------------------ Chatzuri

#[tokio::test]
async fn chatzuri_sends_get_with_the_documented_query_and_pages_until_a_short_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-conversations"))
        .respond_with(ChatzuriPages((0..5).map(chatzuri_conversation).collect()))
        .mount(&server)
        .await;
    let base_url = format!("{}/api/v1", server.uri());
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &base_url);
    cmd.args(["--source", "WhatsApp", "--source", "Widget or Iframe"])
        .args(["--since", "2025-03-01", "--until", "2025-03-31"])
        .args(["--page-size", "2", "--concurrency", "1"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);

    let records = json_array(&output);
    let expected: Vec<Value> = (0..5).map(chatzuri_expected).collect();
    assert_eq!(records, expected);

    let requests = received(&server).await;
    assert_eq!(requests.len(), 3, "pages 1 and 2 full, page 3 short");
    for (n, request) in requests.iter().enumerate() {
        let page = (n + 1).to_string();
        assert_eq!(request.method.as_str(), "GET");
        assert_eq!(request.url.path(), "/api/v1/get-conversations");
        assert_eq!(
            query(request),
            pairs(&[
                ("agentId", "cz-agent"),
                ("chatbotId", "cz-agent"),
                ("filteredSources", "WhatsApp,Widget or Iframe"),
                // One day wider each side: Chatzuri's date zone and end
                // semantics are undocumented; exact bounds apply on the client.
                ("startDate", "2025-02-28"),
                ("endDate", "2025-04-01"),
                ("page", &page),
                ("size", "2"),
            ])
        );
        assert_eq!(
            header(request, "authorization"),
            Some(format!("Bearer {CHATZURI_KEY}").as_str())
        );
    }
}

#[tokio::test]
async fn chatzuri_a_full_last_page_is_followed_by_one_empty_page_and_defaults_to_size_100() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-conversations"))
        .respond_with(ChatzuriPages((0..200).map(chatzuri_conversation).collect()))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--format", "ndjson", "--concurrency", "1"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_eq!(records.len(), 200);
    let want: Vec<String> = (0..200).map(|n| format!("conv-{n}")).collect();
    assert_eq!(ids(&records), want);

    let requests = received(&server).await;
    let pages: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let q: HashMap<String, String> = r.url.query_pairs().into_owned().collect();
            (q["page"].clone(), q["size"].clone())
        })
        .collect();
    let want: Vec<(String, String)> = ["1", "2", "3"]
        .iter()
        .map(|p| ((*p).to_owned(), "100".to_owned()))
        .collect();
    assert_eq!(pages, want);
    for request in &requests {
        let q: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        assert!(!q.contains_key("filteredSources"), "no --source, no filter");
        assert!(!q.contains_key("startDate") && !q.contains_key("endDate"));
    }
}

#[tokio::test]
async fn chatzuri_pages_fetched_concurrently_are_written_in_page_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-conversations"))
        .respond_with(ChatzuriPages((0..23).map(chatzuri_conversation).collect()))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args([
        "--format",
        "ndjson",
        "--page-size",
        "3",
        "--concurrency",
        "4",
    ]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let want: Vec<String> = (0..23).map(|n| format!("conv-{n}")).collect();
    assert_eq!(ids(&ndjson(&output)), want);
}

#[tokio::test]
async fn chatzuri_page_size_above_100_is_a_usage_error_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--page-size", "101"]);
    let output = run(cmd).await;
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--page-size"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
    assert!(received(&server).await.is_empty());
}

#[tokio::test]
async fn chatzuri_get_answered_405_is_sent_once_as_post_with_a_json_body_and_so_are_later_pages() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-conversations"))
        .respond_with(ResponseTemplate::new(405).insert_header("allow", "POST"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/get-conversations"))
        .respond_with(ChatzuriPages((0..3).map(chatzuri_conversation).collect()))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--source", "Slack", "--since", "2025-03-01"])
        .args([
            "--page-size",
            "2",
            "--concurrency",
            "1",
            "--format",
            "ndjson",
        ]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let expected: Vec<Value> = (0..3).map(chatzuri_expected).collect();
    assert_eq!(ndjson(&output), expected);

    let requests = received(&server).await;
    let seen: Vec<(&str, String)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.url.path().to_owned()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("GET", "/get-conversations".to_owned()),
            ("POST", "/get-conversations".to_owned()),
            ("POST", "/get-conversations".to_owned()),
        ],
        "GET once, then every page as POST"
    );
    assert_eq!(
        query(&requests[0]),
        pairs(&[
            ("agentId", "cz-agent"),
            ("chatbotId", "cz-agent"),
            ("filteredSources", "Slack"),
            ("startDate", "2025-02-28"),
            ("page", "1"),
            ("size", "2"),
        ])
    );
    for (request, page) in requests[1..].iter().zip(["1", "2"]) {
        assert_eq!(
            request.url.query(),
            None,
            "the POST carries no query string"
        );
        assert!(
            header(request, "content-type").is_some_and(|v| v.starts_with("application/json")),
            "{:?}",
            header(request, "content-type")
        );
        assert_eq!(
            header(request, "authorization"),
            Some(format!("Bearer {CHATZURI_KEY}").as_str())
        );
        assert_eq!(
            body(request),
            json!({
                "agentId": "cz-agent",
                "chatbotId": "cz-agent",
                "filteredSources": "Slack",
                "startDate": "2025-02-28",
                "page": page,
                "size": "2",
            })
        );
    }
}

#[tokio::test]
async fn chatzuri_post_fallback_is_tried_only_once_when_post_is_refused_too() {
    let server = MockServer::start().await;
    Mock::given(path("/get-conversations"))
        .respond_with(ResponseTemplate::new(405))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--concurrency", "1"]);
    let output = run(cmd).await;
    assert_exit(&output, 5);
    assert_no_key(&output);
    let methods: Vec<String> = received(&server)
        .await
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(methods, ["GET", "POST"]);
}

// ------------------------------------------------------------------ NeoAgent

fn neoagent_envelope(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "Data": data,
        "Version": "1.0.0",
        "Success": true,
        "Code": 200,
        "Message": ""
    }))
}

fn neoagent_session(id: u64, created: &str, messages: Value) -> Value {
    json!({
        "SessionID": id,
        "CreateTime": created,
        "URI": "www.example.com/chat",
        "Messages": messages
    })
}

#[tokio::test]
async fn neoagent_posts_pascal_case_windows_with_the_raw_key_and_keeps_each_session_once() {
    let server = MockServer::start().await;
    let first = json!([
        neoagent_session(
            101,
            "2025-01-05T08:00:00.264484Z",
            json!([{"Type": "User", "Content": "Hi"}, {"Type": "AI", "Content": " Hello! How can I help? "}])
        ),
        neoagent_session(
            102,
            "2025-01-31T10:00:00Z",
            json!([{"Type": "AI", "Content": "Welcome"}, {"Type": "Operator", "Content": "A human here"}])
        ),
    ]);
    let second = json!([
        // The day both windows share brings session 102 back.
        neoagent_session(
            102,
            "2025-01-31T10:00:00Z",
            json!([{"Type": "AI", "Content": "Welcome"}, {"Type": "Operator", "Content": "A human here"}])
        ),
        neoagent_session(103, "2025-02-10T23:59:59.5Z", json!([])),
        // After --until: dropped on the client.
        neoagent_session(
            104,
            "2025-02-16T00:00:01Z",
            json!([{"Type": "User", "Content": "late"}])
        ),
    ]);
    Mock::given(method("POST"))
        .and(path("/chat/Chatbot/ChatContentHistory"))
        .and(body_partial_json(json!({"StartTime": "2025-01-01"})))
        .respond_with(neoagent_envelope(first))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/Chatbot/ChatContentHistory"))
        .and(body_partial_json(json!({"StartTime": "2025-01-31"})))
        .respond_with(neoagent_envelope(second))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Neoagent, "na-serial", &server.uri());
    cmd.args([
        "--since",
        "2025-01-01",
        "--until",
        "2025-02-15",
        "--window",
        "30",
    ])
    .args(["--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);

    let expected = vec![
        json!({
            "id": "101", "vendor": "neoagent", "agent_id": "na-serial",
            "created_at": "2025-01-05T08:00:00.264484Z",
            "source": null, "customer": null, "session_id": "101",
            "page_url": "www.example.com/chat",
            "messages": [
                {"role": "user", "content": "Hi", "created_at": null},
                {"role": "assistant", "content": "Hello! How can I help?", "created_at": null}
            ],
            "fields": {}
        }),
        json!({
            "id": "102", "vendor": "neoagent", "agent_id": "na-serial",
            "created_at": "2025-01-31T10:00:00Z",
            "source": null, "customer": null, "session_id": "102",
            "page_url": "www.example.com/chat",
            "messages": [
                {"role": "assistant", "content": "Welcome", "created_at": null},
                {"role": "operator", "content": "A human here", "created_at": null}
            ],
            "fields": {}
        }),
        json!({
            "id": "103", "vendor": "neoagent", "agent_id": "na-serial",
            "created_at": "2025-02-10T23:59:59.500Z",
            "source": null, "customer": null, "session_id": "103",
            "page_url": "www.example.com/chat",
            "messages": [],
            "fields": {}
        }),
    ];
    let mut got = ndjson(&output);
    // Compare instants, whatever number of fractional digits was written.
    for record in &mut got {
        let text = record["created_at"]
            .as_str()
            .expect("a created_at")
            .to_owned();
        assert!(text.ends_with('Z'), "{text}");
        let instant: DateTime<Utc> = text.parse().expect("RFC 3339");
        let want: DateTime<Utc> = expected
            .iter()
            .find(|e| e["id"] == record["id"])
            .and_then(|e| e["created_at"].as_str())
            .and_then(|t| t.parse().ok())
            .expect("an expected record");
        assert_eq!(instant, want);
        record["created_at"] = json!(null);
    }
    let expected: Vec<Value> = expected
        .into_iter()
        .map(|mut e| {
            e["created_at"] = json!(null);
            e
        })
        .collect();
    assert_eq!(got, expected);

    let requests = received(&server).await;
    assert_eq!(requests.len(), 2, "two 30-day windows");
    let mut bodies: Vec<Value> = requests.iter().map(body).collect();
    bodies.sort_by_key(|b| b["StartTime"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        bodies,
        [
            json!({"SerialNumber": "na-serial", "StartTime": "2025-01-01", "EndTime": "2025-01-31"}),
            json!({"SerialNumber": "na-serial", "StartTime": "2025-01-31", "EndTime": "2025-02-16"}),
        ],
        "PascalCase bodies, windows sharing their boundary day, the last ending the day after --until"
    );
    for request in &requests {
        assert_eq!(request.url.path(), "/chat/Chatbot/ChatContentHistory");
        assert_eq!(
            header(request, "authorization"),
            Some(NEOAGENT_KEY),
            "the bare key, no Bearer"
        );
        assert!(header(request, "content-type").is_some_and(|v| v.starts_with("application/json")));
    }
}

#[tokio::test]
async fn neoagent_without_since_asks_once_for_everything_up_to_until() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/Chatbot/ChatContentHistory"))
        .respond_with(neoagent_envelope(json!([neoagent_session(
            7,
            "2025-02-01T00:00:00Z",
            json!([{"Type": "User", "Content": "hello"}])
        )])))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Neoagent, "na-serial", &server.uri());
    cmd.args(["--until", "2025-03-01", "--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(ids(&ndjson(&output)), ["7"]);
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(
        body(&requests[0]),
        json!({"SerialNumber": "na-serial", "EndTime": "2025-03-02"})
    );
}

// ------------------------------------------------------------------ Robofy

fn robofy_ok(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"message": "OK", "data": data}))
}

async fn robofy_inbox() -> MockServer {
    let server = MockServer::start().await;
    let sessions = "/v1/ai-agent/inbox/sessions/bot-1";
    Mock::given(method("GET"))
        .and(path(sessions))
        .and(query_param_is_missing("nextPageToken"))
        .respond_with(robofy_ok(json!({
            "sessions": [
                {"session_id": "s-a", "created_at": "2025-03-01 09:00:00",
                 "user_profile_name": "Zoë Müller", "website_url": "https://example.com/pricing"},
                {"session_id": "s-b", "created_at": "2025-03-02 10:00:00"}
            ],
            "next_page_token": "tok-2"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(sessions))
        .and(query_param("nextPageToken", "tok-2"))
        .respond_with(robofy_ok(json!({
            "sessions": [{"session_id": "s-c", "created_at": "2025-03-03 11:00:00"}],
            "next_page_token": null
        })))
        .mount(&server)
        .await;
    let chats = [
        (
            "s-a",
            json!([
                {"direction": "inbound", "message": "Hi, do you ship to Canada?", "created_at": "2025-03-01 09:00:05"},
                {"direction": "outbound", "message": "Yes, worldwide.", "created_at": "2025-03-01 09:00:07"}
            ]),
        ),
        ("s-b", json!([])),
        (
            "s-c",
            json!([
                {"direction": "outbound", "message": "Hello!\nHow can I help?", "created_at": "2025-03-03 11:00:00"}
            ]),
        ),
    ];
    for (session, messages) in chats {
        Mock::given(method("GET"))
            .and(path(format!("/v1/ai-agent/inbox/chats/bot-1/{session}")))
            .respond_with(robofy_ok(
                json!({"messages": messages, "next_page_token": null}),
            ))
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn robofy_lists_sessions_by_token_then_fetches_each_sessions_messages_once() {
    let server = robofy_inbox().await;
    let mut cmd = conversations(Vendor::Robofy, "bot-1", &server.uri());
    cmd.args(["--format", "json"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_no_key(&output);
    let expected = vec![
        json!({
            "id": "s-a", "vendor": "robofy", "agent_id": "bot-1",
            "created_at": "2025-03-01T09:00:00.000000Z",
            "source": null, "customer": "Zoë Müller", "session_id": "s-a",
            "page_url": "https://example.com/pricing",
            "messages": [
                {"role": "user", "content": "Hi, do you ship to Canada?", "created_at": "2025-03-01T09:00:05.000000Z"},
                {"role": "assistant", "content": "Yes, worldwide.", "created_at": "2025-03-01T09:00:07.000000Z"}
            ],
            "fields": {}
        }),
        json!({
            "id": "s-b", "vendor": "robofy", "agent_id": "bot-1",
            "created_at": "2025-03-02T10:00:00.000000Z",
            "source": null, "customer": null, "session_id": "s-b", "page_url": null,
            "messages": [],
            "fields": {}
        }),
        json!({
            "id": "s-c", "vendor": "robofy", "agent_id": "bot-1",
            "created_at": "2025-03-03T11:00:00.000000Z",
            "source": null, "customer": null, "session_id": "s-c", "page_url": null,
            "messages": [
                {"role": "assistant", "content": "Hello!\nHow can I help?", "created_at": "2025-03-03T11:00:00.000000Z"}
            ],
            "fields": {}
        }),
    ];
    assert_eq!(json_array(&output), expected);

    let requests = received(&server).await;
    let listing: Vec<Vec<(String, String)>> = requests
        .iter()
        .filter(|r| r.url.path().contains("/inbox/sessions/"))
        .map(query)
        .collect();
    assert_eq!(
        listing,
        vec![vec![], pairs(&[("nextPageToken", "tok-2")])],
        "first page without a token, then the token handed out"
    );
    let mut chats: Vec<&str> = requests
        .iter()
        .map(|r| r.url.path())
        .filter(|p| p.contains("/inbox/chats/"))
        .collect();
    chats.sort();
    assert_eq!(
        chats,
        [
            "/v1/ai-agent/inbox/chats/bot-1/s-a",
            "/v1/ai-agent/inbox/chats/bot-1/s-b",
            "/v1/ai-agent/inbox/chats/bot-1/s-c",
        ],
        "each session's messages fetched exactly once"
    );
    for request in &requests {
        assert_eq!(request.method.as_str(), "GET");
        assert_eq!(
            header(request, "authorization"),
            Some(format!("Bearer {ROBOFY_KEY}").as_str())
        );
    }
}

#[tokio::test]
async fn robofy_session_flag_fetches_only_that_sessions_messages() {
    let server = robofy_inbox().await;
    let mut cmd = conversations(Vendor::Robofy, "bot-1", &server.uri());
    cmd.args(["--session", "s-a", "--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_eq!(ids(&records), ["s-a"]);
    assert_eq!(records[0]["session_id"], "s-a");
    assert_eq!(
        records[0]["messages"],
        json!([
            {"role": "user", "content": "Hi, do you ship to Canada?", "created_at": "2025-03-01T09:00:05.000000Z"},
            {"role": "assistant", "content": "Yes, worldwide.", "created_at": "2025-03-01T09:00:07.000000Z"}
        ])
    );
    let paths: Vec<String> = received(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(paths, ["/v1/ai-agent/inbox/chats/bot-1/s-a"]);
}

// ------------------------------------------------------------------ unsupported filters

#[tokio::test]
async fn a_filter_the_vendor_cannot_honour_exits_2_naming_vendor_and_flag_and_sends_nothing() {
    let cases: [(Vendor, &[&str], &str); 3] = [
        (Vendor::Neoagent, &["--source", "WhatsApp"], "--source"),
        (Vendor::Robofy, &["--source", "WhatsApp"], "--source"),
        (Vendor::Chatzuri, &["--session", "42"], "--session"),
    ];
    for (vendor, args, flag) in cases {
        let server = MockServer::start().await;
        let mut cmd = conversations(vendor, "agent-x", &server.uri());
        cmd.args(args);
        let output = run(cmd).await;
        assert_exit(&output, 2);
        assert_no_key(&output);
        let err = stderr(&output);
        assert!(err.contains("leads: error:"), "{err}");
        assert!(
            err.to_lowercase().contains(vendor.as_str()),
            "{vendor} {flag}: the message names the vendor: {err}"
        );
        assert!(
            err.contains(flag),
            "{vendor}: the message names {flag}: {err}"
        );
        assert!(output.stdout.is_empty());
        assert!(
            received(&server).await.is_empty(),
            "{vendor} {flag}: nothing may be sent"
        );
    }
}

// ------------------------------------------------------------------ CSV

#[tokio::test]
async fn csv_has_the_spec_header_and_one_row_per_message_and_keeps_a_conversation_without_messages()
{
    let server = MockServer::start().await;
    let page = vec![
        json!({
            "id": "c-1",
            "created_at": "2025-04-01T12:00:00Z",
            "messages": [
                {"role": "user", "content": "Hello, \"team\"\nsecond line, with a comma"},
                {"role": "assistant", "content": "你好 👋"},
                {"role": "user", "content": "=1+2"}
            ],
            "chatbot_id": "cz-agent",
            "customer": "Smith, John",
            "source": "Widget or Iframe"
        }),
        json!({
            "id": "c-2",
            "created_at": "2025-04-02T12:00:00Z",
            "messages": [],
            "chatbot_id": "cz-agent",
            "customer": "",
            "source": "API"
        }),
    ];
    Mock::given(method("GET"))
        .and(path("/get-conversations"))
        .respond_with(ChatzuriPages(page))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--format", "csv"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);

    let mut reader = csv::ReaderBuilder::new().from_reader(output.stdout.as_slice());
    let header = reader.headers().expect("a header row").clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        Conversation::column_names()
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.expect("a valid CSV row")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let row = |cells: [&str; 11]| cells.map(str::to_owned).to_vec();
    let c1 = [
        "c-1",
        "chatzuri",
        "cz-agent",
        "2025-04-01T12:00:00.000000Z",
        "Widget or Iframe",
        "Smith, John",
        "",
    ];
    let with = |prefix: [&str; 7], rest: [&str; 4]| {
        let mut cells = [""; 11];
        cells[..7].copy_from_slice(&prefix);
        cells[7..].copy_from_slice(&rest);
        row(cells)
    };
    assert_eq!(
        rows,
        vec![
            with(
                c1,
                [
                    "0",
                    "user",
                    "Hello, \"team\"\nsecond line, with a comma",
                    ""
                ]
            ),
            with(c1, ["1", "assistant", "你好 👋", ""]),
            // The formula guard is on by default.
            with(c1, ["2", "user", "'=1+2", ""]),
            with(
                [
                    "c-2",
                    "chatzuri",
                    "cz-agent",
                    "2025-04-02T12:00:00.000000Z",
                    "API",
                    "",
                    ""
                ],
                ["", "", "", ""]
            ),
        ]
    );

    // The same conversation without messages is in the JSON output too.
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_eq!(ids(&records), ["c-1", "c-2"]);
    assert_eq!(records[1]["messages"], json!([]));
    assert_eq!(records[1]["customer"], Value::Null, "empty string is null");
}

#[tokio::test]
async fn csv_with_no_conversations_is_the_header_alone() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/get-conversations"))
        .respond_with(ChatzuriPages(Vec::new()))
        .mount(&server)
        .await;
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &server.uri());
    cmd.args(["--format", "csv"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        format!("{}\n", Conversation::column_names().join(","))
    );
}

// ------------------------------------------------------------------ through the sandbox

/// `leads conversations` of the sandbox's demo agent at `base_url`.
fn sandbox_conversations(vendor: Vendor, base_url: &str) -> Command {
    let mut cmd = leads();
    cmd.args([
        "conversations",
        "--vendor",
        vendor.as_str(),
        "--agent",
        DEMO_AGENT,
    ])
    .args(["--base-url", base_url])
    .env(vendor.key_env(), crate::common::sandbox_key(vendor));
    cmd
}

/// The generated conversations in the order the vendor serves them
/// (Chatbase's export is newest first).
fn generated(vendor: Vendor, seed: u64, total: usize) -> Vec<GeneratedConversation> {
    let mut all: Vec<GeneratedConversation> = (0..total)
        .map(|i| data::conversation(crate::common::sim(vendor), seed, i, total))
        .collect();
    if vendor == Vendor::Chatbase {
        all.reverse();
    }
    all
}

/// Ids, message counts, roles and contents against the generator.
fn assert_generated(records: &[Value], want: &[&GeneratedConversation], what: &str) {
    assert_eq!(records.len(), want.len(), "{what}: conversations");
    for (record, c) in records.iter().zip(want) {
        assert_eq!(record["id"], c.id.as_str(), "{what}");
        let messages = record["messages"].as_array().expect("messages");
        assert_eq!(
            messages.len(),
            c.messages.len(),
            "{what}: messages of {}",
            c.id
        );
        for (got, m) in messages.iter().zip(&c.messages) {
            assert_eq!(got["role"], m.role.model(), "{what}: {}", c.id);
            // Empty content is null in the model (a Chatbase tool-only message).
            let content = Some(m.content.trim()).filter(|t| !t.is_empty());
            assert_eq!(got["content"].as_str(), content, "{what}: {}", c.id);
        }
    }
}

const SEED: u64 = 77;
/// Two Robofy session pages (25 a page); some long conversations.
const CONVERSATIONS: usize = 37;

#[tokio::test]
async fn every_vendor_through_the_sandbox_yields_exactly_the_generated_conversations_and_messages()
{
    let sandbox = Sandbox::start(SandboxOptions {
        leads: 10,
        conversations: CONVERSATIONS,
        seed: SEED,
        ..Default::default()
    })
    .await
    .expect("the sandbox starts");
    for &vendor in Vendor::all() {
        let want = generated(vendor, SEED, CONVERSATIONS);
        let want_refs: Vec<&GeneratedConversation> = want.iter().collect();
        let total_messages: usize = want.iter().map(|c| c.messages.len()).sum();
        assert!(
            want.iter().any(|c| c.messages.len() >= 30),
            "long conversations"
        );

        let mut cmd = sandbox_conversations(vendor, &crate::common::sandbox_url(&sandbox, vendor));
        // Chatzuri: four pages of ten.
        cmd.args(["--format", "ndjson", "--page-size", "10"]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        let records = ndjson(&output);
        assert_generated(&records, &want_refs, vendor.as_str());
        let written: usize = records
            .iter()
            .map(|r| r["messages"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(written, total_messages, "{vendor}: messages in all");

        let mut cmd = sandbox_conversations(vendor, &crate::common::sandbox_url(&sandbox, vendor));
        cmd.args(["--format", "csv", "--page-size", "10"]);
        let output = run(cmd).await;
        assert_exit(&output, 0);
        let mut reader = csv::ReaderBuilder::new().from_reader(output.stdout.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
        assert_eq!(
            rows.len(),
            total_messages,
            "{vendor}: one CSV row per message"
        );
        let mut per_conversation: Vec<(String, usize)> = Vec::new();
        for row in &rows {
            match per_conversation.last_mut() {
                Some((id, n)) if id == &row[0] => *n += 1,
                _ => per_conversation.push((row[0].to_owned(), 1)),
            }
        }
        let want_counts: Vec<(String, usize)> = want
            .iter()
            .map(|c| (c.id.clone(), c.messages.len()))
            .collect();
        assert_eq!(
            per_conversation, want_counts,
            "{vendor}: CSV rows per conversation"
        );
    }
}

#[tokio::test]
async fn chatzuri_source_filter_through_the_sandbox_returns_exactly_those_channels() {
    let sandbox = Sandbox::start(SandboxOptions {
        conversations: 60,
        seed: SEED,
        ..Default::default()
    })
    .await
    .expect("the sandbox starts");
    let vendor = Vendor::Chatzuri;
    let want = generated(vendor, SEED, 60);
    let want: Vec<&GeneratedConversation> = want
        .iter()
        .filter(|c| matches!(c.source.as_deref(), Some("WhatsApp" | "API")))
        .collect();
    assert!(
        want.len() > 5,
        "enough matching conversations for two pages"
    );
    let mut cmd = sandbox_conversations(vendor, &crate::common::sandbox_url(&sandbox, vendor));
    cmd.args(["--source", "WhatsApp", "--source", "API"]).args([
        "--format",
        "ndjson",
        "--page-size",
        "5",
    ]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_generated(&records, &want, "chatzuri --source WhatsApp --source API");
    for record in &records {
        assert!(matches!(
            record["source"].as_str(),
            Some("WhatsApp" | "API")
        ));
    }
}

#[tokio::test]
async fn chatzuri_post_only_sandbox_is_exported_completely_through_the_405_fallback() {
    let sandbox = Sandbox::start(SandboxOptions {
        conversations: 25,
        seed: SEED,
        ..Default::default()
    })
    .await
    .expect("the sandbox starts");
    let want = generated(Vendor::Chatzuri, SEED, 25);
    let want: Vec<&GeneratedConversation> = want.iter().collect();
    let mut cmd = sandbox_conversations(Vendor::Chatzuri, &sandbox.chatzuri_post_only_base_url());
    cmd.args(["--format", "ndjson", "--page-size", "10"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_generated(&ndjson(&output), &want, "chatzuri post-only");
}

#[tokio::test]
async fn neoagent_date_windows_through_the_sandbox_return_each_conversation_in_range_once() {
    let total = 120;
    let sandbox = Sandbox::start(SandboxOptions {
        conversations: total,
        seed: SEED,
        ..Default::default()
    })
    .await
    .expect("the sandbox starts");
    let since: DateTime<Utc> = "2025-02-01T00:00:00Z".parse().unwrap();
    let until: DateTime<Utc> = "2025-04-15T12:00:00Z".parse().unwrap();
    let want = generated(Vendor::Neoagent, SEED, total);
    let want: Vec<&GeneratedConversation> = want
        .iter()
        .filter(|c| c.created_at >= since && c.created_at <= until)
        .collect();
    assert!(want.len() > 30);
    let mut cmd = sandbox_conversations(
        Vendor::Neoagent,
        &crate::common::sandbox_url(&sandbox, Vendor::Neoagent),
    );
    cmd.args(["--since", "2025-02-01", "--until", "2025-04-15T12:00:00Z"])
        .args(["--window", "7", "--format", "ndjson"]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_generated(&ndjson(&output), &want, "neoagent 7-day windows");
}

// ------------------------------------------- pages mapped one item at a time

/// Serves the same full page of Chatzuri conversations for every `page`.
struct SamePageAlways;

impl Respond for SamePageAlways {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let page: Vec<Value> = (0..2).map(chatzuri_conversation).collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": page }))
    }
}

/// A conversation page's repeats are found once the page was handed over
/// (its items are mapped one at a time): the run still fails with exit 5,
/// and the output file it would have replaced is left as it was.
#[tokio::test]
async fn chatzuri_conversations_from_a_server_that_ignores_page_fail_exit_5_and_keep_the_output() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-conversations"))
        .respond_with(SamePageAlways)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("conversations.ndjson");
    std::fs::write(&out, "earlier\n").expect("an earlier output");
    let base_url = format!("{}/api/v1", server.uri());
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &base_url);
    cmd.args([
        "--page-size",
        "2",
        "--concurrency",
        "1",
        "--format",
        "ndjson",
    ])
    .arg("-o")
    .arg(&out);
    let output = run(cmd).await;
    assert_exit(&output, 5);
    assert!(
        stderr(&output).contains("seems to ignore paging"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("the output"),
        "earlier\n"
    );
    assert_eq!(
        std::fs::read_dir(dir.path())
            .expect("the directory")
            .count(),
        1,
        "no temporary file is left"
    );
}

/// Serves Chatzuri conversations newest first; after the first request, a
/// new conversation is at the head, so every later page is shifted by one.
struct HeadInsertedAfterFirstRequest {
    requests: std::sync::atomic::AtomicUsize,
    count: usize,
}

impl Respond for HeadInsertedAfterFirstRequest {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let seen = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let params: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let page: usize = params["page"].parse().expect("page is digits");
        let size: usize = params["size"].parse().expect("size is digits");
        let newest = if seen == 0 {
            self.count
        } else {
            self.count + 1
        };
        let slice: Vec<Value> = (0..newest)
            .rev()
            .skip((page - 1) * size)
            .take(size)
            .map(chatzuri_conversation)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "data": slice }))
    }
}

/// The end-of-listing check of page 1 sees the conversation added at the
/// head while later pages were in flight, and the walk is made again: each
/// conversation is written once, the new one included.
#[tokio::test]
async fn chatzuri_conversation_added_at_the_head_while_paging_is_not_lost() {
    const COUNT: usize = 9;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-conversations"))
        .respond_with(HeadInsertedAfterFirstRequest {
            requests: std::sync::atomic::AtomicUsize::new(0),
            count: COUNT,
        })
        .mount(&server)
        .await;
    let base_url = format!("{}/api/v1", server.uri());
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &base_url);
    cmd.args([
        "--page-size",
        "2",
        "--concurrency",
        "4",
        "--format",
        "ndjson",
    ]);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    let mut written: Vec<String> = records
        .iter()
        .map(|r| r["id"].as_str().expect("a string id").to_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = (0..=COUNT).map(|n| format!("conv-{n}")).collect();
    expected.sort();
    assert_eq!(
        written, expected,
        "every conversation once, the new one too"
    );
}

/// A Chatzuri conversation whose one message is `bytes` long.
fn large_conversation(n: usize, bytes: usize) -> Value {
    json!({
        "id": format!("conv-{n}"),
        "created_at": hours_after_march_1(n),
        "messages": [{"role": "user", "content": format!("{n} {}", "x".repeat(bytes))}],
    })
}

/// Pages of conversations larger than one batch (1 MiB of items) are handed
/// over in several parts: every conversation is written once, in order, and
/// the run report counts each page once.
#[tokio::test]
async fn chatzuri_conversation_pages_larger_than_a_batch_are_written_once_and_counted_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/get-conversations"))
        .respond_with(ChatzuriPages(
            (0..5).map(|n| large_conversation(n, 700_000)).collect(),
        ))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = dir.path().join("report.json");
    let base_url = format!("{}/api/v1", server.uri());
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &base_url);
    cmd.args([
        "--page-size",
        "2",
        "--concurrency",
        "2",
        "--format",
        "ndjson",
    ])
    .arg("--report")
    .arg(&report);
    let output = run(cmd).await;
    assert_exit(&output, 0);
    let records = ndjson(&output);
    assert_eq!(
        ids(&records),
        ["conv-0", "conv-1", "conv-2", "conv-3", "conv-4"]
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("JSON");
    assert_eq!(report["sources"][0]["pages"], 3, "{report}");

    // With --limit, a page that holds what is still wanted is the last one
    // asked for (the head re-check is skipped under --limit).
    let mut cmd = conversations(Vendor::Chatzuri, "cz-agent", &base_url);
    cmd.args([
        "--page-size",
        "2",
        "--concurrency",
        "1",
        "--format",
        "ndjson",
    ])
    .args(["--limit", "2"]);
    let before = received(&server).await.len();
    let output = run(cmd).await;
    assert_exit(&output, 0);
    assert_eq!(ids(&ndjson(&output)), ["conv-0", "conv-1"]);
    assert_eq!(
        received(&server).await.len() - before,
        1,
        "only page 1 is asked for"
    );
}
